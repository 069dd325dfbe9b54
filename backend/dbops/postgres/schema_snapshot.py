"""A schema snapshot read from the Postgres catalog, and a readable diff of two.

:func:`snapshot` reads every user-visible schema object of the connected
database in **one** catalog query, prepared once per connection (no SQLAlchemy
Inspector, no per-table round trips): schemas, extensions, tables, columns (type, nullability,
default, identity, generated expression, collation, comment), constraints
(primary key, foreign key with its actions, unique, check, exclusion),
indexes (full definition), enum / domain / composite / range types,
sequences (with their options and owner), views and materialized views,
functions and procedures (full definition), triggers and row-level security
policies.

Left out on purpose: system schemas, objects that belong to an extension
(they come and go with the extension, which is itself compared), the
``alembic_version`` table (its presence is Alembic's business, not the
migration's), column order (a downgrade can only re-add a dropped column at
the end), data, statistics, owners and grants.

:func:`diff` compares two snapshots and returns one line per difference::

    index ix_users_phone on users: only after downgrade
    column users.phone type: varchar(20) != text
    enum type mood: only after downgrade

:func:`snapshot_text` is the fast path: the same query's one text value (a
:class:`SnapshotText`), compared as a string and expanded into a snapshot
only when two differ.

The round-trip tester (``inv test-rollback``) and ``inv sync`` use them to
prove a new revision's downgrade restores the schema exactly.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

#: tables never compared (Alembic's own bookkeeping)
DEFAULT_IGNORED_TABLES = frozenset({"alembic_version"})

#: display order of object kinds in a diff
_ORDER = (
    "schema",
    "extension",
    "enum type",
    "domain",
    "composite type",
    "range type",
    "sequence",
    "table",
    "column",
    "constraint",
    "index",
    "view",
    "materialized view",
    "function",
    "procedure",
    "aggregate",
    "window function",
    "trigger",
    "policy",
)
_RANK = {kind: i for i, kind in enumerate(_ORDER)}

_TYPE_ABBREVIATIONS = (
    ("character varying", "varchar"),
    ("timestamp with time zone", "timestamptz"),
    ("timestamp without time zone", "timestamp"),
    ("time with time zone", "timetz"),
    ("time without time zone", "time"),
)

# Every part returns (kind, schema, name, rel, attrs): ``rel`` is the owning
# relation (for the ignore list), ``attrs`` the attribute values (see _attrs).
_USER_NS = """
    n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
