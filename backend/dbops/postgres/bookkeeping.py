"""The toolkit's own schema in a deployed database, ``dbops``: its tables, written down once.

- ``dbops.migration_checksums``: a sha256 per applied revision file (:mod:`dbops.deploy.checksums`);
- ``dbops.deploys``: what each deploy/rollback run did (:mod:`dbops.deploy.history`);
- ``dbops.revision_lineage``: every deployed revision and its parents (:mod:`dbops.lineage`).

The schema is its own, so autogenerate (which compares the default schema
only) never proposes to drop these tables.  :func:`create` makes the schema
and the tables a writer needs (``IF NOT EXISTS``: every run may call it);
:func:`exists` tells a reader whether a table is there yet.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

SCHEMA = "dbops"
CHECKSUMS = f"{SCHEMA}.migration_checksums"
DEPLOYS = f"{SCHEMA}.deploys"
LINEAGE = f"{SCHEMA}.revision_lineage"

#: each table's statements, in the order they run (a later column is added by an ALTER)
TABLES: dict[str, list[str]] = {
    CHECKSUMS: [
        f"""CREATE TABLE IF NOT EXISTS {CHECKSUMS} (
        revision   text PRIMARY KEY,
        filename   text NOT NULL,
        sha256     text NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        recorded_by text NOT NULL
    )""",
    ],
    DEPLOYS: [
        f"""CREATE TABLE IF NOT EXISTS {DEPLOYS} (
        id              bigserial PRIMARY KEY,
        command         text NOT NULL,
        env             text NOT NULL,
        started_at      timestamptz NOT NULL DEFAULT now(),
        finished_at     timestamptz,
        outcome         text NOT NULL,
        revision_before text[] NOT NULL,
        revision_after  text[],
        backup_key      text,
        report          jsonb
    )""",
        f"ALTER TABLE {DEPLOYS} ADD COLUMN IF NOT EXISTS pid integer",
        f"ALTER TABLE {DEPLOYS} ADD COLUMN IF NOT EXISTS host text",
    ],
    LINEAGE: [
        f"""CREATE TABLE IF NOT EXISTS {LINEAGE} (
        revision       text PRIMARY KEY,
        down_revisions text[] NOT NULL,
        recorded_at    timestamptz NOT NULL DEFAULT now()
    )""",
    ],
}


def ddl(*tables: str) -> list[str]:
    """The statements that make the schema and ``tables`` (names from :data:`TABLES`), in that order."""
    return [f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}", *(stmt for table in tables for stmt in TABLES[table])]


def create(conn: Connection, *tables: str) -> None:
    """Make the schema and ``tables`` where missing, in the caller's transaction."""
    for stmt in ddl(*tables):
        conn.execute(sa.text(stmt))


def exists(conn: Connection, table: str) -> bool:
    """Whether ``table`` exists (a database no deploy has touched has none of them)."""
    return conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": table}).scalar() is not None
