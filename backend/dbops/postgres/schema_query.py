"""The catalog query behind a schema snapshot: every user-visible object of a database in one statement.

One text value comes back, a JSON array of ``[kind, schema, name, rel, attrs]`` rows in a fixed order
(attributes as positional values, :data:`ATTR_ORDER` names them), so equal schemas give equal texts.
:mod:`dbops.postgres.schema_snapshot` runs it (prepared once per connection: :data:`PREPARE`,
:data:`EXECUTE`; or :data:`PLAIN` on a driver other than psycopg2) and turns the text into a snapshot.
The tracked queries (:data:`TRACKED_ALL_SQL`, :data:`TRACKED_DELTA_SQL`, and the tracker they need,
:data:`TRACKER_INSTALL`) send the same rows one by one with their owners, all or only what changed, for
:class:`~dbops.postgres.schema_snapshot.TrackedReader`.
"""

from __future__ import annotations

import sqlalchemy as sa

#: tables never compared (Alembic's own bookkeeping)
DEFAULT_IGNORED_TABLES = frozenset({"alembic_version"})

#: display order of object kinds in a diff
KIND_ORDER = (
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
KIND_RANK = {kind: i for i, kind in enumerate(KIND_ORDER)}

TYPE_ABBREVIATIONS = (
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
    AND n.nspname <> 'dbops_rt'
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

def _parts_sql(only: bool) -> str:
    """Every part; ``only``: just the objects whose owner is in the ``keys`` CTE (a tracked snapshot)."""
    def keyed(oc: str, expr: str) -> str:
        return f"{expr} IN (SELECT k.oid FROM keys k WHERE k.oc = '{oc}')" if only else "true"

    return f"""
SELECT 'schema' AS kind, n.nspname AS schema, n.nspname AS name, NULL::name AS rel,
       {_SCHEMA_ATTRS} AS attrs, 'n' AS oc, n.oid AS ooid, NULL::oid AS sub
FROM ns n
WHERE {_not_ext('pg_namespace', 'n.oid')} AND {keyed('n', 'n.oid')}

UNION ALL
SELECT 'extension', n.nspname, x.extname, NULL,
       {_EXTENSION_ATTRS}, 'x', x.oid, NULL
FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
WHERE {keyed('x', 'x.oid')}

UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'table' END,
       n.nspname, c.relname, c.relname,
       {_RELATION_ATTRS}, 'r', c.oid, NULL
FROM rel c JOIN ns n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')

UNION ALL
SELECT 'column', n.nspname, c.relname || '.' || a.attname, c.relname,
       {_COLUMN_ATTRS}, 'r', c.oid, NULL
FROM rel c
JOIN ns n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f')

UNION ALL
SELECT 'constraint', n.nspname, con.conname, c.relname,
       {_CONSTRAINT_ATTRS}, 'r', c.oid, con.oid
FROM pg_constraint con
JOIN rel c ON c.oid = con.conrelid
JOIN ns n ON n.oid = c.relnamespace
WHERE con.contype <> 'n'

UNION ALL
SELECT 'index', n.nspname, ic.relname, c.relname,
       {_INDEX_ATTRS}, 'r', c.oid, ic.oid
FROM pg_index i
JOIN rel c ON c.oid = i.indrelid
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN ns n ON n.oid = ic.relnamespace

UNION ALL
SELECT 'sequence', n.nspname, c.relname, owner.relname,
       {_SEQUENCE_ATTRS}, 'r', c.oid, NULL
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
       {_TYPE_ATTRS}, 't', t.oid, NULL
FROM pg_type t
JOIN ns n ON n.oid = t.typnamespace
WHERE t.oid >= {_FIRST_USER_OID} AND t.typtype IN ('e', 'd', 'c', 'r')
  AND (t.typtype <> 'c' OR (SELECT tc.relkind FROM pg_class tc WHERE tc.oid = t.typrelid) = 'c')
  AND {_not_ext('pg_type', 't.oid')} AND {keyed('t', 't.oid')}

UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate'
                      WHEN 'w' THEN 'window function' ELSE 'function' END,
       n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', NULL,
       {_ROUTINE_ATTRS}, 'p', p.oid, NULL
FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace
WHERE p.oid >= {_FIRST_USER_OID} AND {_not_ext('pg_proc', 'p.oid')} AND {keyed('p', 'p.oid')}

UNION ALL
SELECT 'trigger', n.nspname, tg.tgname, c.relname,
       {_TRIGGER_ATTRS}, 'r', c.oid, tg.oid
FROM pg_trigger tg
JOIN rel c ON c.oid = tg.tgrelid
JOIN ns n ON n.oid = c.relnamespace
WHERE NOT tg.tgisinternal

UNION ALL
SELECT 'policy', n.nspname, pol.polname, c.relname,
       {_POLICY_ATTRS}, 'r', c.oid, pol.oid
FROM pg_policy pol
JOIN pg_class c ON c.oid = pol.polrelid
JOIN ns n ON n.oid = c.relnamespace
WHERE {keyed('r', 'pol.polrelid')}
"""


_PARTS_SQL = _parts_sql(False)

#: per kind, (position, name) of its attributes in the order a jsonb object keeps its keys
#: (shorter names first), so a snapshot's attributes come out in the same order as ever
ATTR_ORDER = {
    kind: sorted(enumerate(names), key=lambda pair: (len(pair[1].encode()), pair[1].encode()))
    for kind, names in _ATTRS.items()
}

#: the snapshot's common table expressions: user schemas, extension members, user relations (``rel_only``:
#: a condition narrowing them), and the rows (``parts``)
_CTES = f"""ns AS MATERIALIZED (SELECT n.oid, n.nspname FROM pg_namespace n WHERE {_USER_NS}),
ext AS MATERIALIZED (SELECT classid, objid FROM pg_depend
                     WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'),
rel AS MATERIALIZED (
  SELECT c.oid, c.relname, c.relnamespace, c.relkind, c.relpersistence, c.relrowsecurity,
         c.relforcerowsecurity, c.relispartition, c.relpartbound, c.reloptions
  FROM pg_class c
  WHERE c.oid >= {_FIRST_USER_OID} AND c.relnamespace = ANY ((SELECT array_agg(oid) FROM ns)::oid[])
    AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') AND {_not_ext('pg_class', 'c.oid')}{{rel_only}}),
parts AS ({{parts}})"""

# The whole snapshot as one text value, a JSON array of [kind, schema, name, rel, attrs]
# rows in a fixed order: one row to transfer, and equal schemas give equal texts, so
# the common case (nothing differs) is a string comparison.  $1: tables to ignore.
_SNAPSHOT_SQL = "\nWITH " + _CTES.format(rel_only="", parts=_PARTS_SQL) + """
SELECT '[' || coalesce(string_agg(json_build_array(p.kind, p.schema, p.name, p.rel, p.attrs)::text, ','
                                  ORDER BY p.kind COLLATE "C", p.schema COLLATE "C", p.name COLLATE "C",
                                           p.rel COLLATE "C"), '') || ']'
FROM parts p
WHERE NOT coalesce(p.rel = ANY ($1), false)
  AND NOT (p.kind IN ('table', 'view', 'materialized view') AND p.name = ANY ($1))
"""

STATEMENT = "dbops_schema_snapshot_v2"
PREPARE = sa.text(f"PREPARE {STATEMENT} (name[]) AS " + _SNAPSHOT_SQL)
EXECUTE = f"EXECUTE {STATEMENT} (%s)"  # psycopg2's paramstyle: only ever run on a psycopg2 connection
#: the same query unprepared, with a bound parameter any driver can take
PLAIN = sa.text(_SNAPSHOT_SQL.replace("($1)", "(CAST(:ignored AS name[]))"))


# -- tracked snapshots (the round trip's ``DBOPS_ROLLBACK_SNAPSHOTS=tracked``) ------------------------------
# The same rows as the snapshot query, each as its own text (exactly the text the full query joins), with
# its owner (``oc``: n schema, x extension, r relation, t type, p routine; ``ooid``) and, for constraints,
# indexes, triggers and policies, its own oid (``sub``).  A tracked reader keeps the rows of the last
# reading by owner and re-reads only the owners touched since: named by the event triggers below, or
# owning a catalog row written since (``xmin``), or depending on one of those through ``pg_depend``
# (recursively), or gone.  Schema ``dbops_rt`` (left out of every snapshot) holds the tracker.

#: the tracker's schema (never part of a snapshot)
TRACKER_SCHEMA = "dbops_rt"
#: the event triggers, which must stay present and ``ENABLE ALWAYS`` (so ``session_replication_role`` cannot mute them)
TRACKER_TRIGGERS = ("dbops_rt_ddl", "dbops_rt_drop")

TRACKER_INSTALL = f"""
CREATE SCHEMA IF NOT EXISTS {TRACKER_SCHEMA};
CREATE UNLOGGED TABLE IF NOT EXISTS {TRACKER_SCHEMA}.touched (classid oid NOT NULL, objid oid NOT NULL);
CREATE OR REPLACE FUNCTION {TRACKER_SCHEMA}.ddl_end() RETURNS event_trigger LANGUAGE plpgsql
  SECURITY DEFINER SET search_path = pg_catalog AS
  $$BEGIN INSERT INTO {TRACKER_SCHEMA}.touched SELECT classid, objid FROM pg_event_trigger_ddl_commands(); END$$;
CREATE OR REPLACE FUNCTION {TRACKER_SCHEMA}.dropped() RETURNS event_trigger LANGUAGE plpgsql
  SECURITY DEFINER SET search_path = pg_catalog AS
  $$BEGIN INSERT INTO {TRACKER_SCHEMA}.touched SELECT classid, objid FROM pg_event_trigger_dropped_objects(); END$$;
DROP EVENT TRIGGER IF EXISTS {TRACKER_TRIGGERS[0]};
DROP EVENT TRIGGER IF EXISTS {TRACKER_TRIGGERS[1]};
CREATE EVENT TRIGGER {TRACKER_TRIGGERS[0]} ON ddl_command_end EXECUTE PROCEDURE {TRACKER_SCHEMA}.ddl_end();
CREATE EVENT TRIGGER {TRACKER_TRIGGERS[1]} ON sql_drop EXECUTE PROCEDURE {TRACKER_SCHEMA}.dropped();
ALTER EVENT TRIGGER {TRACKER_TRIGGERS[0]} ENABLE ALWAYS;
ALTER EVENT TRIGGER {TRACKER_TRIGGERS[1]} ENABLE ALWAYS;
"""
TRACKER_UNINSTALL = f"""
DROP EVENT TRIGGER IF EXISTS {TRACKER_TRIGGERS[0]};
DROP EVENT TRIGGER IF EXISTS {TRACKER_TRIGGERS[1]};
DROP SCHEMA IF EXISTS {TRACKER_SCHEMA} CASCADE;
"""



#: the status row (part 2): the horizon (next xid: rows written from there on are new) and whether the
#: event triggers are intact (present, ENABLE ALWAYS, unchanged since the last reading: ``$2``)
_TRACKED_TAIL = f"""
SELECT 1 AS part, p.oc, p.ooid, p.sub, p.kind, p.schema, p.name, p.rel,
       json_build_array(p.kind, p.schema, p.name, p.rel, p.attrs)::text AS row
FROM parts p
WHERE NOT coalesce(p.rel = ANY ($1), false)
  AND NOT (p.kind IN ('table', 'view', 'materialized view') AND p.name = ANY ($1))
UNION ALL
SELECT 2, NULL, NULL, NULL, NULL, NULL,
       (SELECT count(*) FROM pg_event_trigger e WHERE e.evtname IN {TRACKER_TRIGGERS!r} AND e.evtenabled = 'A'
          AND {{unchanged}})::text, NULL,
       txid_snapshot_xmax(txid_current_snapshot())::text
"""

#: every row, and the tracker's table emptied: the baseline of the readings after it.  $1: ignored tables
TRACKED_ALL_SQL = (f"WITH cleared AS (DELETE FROM {TRACKER_SCHEMA}.touched RETURNING 1),\n"
                   + _CTES.format(rel_only="", parts=_PARTS_SQL)
                   + _TRACKED_TAIL.format(unchanged="true"))

#: catalog rows that, when written (``xmin`` from the last horizon on), mean an object changed:
#: (catalog of the object, the object)
#: (catalog of the object, the object, the indexed column that is a user object's oid: only those rows are read)
_FRESH = (
    ("pg_class", "'pg_class'::regclass", "oid", "oid"),
    ("pg_attribute", "'pg_class'::regclass", "attrelid", "attrelid"),
    ("pg_attrdef", "'pg_class'::regclass", "adrelid", "adrelid"),
    ("pg_constraint", "'pg_constraint'::regclass", "oid", "oid"),
    ("pg_index", "'pg_class'::regclass", "indrelid", "indexrelid"),
    ("pg_type", "'pg_type'::regclass", "oid", "oid"),
    ("pg_enum", "'pg_type'::regclass", "enumtypid", "enumtypid"),
    ("pg_range", "'pg_type'::regclass", "rngtypid", "rngtypid"),
    ("pg_proc", "'pg_proc'::regclass", "oid", "oid"),
    ("pg_namespace", "'pg_namespace'::regclass", "oid", None),  # ``public`` is a built-in one
    ("pg_extension", "'pg_extension'::regclass", "oid", None),
    ("pg_trigger", "'pg_class'::regclass", "tgrelid", "tgrelid"),
    ("pg_policy", "'pg_class'::regclass", "polrelid", "polrelid"),
    ("pg_rewrite", "'pg_class'::regclass", "ev_class", "ev_class"),
    ("pg_sequence", "'pg_class'::regclass", "seqrelid", "seqrelid"),
    ("pg_inherits", "'pg_class'::regclass", "inhrelid", "inhrelid"),
    ("pg_description", "classoid", "objoid", None),  # a comment on ``public`` too
    ("pg_depend", "classid", "objid", "objid"),
    ("pg_collation", "'pg_collation'::regclass", "oid", "oid"),
)

#: the rows of what changed since the last reading.  $1: ignored tables; $2: the last horizon (bigint);
#: $3, $4, $5: the last reading's sub-objects (oid, catalog letter c/i/g/o, owner relation);
#: $6, $7: its owners (letter, oid).  Part 0 rows name the owners re-read (their old rows are replaced,
#: by nothing when they are gone).
TRACKED_DELTA_SQL = (
    "WITH RECURSIVE\n"
    f"gone AS (DELETE FROM {TRACKER_SCHEMA}.touched RETURNING classid, objid),\n"
    "h AS (SELECT (($2::bigint) % 4294967296)::text::xid AS x),\n"
    "fresh(classid, objid) AS (\n  "
    + "\n  UNION ALL ".join(f"SELECT {cls}, {obj} FROM {cat}, h WHERE age({cat}.xmin) <= age(h.x)"
                          + (f" AND {cat}.{user} >= {_FIRST_USER_OID}" if user else "")
                          for cat, cls, obj, user in _FRESH)
    + "),\n"
    """seeds(classid, objid) AS (SELECT classid, objid FROM gone UNION SELECT classid, objid FROM fresh),
closure(classid, objid) AS (
  SELECT classid, objid FROM seeds
  UNION
  SELECT d.classid, d.objid FROM pg_depend d JOIN closure c ON d.refclassid = c.classid AND d.refobjid = c.objid),
subs(sub, cat, owner) AS (SELECT * FROM unnest($3::oid[], $4::text[], $5::oid[])),
keys(oc, oid) AS MATERIALIZED (
  SELECT 'r', x.objid FROM closure x WHERE x.classid = 'pg_class'::regclass
  UNION SELECT 'r', i.indrelid FROM closure x JOIN pg_index i ON i.indexrelid = x.objid
        WHERE x.classid = 'pg_class'::regclass
  UNION SELECT 'r', con.conrelid FROM closure x JOIN pg_constraint con ON con.oid = x.objid
        WHERE x.classid = 'pg_constraint'::regclass AND con.conrelid <> 0
  UNION SELECT 't', con.contypid FROM closure x JOIN pg_constraint con ON con.oid = x.objid
        WHERE x.classid = 'pg_constraint'::regclass AND con.contypid <> 0
  UNION SELECT 'r', a.adrelid FROM closure x JOIN pg_attrdef a ON a.oid = x.objid
        WHERE x.classid = 'pg_attrdef'::regclass
  UNION SELECT 'r', tg.tgrelid FROM closure x JOIN pg_trigger tg ON tg.oid = x.objid
        WHERE x.classid = 'pg_trigger'::regclass
  UNION SELECT 'r', pol.polrelid FROM closure x JOIN pg_policy pol ON pol.oid = x.objid
        WHERE x.classid = 'pg_policy'::regclass
  UNION SELECT 'r', rw.ev_class FROM closure x JOIN pg_rewrite rw ON rw.oid = x.objid
        WHERE x.classid = 'pg_rewrite'::regclass
  UNION SELECT 't', x.objid FROM closure x WHERE x.classid = 'pg_type'::regclass
  UNION SELECT 't', c.reltype FROM closure x JOIN pg_class c ON c.oid = x.objid
        WHERE x.classid = 'pg_class'::regclass AND c.relkind = 'c'
  UNION SELECT 'p', x.objid FROM closure x WHERE x.classid = 'pg_proc'::regclass
  UNION SELECT 'n', x.objid FROM closure x WHERE x.classid = 'pg_namespace'::regclass
  UNION SELECT 'x', x.objid FROM closure x WHERE x.classid = 'pg_extension'::regclass
  UNION SELECT 'r', s.owner FROM subs s JOIN closure x ON x.objid = s.sub
  UNION SELECT 'r', s.owner FROM subs s
        WHERE CASE s.cat WHEN 'c' THEN NOT EXISTS (SELECT FROM pg_constraint o WHERE o.oid = s.sub)
                         WHEN 'i' THEN NOT EXISTS (SELECT FROM pg_index o WHERE o.indexrelid = s.sub)
                         WHEN 'g' THEN NOT EXISTS (SELECT FROM pg_trigger o WHERE o.oid = s.sub)
                         ELSE NOT EXISTS (SELECT FROM pg_policy o WHERE o.oid = s.sub) END
  UNION SELECT k.oc, k.oid FROM unnest($6::text[], $7::oid[]) k(oc, oid)
        WHERE CASE k.oc WHEN 'r' THEN NOT EXISTS (SELECT FROM pg_class o WHERE o.oid = k.oid)
                        WHEN 't' THEN NOT EXISTS (SELECT FROM pg_type o WHERE o.oid = k.oid)
                        WHEN 'p' THEN NOT EXISTS (SELECT FROM pg_proc o WHERE o.oid = k.oid)
                        WHEN 'n' THEN NOT EXISTS (SELECT FROM pg_namespace o WHERE o.oid = k.oid)
                        ELSE NOT EXISTS (SELECT FROM pg_extension o WHERE o.oid = k.oid) END),
"""
    + _CTES.format(rel_only=" AND c.oid IN (SELECT k.oid FROM keys k WHERE k.oc = 'r')", parts=_parts_sql(True))
    + "\nSELECT 0 AS part, k.oc, k.oid, NULL::oid, NULL, NULL, NULL, NULL, NULL::text FROM keys k\nUNION ALL"
    + _TRACKED_TAIL.format(unchanged="age(e.xmin) > age((SELECT x FROM h))")
)