"""


#: Objects created after initdb get OIDs from here on (FirstNormalObjectId; pg_dump tells
#: built-in from user objects the same way).  Filtering on it lets the big catalogs
#: (pg_proc, pg_type, pg_class: thousands of built-in rows) be read by an index range
#: scan that skips the built-ins.  Schemas are still filtered by name: ``public``
#: itself comes from initdb (OID 2200).
_FIRST_USER_OID = 16384


def _not_ext(catalog: str, oid: str) -> str:
    return f"({oid}) NOT IN (SELECT objid FROM ext WHERE classid = '{catalog}'::regclass)"


def _comment(catalog: str, oid: str, sub: str = "0") -> str:
    # what obj_description()/col_description() return, as a plain subquery (an index probe):
    # those are SQL functions, and calling one per object costs more than the rest of the row
    return (f"(SELECT de.description FROM pg_description de WHERE de.objoid = {oid}"
            f" AND de.classoid = '{catalog}'::regclass AND de.objsubid = {sub})")


#: attribute names of each kind, in the order of the values the query sends for it
_ATTRS: dict[str, tuple[str, ...]] = {}


def _attrs(kinds: tuple[str, ...], *pairs: tuple[str, str]) -> str:
    """The attributes of a row as a JSON array of values (names are not sent: ``_ATTRS``).

    Positional values cost the server less than a ``jsonb`` object per row
    (no key strings, no key sorting, no null stripping); :func:`_build`
    turns them back into ``{name: value}`` without the nulls.
    """
    for kind in kinds:
        _ATTRS[kind] = tuple(name for name, _expr in pairs)
    return "json_build_array(\n         " + ",\n         ".join(expr for _name, expr in pairs) + ")"


_RELATION_KINDS = ("table", "view", "materialized view")
_TYPE_KINDS = ("enum type", "domain", "composite type", "range type")
_ROUTINE_KINDS = ("function", "procedure", "aggregate", "window function")

_SCHEMA_ATTRS = _attrs(("schema",), ("comment", _comment('pg_namespace', 'n.oid')))

_EXTENSION_ATTRS = _attrs(("extension",), ("version", "x.extversion"), ("schema", "n.nspname"))

_RELATION_ATTRS = _attrs(
    _RELATION_KINDS,
    ("kind", "CASE c.relkind WHEN 'p' THEN 'partitioned' WHEN 'f' THEN 'foreign' END"),
    ("unlogged", "CASE WHEN c.relpersistence = 'u' THEN true END"),
    ("row level security", "CASE WHEN c.relrowsecurity THEN true END"),
    ("forced row level security", "CASE WHEN c.relforcerowsecurity THEN true END"),
    ("partition key", "CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END"),
    ("partition of", """CASE WHEN c.relispartition THEN
           (SELECT pn.nspname || '.' || pc.relname FROM pg_inherits i
            JOIN pg_class pc ON pc.oid = i.inhparent
            JOIN pg_namespace pn ON pn.oid = pc.relnamespace
            WHERE i.inhrelid = c.oid LIMIT 1) END"""),
    ("partition bound", "pg_get_expr(c.relpartbound, c.oid)"),
    ("options", "array_to_string(c.reloptions, ', ')"),
    ("definition", "CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END"),
    ("comment", _comment('pg_class', 'c.oid')))

_COLUMN_ATTRS = _attrs(
    ("column",),
    ("type", "format_type(a.atttypid, a.atttypmod)"),
    ("nullable", "NOT a.attnotnull"),
    ("default", "CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END"),
    ("generated", """CASE WHEN a.attgenerated <> '' THEN
           CASE a.attgenerated WHEN 's' THEN 'stored: ' ELSE 'virtual: ' END
           || pg_get_expr(d.adbin, d.adrelid) END"""),
    ("identity", "CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END"),
    ("collation", "CASE WHEN a.attcollation <> t.typcollation THEN co.collname END"),
    ("comment", _comment('pg_class', 'c.oid', 'a.attnum')))

_CONSTRAINT_ATTRS = _attrs(
    ("constraint",),
    ("type", """CASE con.contype WHEN 'p' THEN 'primary key' WHEN 'f' THEN 'foreign key'
           WHEN 'u' THEN 'unique' WHEN 'c' THEN 'check' WHEN 'x' THEN 'exclusion'
           WHEN 't' THEN 'trigger' ELSE con.contype::text END"""),
    ("definition", "pg_get_constraintdef(con.oid)"),
    ("deferrable", """CASE WHEN con.condeferrable THEN
           CASE WHEN con.condeferred THEN 'initially deferred' ELSE 'initially immediate' END END"""),
    ("validated", "CASE WHEN NOT con.convalidated THEN false END"),
    ("comment", _comment('pg_constraint', 'con.oid')))

_INDEX_ATTRS = _attrs(
    ("index",),
    ("definition", "pg_get_indexdef(i.indexrelid)"),
    ("valid", "CASE WHEN NOT i.indisvalid THEN false END"),
    ("comment", _comment('pg_class', 'ic.oid')))

_SEQUENCE_ATTRS = _attrs(
    ("sequence",),
    ("type", "format_type(s.seqtypid, NULL)"),
    ("start", "s.seqstart"), ("increment", "s.seqincrement"),
    ("min", "s.seqmin"), ("max", "s.seqmax"), ("cache", "s.seqcache"), ("cycle", "s.seqcycle"),
    ("owned by", """owner.relname || '.' || owner.attname
           || CASE owner.deptype WHEN 'i' THEN ' (identity)' ELSE '' END"""),
    ("comment", _comment('pg_class', 'c.oid')))

_TYPE_ATTRS = _attrs(
    _TYPE_KINDS,
    ("labels", """CASE WHEN t.typtype = 'e' THEN
           (SELECT jsonb_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e
            WHERE e.enumtypid = t.oid) END"""),
    ("base type", "CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END"),
    ("nullable", "CASE WHEN t.typtype = 'd' THEN NOT t.typnotnull END"),
    ("default", "t.typdefault"),
    ("constraints", """CASE WHEN t.typtype = 'd' THEN
           (SELECT jsonb_agg(dc.conname || ' ' || pg_get_constraintdef(dc.oid) ORDER BY dc.conname)
            FROM pg_constraint dc WHERE dc.contypid = t.oid) END"""),
    ("attributes", """CASE WHEN t.typtype = 'c' THEN
           (SELECT jsonb_agg(ta.attname || ' ' || format_type(ta.atttypid, ta.atttypmod) ORDER BY ta.attnum)
            FROM pg_attribute ta WHERE ta.attrelid = t.typrelid AND ta.attnum > 0
              AND NOT ta.attisdropped) END"""),
    ("subtype", """CASE WHEN t.typtype = 'r' THEN
           (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid) END"""),
    ("comment", _comment('pg_type', 't.oid')))

_ROUTINE_ATTRS = _attrs(
    _ROUTINE_KINDS,
    ("definition", "CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(p.oid) END"),
    ("returns", "CASE WHEN p.prokind = 'a' THEN format_type(p.prorettype, NULL) END"),
    ("comment", _comment('pg_proc', 'p.oid')))

_TRIGGER_ATTRS = _attrs(("trigger",), ("definition", "pg_get_triggerdef(tg.oid)"), ("enabled", "tg.tgenabled::text"))

_POLICY_ATTRS = _attrs(
    ("policy",),
    ("command", "pol.polcmd::text"), ("permissive", "pol.polpermissive"),
    ("roles", """(SELECT jsonb_agg(CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END ORDER BY 1)
           FROM unnest(pol.polroles) r)"""),
    ("using", "pg_get_expr(pol.polqual, pol.polrelid)"),
    ("with check", "pg_get_expr(pol.polwithcheck, pol.polrelid)"))

_PARTS_SQL = f"""
SELECT 'schema' AS kind, n.nspname AS schema, n.nspname AS name, NULL::name AS rel,
       {_SCHEMA_ATTRS} AS attrs
