"""The example app: a FastAPI service with ``GET /api/health``.

The health contract for expand/contract deploys (see :mod:`dbops.lineage` and
docs/production.md): the endpoint answers **200** when the database is
reachable and its schema is **at or ahead of** the head this code expects,
and **503** when it is **behind** (a migration this code needs has not run),
on a line this code cannot place (**unknown**), unreachable, or not
configured.  The body names both sides: ``heads`` (what this code expects),
``current`` (where the database is) and ``schema`` (``at head`` / ``ahead``
/ ``behind`` / ``unknown``) with a ``detail`` sentence.  So an old release
stays healthy while ``inv deploy`` ships a newer, backward-compatible schema
(schema first), and a new release waits, unhealthy, until it does (code first).

The endpoint is dbops' drop-in router (:mod:`dbops.integrations.fastapi`),
the one any FastAPI project mounts the same way.

Run it with ``uvicorn app.main:app``.
"""

from __future__ import annotations

from functools import lru_cache

import sqlalchemy as sa
from fastapi import FastAPI

from dbops.integrations.fastapi import health_router

from .config import get_settings

app = FastAPI(title="example app")


@lru_cache(maxsize=1)
def _engine() -> sa.Engine | None:
    url = get_settings().database_url
    if not url:
        return None
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, connect_args={"connect_timeout": 3})


# both read on each request (the settings are cached; a test may point a running app elsewhere or add a revision)
app.include_router(health_router(_engine, alembic_ini=lambda: get_settings().alembic_ini, path="/api/health"))
