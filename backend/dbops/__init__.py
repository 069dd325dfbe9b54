"""dbops: ship PostgreSQL schema changes safely with Alembic.

A silent core under a thin front door (``tasks.py``): one package per step of
the team guide it automates (``sync``, ``roundtrip``, ``backup``, ``deploy``,
``monitor``) and one module per external system (``servers``, ``postgres``,
``storage``, ``migrations`` for Alembic, ``squawk``, ``containers``,
``render_api``, ``health``, ``webhook``).  The map: ``docs/architecture.md``.
"""

__version__ = "0.1.0"
