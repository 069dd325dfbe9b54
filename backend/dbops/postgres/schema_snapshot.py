"""A schema snapshot read from the Postgres catalog, and a readable diff of two.

:func:`snapshot` reads every user-visible schema object of the connected
database in **one** catalog query (:mod:`.schema_query`), prepared once per connection (no SQLAlchemy
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

:class:`SnapshotReader` reads snapshots in the background; :class:`TrackedReader`
(``DBOPS_ROLLBACK_SNAPSHOTS=tracked``) gives the same texts but re-reads only
the objects touched since its last reading.

The round-trip tester (``inv test-rollback``) and ``inv sync`` use them to
prove a new revision's downgrade restores the schema exactly.
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from .schema_query import (
    ATTR_ORDER,
    DEFAULT_IGNORED_TABLES,
    EXECUTE,
    KIND_ORDER,
    KIND_RANK,
    PLAIN,
    PREPARE,
    STATEMENT,
    TRACKED_ALL_SQL,
    TRACKED_DELTA_SQL,
    TRACKER_INSTALL,
    TRACKER_UNINSTALL,
    TYPE_ABBREVIATIONS,
)


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
    for kind in sorted(KIND_ORDER, key=len, reverse=True):
        if key.startswith(kind + " "):
            return kind
    return key.split(" ", 1)[0]


def _qualify(schema: str, name: str) -> str:
    return name if schema == "public" else f"{schema}.{name}"


def _abbreviate(value: Any) -> Any:
    if isinstance(value, str):
        for long, short in TYPE_ABBREVIATIONS:
            value = value.replace(long, short)
    return value


def _catalog_text(conn: Connection, ignore_tables: Iterable[str]) -> str:
    """The snapshot query's one value: a JSON array of [kind, schema, name, rel, attrs] rows."""
    ignored = sorted(set(ignore_tables))
    if conn.dialect.driver != "psycopg2":
        # another driver (asyncpg, psycopg 3, ...): its own paramstyle, and no PREPARE of ours on it
        return conn.execute(PLAIN, {"ignored": ignored}).scalar_one()
    fairy = conn.connection
    info = fairy.info  # lives as long as the DBAPI connection
    raw = fairy.dbapi_connection
    if not (raw.autocommit or conn.in_transaction()):
        # a connection outside a transaction: let SQLAlchemy begin it, so its commit() ends it
        if not info.get(STATEMENT):
            conn.execute(PREPARE)
            info[STATEMENT] = True
        return conn.exec_driver_sql(EXECUTE, (ignored,)).scalar_one()
    # the fast path (every round-trip snapshot): the statement straight on the DBAPI cursor, in
    # autocommit or inside the transaction SQLAlchemy already began; errors still come as DBAPIError
    try:
        with raw.cursor() as cur:
            if not info.get(STATEMENT):
                # a server-side prepared statement: the big query is planned once per connection
                cur.execute(PREPARE.text)
                info[STATEMENT] = True
            cur.execute(EXECUTE, (ignored,))
            return cur.fetchone()[0]
    except conn.dialect.loaded_dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(EXECUTE, (ignored,), exc, conn.dialect.loaded_dbapi.Error) from exc


def _build(text: str) -> Snapshot:
    objects: dict[tuple[int, str], dict[str, Any]] = {}
    for kind, schema, name, rel, values in json.loads(text):
        attrs = {attr: values[i] for i, attr in ATTR_ORDER[kind] if values[i] is not None}
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
        objects[(KIND_RANK.get(kind, len(KIND_RANK)), display)] = attrs
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
            self.cursor.execute(PREPARE.text)  # planned once for the connection's life
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
        self.cursor.execute(EXECUTE, (self._ignored,))
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


