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

Run it with ``uvicorn app.main:app``.
"""

from __future__ import annotations

from functools import lru_cache

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from dbops import lineage

from .config import get_settings

app = FastAPI(title="example app")


@lru_cache(maxsize=1)
def _engine() -> sa.Engine | None:
    url = get_settings().database_url
    if not url:
        return None
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, connect_args={"connect_timeout": 3})


def _script() -> ScriptDirectory:
    """This code's migrations (read on each request: cheap, and a test may add a revision to a running app)."""
    return ScriptDirectory.from_config(Config(str(get_settings().alembic_ini)))


@app.get("/api/health")
def health() -> JSONResponse:
    script = _script()
    heads = sorted(script.get_heads())
    engine = _engine()
    if engine is None:
        return JSONResponse({"status": "error", "database": "not configured", "heads": heads}, status_code=503)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            has_table = sa.inspect(conn).has_table("alembic_version")
            current = (sorted(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
                       if has_table else [])
            found = lineage.state_for(conn, heads, current, lineage.script_parents(script))
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return JSONResponse({"status": "error", "database": "unreachable", "detail": reason, "heads": heads},
                            status_code=503)
    body = {
        "status": "ok" if found.healthy else "error",
        "database": "ok",
        "schema": found.state,
        "detail": found.detail,
        "current": current,
        "heads": heads,
        # single-revision convenience fields (what most checkers read): the database's, and this code's
        "revision": current[0] if len(current) == 1 else None,
        "head": heads[0] if len(heads) == 1 else None,
    }
    return JSONResponse(body, status_code=200 if found.healthy else 503)
