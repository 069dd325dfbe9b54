"""The example app: a FastAPI service with ``GET /api/health``.

The health endpoint answers 200 only when the database is reachable and its
schema is at the migration head, 503 otherwise; the body names both
revisions, which ``inv deploy`` compares against the head it just applied.

Run it with ``uvicorn app.main:app``.
"""

from __future__ import annotations

from functools import lru_cache

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from .config import get_settings

app = FastAPI(title="example app")


@lru_cache(maxsize=1)
def _engine() -> sa.Engine | None:
    url = get_settings().database_url
    if not url:
        return None
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, connect_args={"connect_timeout": 3})


def head_revisions() -> list[str]:
    cfg = Config(str(get_settings().alembic_ini))
    return sorted(ScriptDirectory.from_config(cfg).get_heads())


@app.get("/api/health")
def health() -> JSONResponse:
    heads = head_revisions()
    engine = _engine()
    if engine is None:
        return JSONResponse({"status": "error", "database": "not configured", "heads": heads}, status_code=503)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            has_table = sa.inspect(conn).has_table("alembic_version")
            current = sorted(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()) if has_table else []
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return JSONResponse({"status": "error", "database": "unreachable", "detail": reason, "heads": heads}, status_code=503)
    at_head = current == heads
    body = {
        "status": "ok" if at_head else "error",
        "database": "ok",
        "schema": "at head" if at_head else "not at head",
        "current": current,
        "heads": heads,
        # single-revision convenience fields (what most checkers read)
        "revision": current[0] if len(current) == 1 else None,
        "head": heads[0] if len(heads) == 1 else None,
    }
    return JSONResponse(body, status_code=200 if at_head else 503)
