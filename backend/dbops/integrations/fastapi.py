"""``health_router``: dbops' health contract as a FastAPI ``APIRouter``.

    from dbops.integrations.fastapi import health_router

    app.include_router(health_router(engine, alembic_ini="alembic.ini", path="/api/health"))

``GET path`` answers 200 when the database is at or ahead of the head this
code expects, 503 otherwise, with the contract's JSON body
(:mod:`dbops.integrations.contract`).  The only module of dbops that imports
FastAPI (``pip install fastapi``).
"""

from __future__ import annotations

try:
    from fastapi import APIRouter
    from fastapi.responses import JSONResponse
except ImportError as exc:  # FastAPI is the app's own dependency, not dbops'
    raise ImportError(f"dbops.integrations.fastapi needs FastAPI ({exc}): pip install fastapi") from None

from .contract import Database, HealthContract, PathSource


def health_router(
    database: Database, *, alembic_ini: PathSource = None, script_location: PathSource = None,
    path: str = "/health", name: str = "dbops_health", include_in_schema: bool = True,
) -> APIRouter:
    """An ``APIRouter`` with ``GET path`` answering dbops' health contract.

    ``database``: the app's Engine, its URL, or a callable returning either (or None: 503 "not configured");
    the scripts: ``alembic_ini`` (the project's alembic.ini) or ``script_location`` (the migrations folder);
    either may be a callable, read on each request.
    """
    contract = HealthContract(database, alembic_ini=alembic_ini, script_location=script_location)
    router = APIRouter()

    # a sync endpoint: FastAPI runs it in its thread pool, so the database round trip never blocks the event loop
    @router.get(path, name=name, include_in_schema=include_in_schema)
    def health() -> JSONResponse:
        found = contract.answer()
        return JSONResponse(found.body, status_code=found.status)

    router.contract = contract  # the answer without HTTP, for an app's own checks
    return router
