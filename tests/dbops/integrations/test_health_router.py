"""dbops.integrations.fastapi: the health contract as a FastAPI router, served by uvicorn, asked over real HTTP.

A FastAPI app of its own (not the example app) mounts ``health_router`` on a copy of the example project's
migrations and a real database; every answer is a real GET on a loopback port, and dbops' own health check
(:mod:`dbops.health`) reads the body as the contract.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from deploy_fixtures import ADD_PHONE, BASE, add_revision
from fastapi import FastAPI
from project_copy import copy_project

from dbops import health, lineage
from dbops.errors import ConfigError
from dbops.integrations.fastapi import health_router
from dbops.migrations import Project
from dbops.servers.embedded import free_port


class Served:
    """A FastAPI app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: FastAPI, path: str):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}{path}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)

    def get(self) -> httpx.Response:
        return httpx.get(self.url, timeout=10)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def serve():
    started: list[Served] = []

    def start(app: FastAPI, path: str = "/health") -> Served:
        started.append(Served(app, path))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def upgrade(project: Path, url, target: str = "head") -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            Project(project / "alembic.ini").upgrade(conn, target)
            conn.commit()
    finally:
        engine.dispose()


def test_behind_at_head_then_ahead_through_the_recorded_lineage(project, fresh_db, tmp_path, serve):
    engine = sa.create_engine(fresh_db, pool_size=2)
    app = FastAPI()
    app.include_router(health_router(engine, alembic_ini=project / "alembic.ini"))
    served = serve(app)
    try:
        # an empty database: this code needs BASE
        r = served.get()
        assert r.status_code == 503
        assert (r.json()["schema"], r.json()["current"], r.json()["heads"]) == ("behind", [], [BASE])

        upgrade(project, fresh_db)
        r = served.get()
        assert r.status_code == 200 and r.json() == {
            "status": "ok", "database": "ok", "schema": "at head",
            "detail": f"the database is at this code's head {BASE}", "current": [BASE], "heads": [BASE],
            "revision": BASE, "head": BASE,
        }

        # the running app's code gains a1 (a new release's files): read from the next request on
        add_revision(project, "a1", BASE, *ADD_PHONE)
        r = served.get()
        assert r.status_code == 503 and r.json()["schema"] == "behind" and "missing: a1" in r.json()["detail"]

        # a newer release (a1, then b2) deploys its schema and records its lineage: this code is behind no more
        newer = copy_project(tmp_path / "newer")
        add_revision(newer, "a1", BASE, *ADD_PHONE)
        add_revision(newer, "b2", "a1", "op.add_column('users', sa.Column('nick', sa.Text()))",
                     "op.drop_column('users', 'nick')")
        upgrade(newer, fresh_db)
        r = served.get()
        assert r.status_code == 503 and r.json()["schema"] == "unknown"  # b2: not in this code, not recorded
        with engine.connect() as conn:
            lineage.record(conn, Project(newer / "alembic.ini"))
        r = served.get()
        assert r.status_code == 200, r.json()
        assert (r.json()["schema"], r.json()["current"], r.json()["heads"]) == ("ahead", ["b2"], ["a1"])

        # dbops' own check reads this body as the contract, in the contract's words
        h = health.check(served.url, expected_heads=["b2"])
        assert h.ok and h.contract and (h.schema, h.revision, h.app_heads) == ("ahead", ["b2"], ["a1"])
        assert h.reason == "HTTP 200, schema ahead: database at b2, the app's code expects a1"
    finally:
        engine.dispose()


def test_a_url_and_a_script_location_on_another_path(project, fresh_db, serve):
    """The database as a URL (``postgres://`` as platforms hand it out), the scripts as a folder."""
    upgrade(project, fresh_db)
    raw = fresh_db.render_as_string(hide_password=False).replace("postgresql+psycopg2://", "postgres://")
    app = FastAPI()
    app.include_router(health_router(raw, script_location=project / "alembic", path="/api/ready"))
    r = serve(app, "/api/ready").get()
    assert r.status_code == 200 and r.json()["schema"] == "at head"


def test_unreachable_database_and_unreadable_scripts_are_503_with_a_reason(project, tmp_path, serve):
    app = FastAPI()
    app.include_router(health_router(f"postgresql://app:hidden-pw@127.0.0.1:{free_port()}/app",
                                     alembic_ini=project / "alembic.ini"))
    broken = tmp_path / "broken"
    (broken / "versions").mkdir(parents=True)
    (broken / "versions" / "x_bad.py").write_text("revision = 'x'\ndown_revision = (\n")
    app.include_router(health_router(None, script_location=broken, path="/broken"))
    served = serve(app)
    r = served.get()
    assert r.status_code == 503 and r.json()["database"] == "unreachable" and "hidden-pw" not in r.text
    assert r.json()["heads"] == [BASE]
    r = httpx.get(served.url.replace("/health", "/broken"), timeout=10)
    assert r.status_code == 503 and r.json()["detail"].startswith("this app's migration scripts cannot be read:")


def test_no_database_configured_is_503_and_a_bad_url_fails_at_start(project, serve):
    app = FastAPI()
    app.include_router(health_router(lambda: None, alembic_ini=project / "alembic.ini"))
    r = serve(app).get()
    assert r.status_code == 503 and r.json() == {"status": "error", "database": "not configured", "heads": [BASE]}
    with pytest.raises(ConfigError, match="the health contract's database URL"):
        health_router("mysql://app@db/app", alembic_ini=project / "alembic.ini")
    with pytest.raises(TypeError, match="pass one of alembic_ini="):
        health_router(None)


def test_only_the_integration_modules_import_their_framework():
    """dbops (every module but the two integrations) imports neither FastAPI nor Flask; without the framework,
    importing its integration says what to install."""
    code = """
import importlib, pkgutil, sys
import dbops
skip = {"dbops.integrations.fastapi", "dbops.integrations.flask", "dbops.__main__"}
for m in pkgutil.walk_packages(dbops.__path__, "dbops."):
    if m.name not in skip and ".load_models" not in m.name:
        importlib.import_module(m.name)
loaded = sorted(n for n in sys.modules if n.split(".")[0] in ("fastapi", "flask", "starlette", "werkzeug"))
assert not loaded, loaded
sys.modules["fastapi"] = None  # as if FastAPI were not installed
try:
    import dbops.integrations.fastapi
except ImportError as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "dbops.integrations.fastapi needs FastAPI" in out.stdout and "pip install fastapi" in out.stdout
