"""What a manifest records about the database: every user table's row count, and its Alembic revision.

The backup counts rows in the dump's own snapshot; verify-backup counts them
again in the restored database and compares.  The revision is read straight
from ``alembic_version``, without Alembic: the backup process stays lean.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from .. import postgres

_TABLES_SQL = sa.text(
    """
    SELECT n.nspname AS schema, c.relname AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY 1, 2
    """
)


def table_row_counts(conn: Connection) -> dict[str, int]:
    """``{"schema.table": rows}`` for every user table (extension tables excluded)."""
    counts = {}
    for schema, name in conn.execute(_TABLES_SQL).all():
        qualified = f"{postgres.quote_ident(schema)}.{postgres.quote_ident(name)}"
        counts[f"{schema}.{name}"] = int(conn.execute(sa.text(f"SELECT count(*) FROM {qualified}")).scalar_one())
    return counts


def alembic_revisions(conn: Connection) -> tuple[str, ...]:
    """The database's Alembic revision(s), read from ``alembic_version`` (empty: never migrated).

    The same rows ``MigrationContext.get_current_heads()`` reads, without
    loading Alembic's migration machinery (about 12 MB) into the backup process.
    """
    exists = conn.execute(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar_one()
    if not exists:
        return ()
    return tuple(sorted(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()))


def restored_contents(url: URL) -> tuple[dict[str, int], str]:
    """What a restored database holds, to compare with its manifest: row counts, and its server's version."""
    engine = postgres.make_engine(url)
    try:
        with engine.connect() as conn:
            return table_row_counts(conn), conn.execute(sa.text("SHOW server_version")).scalar_one()
    finally:
        engine.dispose()