class TrackedReader(SnapshotReader):
    """A :class:`SnapshotReader` that re-reads only what changed since its last reading (the same texts).

    Below ``_TRACK_FROM`` characters of snapshot (about 400 objects) it reads
    whole snapshots, which cost the server less than finding what changed;
    from there on it installs a tracker in the database (schema ``dbops_rt``,
    left out of every snapshot, and two event triggers ``ENABLE ALWAYS``
    recording the objects each DDL command created, altered or dropped; a
    superuser's privilege).  Its first reading is whole, kept by owner
    (schema, extension, relation, type, routine); each later one re-reads
    only the owners that were touched since: named by the event triggers,
    owning a catalog row written since the last reading (``xmin``: DDL the
    triggers did not see, direct catalog updates), depending on one of those
    through ``pg_depend`` (recursively: a view on a changed table, a column
    of a renamed type, a foreign key to a dropped index), or gone; the rest
    is reused.  The text is the full query's, byte for byte (same rows, same
    order).  When the triggers are no longer intact (dropped, disabled, or
    altered since the last reading), it cannot vouch for what it did not
    see: it reads whole from then on and says why in :attr:`lost`.
    ``verify``: every reading re-reads only what changed, whatever the
    schema's size, and is compared with a whole one (tests).
    """

    def __init__(self, url: URL, *, verify: bool = False, **kwargs: Any):
        super().__init__(url, **kwargs)
        self.verify = verify
        #: track once a whole snapshot is this long (``verify``: from the first reading)
        self.track_from = 0 if verify else _TRACK_FROM
        self._size = 0
        #: why this reader reads whole snapshots (None: it tracks)
        self.lost: str | None = None
        #: the last reading's rows by owner: (sort key, text, sub-object catalog letter, sub-object oid)
        self._rows: dict[tuple[str, int], list[tuple[tuple[Any, ...], str, str | None, int | None]]] = {}
        self._horizon: int | None = None
        #: the rows in the snapshot's order: (sort key, text, owner); the last text; the delta's array parameters
        self._ordered: list[tuple[tuple[Any, ...], str, tuple[str, int]]] = []
        self._text: SnapshotText | None = None
        self._params: tuple[str, ...] | None = None
        #: each owner's share of those parameters, kept until the owner is read again (the rest is reused)
        self._shares: dict[tuple[str, int], tuple[str, str, str, str, str]] = {}
        self._mode = ""
        self._installed = False
        #: the tracker was installed by this reader (and is taken out by :meth:`uninstall`)
        self.installed = False

    def _install(self) -> None:
        """Install the tracker (at the first reading: what was done before, a ``--since`` base, never holds it)."""
        self._installed = True
        try:
            self._sync(TRACKER_INSTALL)  # one implicit transaction: all of it or nothing
            self.installed = True  # from here on taken out again by uninstall(), whatever fails next
            # planned once: a custom plan per reading costs more than the reading
            self._sync("SET plan_cache_mode = force_generic_plan")
            self._sync(f"PREPARE {_TRACKED_ALL} (name[]) AS {TRACKED_ALL_SQL}")
            self._sync(f"PREPARE {_TRACKED_DELTA} (name[], bigint, oid[], text[], oid[], text[], oid[]) AS "
                       f"{TRACKED_DELTA_SQL}")
        except Exception as exc:  # not a superuser (event triggers), or a server without what it needs
            self.lost = f"the schema tracker cannot be installed ({' '.join(str(exc).split())})"

    def _sync(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        self.cursor.execute(sql, params)
        self._wait()
        return self.cursor.fetchall() if self.cursor.description else []

    def start(self) -> None:
        assert not self.pending, "one snapshot at a time"
        if not self._installed and self._size >= self.track_from:
            self._install()
        if self.lost is not None or not self.installed:  # not tracking (yet), or no longer
            self._mode = "whole"
            self.cursor.execute(EXECUTE, (self._ignored,))
        elif self._horizon is None:
            self._mode = "all"
            self.cursor.execute(f"EXECUTE {_TRACKED_ALL} (%s)", (self._ignored,))
        else:
            self._mode = "delta"
            if self._params is None:  # arrays as their text form: thousands of oids adapted in one string
                self._params = self._delta_params()
            self.cursor.execute(
                f"EXECUTE {_TRACKED_DELTA} (%s, %s, %s::oid[], %s::text[], %s::oid[], %s::text[], %s::oid[])",
                (self._ignored, self._horizon, *self._params))
        self.pending = True

    def _delta_params(self) -> tuple[str, ...]:
        """The delta query's arrays (each sub-object's oid, catalog and owner; each owner's catalog and oid) as
        text, joined from each owner's share: only the owners read again since the last reading are formatted."""
        shares = self._shares
        for owner, rows in self._rows.items():
            if owner not in shares:
                subs = [(str(sub), cat) for _key, _text, cat, sub in rows if sub is not None]
                oid = str(owner[1])
                shares[owner] = (",".join(s[0] for s in subs), ",".join(s[1] for s in subs),
                                 ",".join(oid for _ in subs), str(owner[0]), oid)
        columns = zip(*(shares[owner] for owner in self._rows), strict=True) if self._rows else ((),) * 5
        return tuple("{" + ",".join(part for part in column if part) + "}" for column in columns)

    def result(self) -> SnapshotText:
        assert self.pending, "start() first"
        try:
            self._wait()
            rows = self.cursor.fetchall()
        finally:
            self.pending = False
        if self._mode == "whole":
            self._size = len(rows[0][0])
            return SnapshotText(rows[0][0])
        status = rows[-1]
        if status[6] != "2":
            self.lost = ("the schema tracker's event triggers were dropped, disabled or altered"
                         if self._mode == "delta" else "the schema tracker's event triggers are not enabled")
            self._rows, self._horizon, self._ordered, self._params, self._text = {}, None, [], None, None
            self._shares = {}
            return SnapshotText(self._sync(EXECUTE, (self._ignored,))[0][0])
        self._horizon = int(status[8])
        if self._mode == "all":
            self._rows, self._ordered, self._shares = {}, [], {}
        again = {(row[1], row[2]) for row in rows[:-1] if row[0] == 0}
        fresh = [row for row in rows[:-1] if row[0] == 1]
        if self._mode == "delta" and not again and not fresh and self._text is not None:
            snap = self._text  # nothing touched since: the same text
        else:
            for owner in again:
                self._rows.pop(owner, None)
                self._shares.pop(owner, None)
            if again:
                self._ordered = [r for r in self._ordered if r[2] not in again]
            added = []
            for _part, oc, ooid, sub, kind, schema, name, rel, text in fresh:
                cat = _SUB_CATALOG.get(kind) if sub is not None else None
                key = (kind, schema, name, rel is None, rel or "")
                self._rows.setdefault((oc, ooid), []).append((key, text, cat, sub))
                self._shares.pop((oc, ooid), None)
                added.append((key, text, (oc, ooid)))
            if self._mode == "all" or len(added) > 64:
                self._ordered.extend(added)
                self._ordered.sort()
            else:
                for row in added:
                    bisect.insort(self._ordered, row)
            self._params = None
            snap = self._text = SnapshotText("[" + ",".join(r[1] for r in self._ordered) + "]")
        if self.verify and self._mode == "delta":
            whole = SnapshotText(self._sync(EXECUTE, (self._ignored,))[0][0])
            if whole.text != snap.text:
                raise AssertionError("tracked snapshot differs from the whole one: "
                                     + "; ".join(diff(whole, snap, before="whole", after="tracked")))
        return snap

    def uninstall(self) -> None:
        """Take the tracker out of the database (its schema and event triggers); reads whole from then on."""
        assert not self.pending
        if not self.installed:
            return
        self._sync(TRACKER_UNINSTALL)
        self.installed = False
        self.lost = self.lost or "the schema tracker was taken out"


#: below this size (characters of a whole snapshot: about 400 objects) a whole reading costs the server less than
#: finding what changed (its catalog scans)
_TRACK_FROM = 50_000
_TRACKED_ALL = "dbops_tracked_all_v1"
_TRACKED_DELTA = "dbops_tracked_delta_v1"
#: a sub-object's catalog, as the tracked query names it
_SUB_CATALOG = {"constraint": "c", "index": "i", "trigger": "g", "policy": "o"}


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
    keys.sort(key=lambda k: (KIND_RANK.get(_kind_of(k), len(KIND_RANK)), k))
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
