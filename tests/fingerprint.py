"""What "nothing changed" means for a database: its fingerprint, and its schema dump.

:func:`fingerprint` reads a database on its own psycopg2 connection (nothing
of dbops' runs in between): the Alembic revision(s), every table of every
user schema with its columns (type, NOT NULL, default), constraints and row
count, every index with its definition, and the installed extensions.
:func:`assert_unchanged` compares two of them and fails with one line per
difference.  :func:`schema_dump` is ``pg_dump --schema-only`` by the pg_dump
dbops chooses for the server's major.

A module of its own (not conftest.py), imported by name like ``project_copy``.
"""

from __future__ import annotations

from typing import Any

import psycopg2
from sqlalchemy.engine import URL

from dbops.postgres import clients, programs

#: schemas that are PostgreSQL's own
_SYSTEM = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"

_TABLES = f"""
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND {_SYSTEM}
ORDER BY 1, 2
"""

_COLUMNS = f"""
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND {_SYSTEM}
ORDER BY 1, 2, a.attnum
"""

_CONSTRAINTS = f"""
SELECT n.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid)
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {_SYSTEM}
ORDER BY 1, 2, 3
"""

_INDEXES = f"""
SELECT n.nspname, i.relname, pg_get_indexdef(i.oid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = i.relnamespace
WHERE {_SYSTEM}
ORDER BY 1, 2
"""


def connect_args(url: URL) -> dict[str, Any]:
    """psycopg2's keyword arguments for ``url`` (its query, e.g. sslmode / sslrootcert, included)."""
    args = {"host": url.host, "port": url.port, "user": url.username, "password": url.password,
            "dbname": url.database, "connect_timeout": 10, "application_name": "test fingerprint"}
    args.update({k: v if isinstance(v, str) else v[-1] for k, v in url.query.items()})
    return {k: v for k, v in args.items() if v is not None}


def _quoted(schema: str, table: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in (schema, table))


def fingerprint(url: URL) -> dict[str, Any]:
    """The database's revision(s), tables (columns, constraints, rows), indexes and extensions.

    ``revision``: the sorted ``version_num`` values of every ``alembic_version`` table, None when there
    is none.  Keys of ``tables`` and ``indexes`` are ``schema.name``.
    """
    conn = psycopg2.connect(**connect_args(url))
    try:
        conn.set_session(readonly=True, autocommit=True)
        with conn.cursor() as cur:
            cur.execute(_TABLES)
            names = cur.fetchall()
            tables: dict[str, dict[str, Any]] = {
                f"{s}.{t}": {"columns": {}, "constraints": {}, "rows": None} for s, t in names}
            cur.execute(_COLUMNS)
            for schema, table, column, type_, not_null, default in cur.fetchall():
                desc = type_ + (" NOT NULL" if not_null else "") + (f" DEFAULT {default}" if default else "")
                tables[f"{schema}.{table}"]["columns"][column] = desc
            cur.execute(_CONSTRAINTS)
            for schema, table, name, definition in cur.fetchall():
                tables[f"{schema}.{table}"]["constraints"][name] = definition
            cur.execute(_INDEXES)
            indexes = {f"{schema}.{name}": definition for schema, name, definition in cur.fetchall()}
            revisions: list[str] | None = None
            for schema, table in names:
                cur.execute(f"SELECT count(*) FROM {_quoted(schema, table)}")  # names from the catalog
                tables[f"{schema}.{table}"]["rows"] = cur.fetchone()[0]
                if table == "alembic_version":
                    cur.execute(f"SELECT version_num FROM {_quoted(schema, table)}")
                    revisions = sorted((revisions or []) + [r for (r,) in cur.fetchall()])
            cur.execute("SELECT extname, extversion FROM pg_extension ORDER BY 1")
            extensions = dict(cur.fetchall())
    finally:
        conn.close()
    return {"revision": revisions, "extensions": extensions, "tables": tables, "indexes": indexes}


def differences(before: dict[str, Any], after: dict[str, Any], path: str = "") -> list[str]:
    """One line per difference between two fingerprints (or any nested dicts): ``path: old -> new``."""
    if isinstance(before, dict) and isinstance(after, dict):
        lines = []
        for key in sorted(set(before) | set(after), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in after:
                lines.append(f"- {where}: {before[key]!r} (gone)")
            elif key not in before:
                lines.append(f"+ {where}: {after[key]!r} (new)")
            else:
                lines += differences(before[key], after[key], where)
        return lines
    return [] if before == after else [f"~ {path}: {before!r} -> {after!r}"]


def assert_unchanged(before: dict[str, Any], after: dict[str, Any], what: str) -> None:
    """Fail, listing every difference, unless the two fingerprints are equal."""
    diff = differences(before, after)
    assert not diff, f"{what} changed the database:\n" + "\n".join(diff)


def server_major(url: URL) -> int:
    conn = psycopg2.connect(**connect_args(url))
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version_num")
            return int(cur.fetchone()[0]) // 10000
    finally:
        conn.close()


def schema_dump(url: URL) -> str:
    """``pg_dump --schema-only`` of the database, by the pg_dump dbops picks for its server.

    pg_dump 17.6+ / 16.10+ wraps its output in ``\\restrict KEY`` / ``\\unrestrict KEY`` with a new random
    key each run: those two lines are left out, every other byte is pg_dump's.
    """
    client = clients.choose("pg_dump", url=url, server_major=server_major(url))
    out = programs.run([str(client.path), "--schema-only", *programs.conninfo_args(url), programs.dbname_arg(url)],
                       timeout=120, env=programs.libpq_env(url)).stdout
    return "".join(line for line in out.splitlines(keepends=True)
                   if not line.startswith(("\\restrict ", "\\unrestrict ")))