FROM ns n
WHERE {_not_ext('pg_namespace', 'n.oid')}

UNION ALL
SELECT 'extension', n.nspname, x.extname, NULL,
       {_EXTENSION_ATTRS}
FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace

UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'table' END,
       n.nspname, c.relname, c.relname,
       {_RELATION_ATTRS}
FROM rel c JOIN ns n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')

UNION ALL
SELECT 'column', n.nspname, c.relname || '.' || a.attname, c.relname,
       {_COLUMN_ATTRS}
FROM rel c
JOIN ns n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f')

UNION ALL
SELECT 'constraint', n.nspname, con.conname, c.relname,
       {_CONSTRAINT_ATTRS}
FROM pg_constraint con
JOIN rel c ON c.oid = con.conrelid
JOIN ns n ON n.oid = c.relnamespace
WHERE con.contype <> 'n'

UNION ALL
SELECT 'index', n.nspname, ic.relname, c.relname,
       {_INDEX_ATTRS}
FROM pg_index i
JOIN rel c ON c.oid = i.indrelid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN ns n ON n.oid = ic.relnamespace

UNION ALL
SELECT 'sequence', n.nspname, c.relname, owner.relname,
       {_SEQUENCE_ATTRS}
FROM pg_sequence s
JOIN rel c ON c.oid = s.seqrelid
JOIN ns n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
  SELECT oc.relname, oa.attname, dep.deptype
  FROM pg_depend dep
  JOIN pg_class oc ON oc.oid = dep.refobjid
  LEFT JOIN pg_attribute oa ON oa.attrelid = dep.refobjid AND oa.attnum = dep.refobjsubid
  WHERE dep.classid = 'pg_class'::regclass AND dep.objid = c.oid
    AND dep.refclassid = 'pg_class'::regclass AND dep.deptype IN ('a', 'i')
  LIMIT 1) owner ON true

