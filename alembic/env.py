"""Alembic environment of the example app.

Models are discovered, not listed: ``app.domains.load_models()`` imports every
``app/domains/<name>/models.py``, so a new domain can never be forgotten here.

The database comes from, in order: a connection passed by the caller in
``config.attributes["connection"]`` (what dbops does, see the alembic
cookbook), the ``sqlalchemy.url`` option, or ``DATABASE_URL``.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from app.domains import load_models

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging_config"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = load_models()

COMPARE = {"compare_type": True, "compare_server_default": True}


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL", "")
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg2://" + url[len(prefix):]
    if not url:
        raise RuntimeError("no database: set DATABASE_URL or sqlalchemy.url")
    return url


def run_migrations_offline() -> None:
    """``--sql`` mode: emit SQL without a connection."""
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        transaction_per_migration=True,
        **COMPARE,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transaction_per_migration=True,
        **COMPARE,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
