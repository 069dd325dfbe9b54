"""dbops: ship PostgreSQL schema changes safely with Alembic.

One module per external system (``servers`` for Postgres servers,
``pgtools`` for the client programs, ``migrations`` for Alembic, ...); the
commands in ``tasks.py`` are thin front doors over these.
"""

__version__ = "0.1.0"