UNION ALL
SELECT CASE t.typtype WHEN 'e' THEN 'enum type' WHEN 'd' THEN 'domain'
                      WHEN 'c' THEN 'composite type' ELSE 'range type' END,
       n.nspname, t.typname, NULL,
       {_TYPE_ATTRS}
FROM pg_type t
JOIN ns n ON n.oid = t.typnamespace
WHERE t.oid >= {_FIRST_USER_OID} AND t.typtype IN ('e', 'd', 'c', 'r')
  AND (t.typtype <> 'c' OR (SELECT tc.relkind FROM pg_class tc WHERE tc.oid = t.typrelid) = 'c')
  AND {_not_ext('pg_type', 't.oid')}

UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate'
                      WHEN 'w' THEN 'window function' ELSE 'function' END,
       n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', NULL,
       {_ROUTINE_ATTRS}
FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
WHERE p.oid >= {_FIRST_USER_OID} AND {_not_ext('pg_proc', 'p.oid')}

UNION ALL
SELECT 'trigger', n.nspname, tg.tgname, c.relname,
       {_TRIGGER_ATTRS}
FROM pg_trigger tg
JOIN rel c ON c.oid = tg.tgrelid
JOIN ns n ON n.oid = c.relnamespace
WHERE NOT tg.tgisinternal

UNION ALL
SELECT 'policy', n.nspname, pol.polname, c.relname,
       {_POLICY_ATTRS}
