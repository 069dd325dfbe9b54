"""A tenant project's env.py: its own engine from DATABASE_URL (or dbops' connection); the tenant's schema from
DBOPS_SCHEMA (schema per tenant), its version table there."""

import os

from sqlalchemy import create_engine

from alembic import context

schema = os.environ.get("DBOPS_SCHEMA") or None


def run(connection):
    context.configure(connection=connection, version_table_schema=schema, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=os.environ.get("DATABASE_URL", "postgresql://offline/db"), literal_binds=True,
                      version_table_schema=schema, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    given = context.config.attributes.get("connection")
    if given is not None:
        run(given)
    else:
        with create_engine(os.environ["DATABASE_URL"]).connect() as conn:
            run(conn)
            conn.commit()