FROM pg_policy pol
JOIN pg_class c ON c.oid = pol.polrelid
JOIN ns n ON n.oid = c.relnamespace
"""

#: per kind, (position, name) of its attributes in the order a jsonb object keeps its keys
#: (shorter names first), so a snapshot's attributes come out in the same order as ever
_ATTR_ORDER = {
    kind: sorted(enumerate(names), key=lambda pair: (len(pair[1].encode()), pair[1].encode()))
    for kind, names in _ATTRS.items()
}

# The whole snapshot as one text value, a JSON array of [kind, schema, name, rel, attrs]
# rows in a fixed order: one row to transfer, and equal schemas give equal texts, so
# the common case (nothing differs) is a string comparison.  $1: tables to ignore.
_SNAPSHOT_SQL = f"""
WITH ns AS MATERIALIZED (SELECT n.oid, n.nspname FROM pg_namespace n WHERE {_USER_NS}),
ext AS MATERIALIZED (SELECT classid, objid FROM pg_depend
                     WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'),
rel AS MATERIALIZED (
  SELECT c.oid, c.relname, c.relnamespace, c.relkind, c.relpersistence, c.relrowsecurity,
         c.relforcerowsecurity, c.relispartition, c.relpartbound, c.reloptions
  FROM pg_class c
  WHERE c.oid >= {_FIRST_USER_OID} AND c.relnamespace = ANY ((SELECT array_agg(oid) FROM ns)::oid[])
    AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') AND {_not_ext('pg_class', 'c.oid')}),
parts AS ({_PARTS_SQL})
SELECT '[' || coalesce(string_agg(json_build_array(p.kind, p.schema, p.name, p.rel, p.attrs)::text, ','
                                  ORDER BY p.kind COLLATE "C", p.schema COLLATE "C", p.name COLLATE "C",
                                           p.rel COLLATE "C"), '') || ']'
FROM parts p
WHERE NOT coalesce(p.rel = ANY ($1), false)
  AND NOT (p.kind IN ('table', 'view', 'materialized view') AND p.name = ANY ($1))
"""

_STATEMENT = "dbops_schema_snapshot_v2"
_PREPARE = sa.text(f"PREPARE {_STATEMENT} (name[]) AS " + _SNAPSHOT_SQL)
_EXECUTE = f"EXECUTE {_STATEMENT} (%s)"  # psycopg2's paramstyle: only ever run on a psycopg2 connection
#: the same query unprepared, with a bound parameter any driver can take
_PLAIN = sa.text(_SNAPSHOT_SQL.replace("($1)", "(CAST(:ignored AS name[]))"))


@dataclass(frozen=True)
class Snapshot:
    """The schema of one database at one moment: ``{object: {attribute: value}}``.

    Objects are named for humans (``table users``, ``column users.email``,
    ``index ix_users_email on users``); objects in schemas other than
    ``public`` are qualified (``audit.log``).  Two snapshots are equal when
    the schemas are identical.
    """

    objects: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.objects)

    def __contains__(self, name: object) -> bool:
        return name in self.objects

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        return self.objects[name]

    def names(self, kind: str | None = None) -> list[str]:
        """Object names, optionally only one kind (``"index"``, ``"enum type"``, ...)."""
        if kind is None:
            return list(self.objects)
        return [k for k in self.objects if _kind_of(k) == kind]


def _kind_of(key: str) -> str:
    for kind in sorted(_ORDER, key=len, reverse=True):
        if key.startswith(kind + " "):
            return kind
    return key.split(" ", 1)[0]


def _qualify(schema: str, name: str) -> str:
    return name if schema == "public" else f"{schema}.{name}"


def _abbreviate(value: Any) -> Any:
    if isinstance(value, str):
        for long, short in _TYPE_ABBREVIATIONS:
            value = value.replace(long, short)
    return value


def _catalog_text(conn: Connection, ignore_tables: Iterable[str]) -> str:
    """The snapshot query's one value: a JSON array of [kind, schema, name, rel, attrs] rows."""
    ignored = sorted(set(ignore_tables))
    if conn.dialect.driver != "psycopg2":
        # another driver (asyncpg, psycopg 3, ...): its own paramstyle, and no PREPARE of ours on it
        return conn.execute(_PLAIN, {"ignored": ignored}).scalar_one()
    fairy = conn.connection
    info = fairy.info  # lives as long as the DBAPI connection
    raw = fairy.dbapi_connection
    if not (raw.autocommit or conn.in_transaction()):
        # a connection outside a transaction: let SQLAlchemy begin it, so its commit() ends it
        if not info.get(_STATEMENT):
            conn.execute(_PREPARE)
            info[_STATEMENT] = True
        return conn.exec_driver_sql(_EXECUTE, (ignored,)).scalar_one()
    # the fast path (every round-trip snapshot): the statement straight on the DBAPI cursor, in
    # autocommit or inside the transaction SQLAlchemy already began; errors still come as DBAPIError
    try:
        with raw.cursor() as cur:
            if not info.get(_STATEMENT):
                # a server-side prepared statement: the big query is planned once per connection
                cur.execute(_PREPARE.text)
                info[_STATEMENT] = True
            cur.execute(_EXECUTE, (ignored,))
            return cur.fetchone()[0]
    except conn.dialect.loaded_dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(_EXECUTE, (ignored,), exc, conn.dialect.loaded_dbapi.Error) from exc


def _build(text: str) -> Snapshot:
    objects: dict[tuple[int, str], dict[str, Any]] = {}
    for kind, schema, name, rel, values in json.loads(text):
        attrs = {attr: values[i] for i, attr in _ATTR_ORDER[kind] if values[i] is not None}
        for attr in ("type", "base type", "subtype", "attributes"):
            if attr in attrs:
                attrs[attr] = _abbreviate(attrs[attr]) if not isinstance(attrs[attr], list) else [
                    _abbreviate(v) for v in attrs[attr]
                ]
        if kind == "constraint":
            display = f"constraint {name} on {_qualify(schema, rel)}"
        elif kind in ("index", "trigger", "policy"):
            display = f"{kind} {name} on {_qualify(schema, rel)}"
        elif kind == "extension":
            display = f"extension {name}"
        elif kind == "schema":
            display = f"schema {name}"
        else:
            display = f"{kind} {_qualify(schema, name)}"
        objects[(_RANK.get(kind, len(_RANK)), display)] = attrs
    ordered = {display: attrs for (_rank, display), attrs in sorted(objects.items())}
    return Snapshot(ordered)


class SnapshotText:
    """A snapshot as the server sent it: one canonical text, expanded only when needed.

    Equal schemas give equal texts (the rows come in a fixed order, the
    attributes as positional values), so comparing two of them is a string
    comparison; only when the texts differ are they expanded into
    :class:`Snapshot` objects (:meth:`snapshot`) and compared as such, which
    is what :func:`diff` shows.  As exact as a snapshot: the text holds every
    attribute, it is not a hash of them.
    """

    __slots__ = ("_snapshot", "text")

    def __init__(self, text: str):
        self.text = text
        self._snapshot: Snapshot | None = None

    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            self._snapshot = _build(self.text)
        return self._snapshot

    @property
    def md5(self) -> str:
        return hashlib.md5(self.text.encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SnapshotText):
            return self.text == other.text or self.snapshot() == other.snapshot()
        if isinstance(other, Snapshot):
            return self.snapshot() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<catalog.SnapshotText {self.md5[:12]} ({len(self.text)} chars)>"


def snapshot_text(conn: Connection, *, ignore_tables: Iterable[str] = DEFAULT_IGNORED_TABLES) -> SnapshotText:
    """The schema of the database behind ``conn``, as a :class:`SnapshotText`: the fast path.

    Same query, same content and same ``ignore_tables`` as :func:`snapshot`,
    but nothing is parsed: compare two with ``==`` or hand them to
    :func:`diff`, which expands them only when they differ.
    """
    return SnapshotText(_catalog_text(conn, ignore_tables))


class SnapshotReader:
    """Snapshots of the database at ``url`` read in the background: :meth:`start` sends the query, :meth:`result` waits.

    A psycopg2 connection of its own in asynchronous mode (``async_=1``,
    always autocommit): the server computes the snapshot while the caller's
    thread goes on with other work (the round-trip tester starts the next
    migration step), with no second Python thread.  At most one query is
    out at a time.  Errors come as the driver raises them; ``timeout``
    (seconds) bounds each wait (TimeoutError), so a server that stopped
    answering cannot hang the caller.
    """

    def __init__(self, url: URL, *, ignore_tables: Iterable[str] = DEFAULT_IGNORED_TABLES,
                 connect_timeout: int = 10, timeout: float = 300.0):
        import psycopg2
        from sqlalchemy.dialects.postgresql.psycopg2 import dialect

        args, kwargs = dialect().create_connect_args(url.set(drivername="postgresql+psycopg2"))
        kwargs.update(connect_timeout=connect_timeout, application_name="dbops")
        self.timeout = timeout
        self._ignored = sorted(set(ignore_tables))
        self.conn = psycopg2.connect(*args, **kwargs, async_=1)
        self.pending = False
        try:
            self._wait()
            self.cursor = self.conn.cursor()
            self.cursor.execute(_PREPARE.text)  # planned once for the connection's life
            self._wait()
        except BaseException:
            self.conn.close()
            raise

    def _wait(self) -> None:
        import select

        import psycopg2.extensions as ext

        fd = self.conn.fileno()
        while True:
            state = self.conn.poll()
            if state == ext.POLL_OK:
                return
            want = ([fd], []) if state == ext.POLL_READ else ([], [fd])
            if not any(select.select(*want, [], self.timeout)[:2]):
                raise TimeoutError(f"the server sent no answer within {self.timeout:g} s")

    def start(self) -> None:
        """Send the snapshot query (the schema as it is now, committed); returns at once."""
        assert not self.pending, "one snapshot at a time"
        self.cursor.execute(_EXECUTE, (self._ignored,))
        self.pending = True

    def result(self) -> SnapshotText:
        """Wait for the query :meth:`start` sent; its snapshot."""
        assert self.pending, "start() first"
        try:
            self._wait()
            return SnapshotText(self.cursor.fetchone()[0])
        finally:
            self.pending = False

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a connection that failed already
            self.conn.close()


def snapshot(conn: Connection, *, ignore_tables: Iterable[str] = DEFAULT_IGNORED_TABLES) -> Snapshot:
    """Read the schema of the database behind ``conn`` from the catalog (one query).

    ``ignore_tables`` names tables (unqualified, any schema) left out together
    with their columns, constraints, indexes, triggers and owned sequences;
    by default Alembic's ``alembic_version``.  Runs inside the connection's
    current transaction, so it sees that transaction's uncommitted DDL.
    """
    return _build(_catalog_text(conn, ignore_tables))


def _fmt(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return " ".join(str(value).split())


#: values longer than this are shown as a line diff instead of ``a != b``
_LONG = 100


def diff(
    a: Snapshot | SnapshotText, b: Snapshot | SnapshotText, *, before: str = "before", after: str = "after downgrade"
) -> list[str]:
    """What differs between two snapshots, one readable line each; empty when identical.

    An object present on one side only gives ``<object>: only <label>``; a
    changed attribute gives ``<object> <attribute>: <value in a> != <value in
    b>`` (multi-line or long values such as function bodies get an indented
    line diff instead).  ``before``/``after`` label ``a`` and ``b``; the defaults suit
    the usual call ``diff(before_upgrade, after_downgrade)``.  Snapshot texts
    (:func:`snapshot_text`) are accepted too: identical ones return ``[]`` at
    once, others are expanded and diffed exactly like snapshots.
    """
    if isinstance(a, SnapshotText) and isinstance(b, SnapshotText) and a.text == b.text:
        return []
    if isinstance(a, SnapshotText):
        a = a.snapshot()
    if isinstance(b, SnapshotText):
        b = b.snapshot()
    lines: list[str] = []
    keys = list(a.objects) + [k for k in b.objects if k not in a.objects]
    keys.sort(key=lambda k: (_RANK.get(_kind_of(k), len(_RANK)), k))
    for key in keys:
        in_a, in_b = key in a.objects, key in b.objects
        if in_a and not in_b:
            lines.append(f"{key}: only {before}")
            continue
        if in_b and not in_a:
            lines.append(f"{key}: only {after}")
            continue
        attrs_a, attrs_b = a.objects[key], b.objects[key]
        for attr in list(attrs_a) + [k for k in attrs_b if k not in attrs_a]:
            va, vb = attrs_a.get(attr), attrs_b.get(attr)
            if va == vb:
                continue
            sa_, sb_ = _fmt(va), _fmt(vb)
            multiline = "\n" in str(va or "").strip() or "\n" in str(vb or "").strip()
            if not multiline and len(sa_) <= _LONG and len(sb_) <= _LONG:
                lines.append(f"{key} {attr}: {sa_} != {sb_}")
                continue
            lines.append(f"{key} {attr}: differs ({before} -> {after}):")
            ua = str(va or "").strip().splitlines()
            ub = str(vb or "").strip().splitlines()
            for line in difflib.unified_diff(ua, ub, before, after, n=1, lineterm=""):
                if line.startswith(("---", "+++")):
                    continue
                lines.append("    " + line)
    return lines
