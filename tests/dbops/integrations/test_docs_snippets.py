"""docs/production.md's health-contract snippets, copied out of the page and run as its text says.

The FastAPI one as ``main.py`` beside a project's alembic.ini under ``uvicorn main:app``; the Flask one as
``app.py`` beside ``migrations/`` under ``flask run``; each asked with a real GET on a loopback port.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from deploy_fixtures import BASE
from project_copy import ROOT

from dbops.migrations import Project
from dbops.servers.embedded import free_port

DOC = ROOT / "docs" / "production.md"


def snippet(first_line: str) -> str:
    """The ```python block of the doc that starts with ``first_line``."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    found = [b for b in blocks if b.startswith(first_line)]
    assert len(found) == 1, f"docs/production.md has no (single) python block starting {first_line!r}"
    return found[0]


def serve(argv: list[str], cwd: Path, url: str, database_url: str) -> httpx.Response:
    """Run the server as the doc says, GET ``url`` once it answers, stop it."""
    env = {**os.environ, "DATABASE_URL": database_url}
    proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                return httpx.get(url, timeout=10)
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{argv} did not answer: {proc.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.1)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def at_head(project: Path, fresh_db) -> str:
    engine = sa.create_engine(fresh_db)
    try:
        with engine.connect() as conn:
            Project(project / "alembic.ini").upgrade(conn)
            conn.commit()
    finally:
        engine.dispose()
    return fresh_db.render_as_string(hide_password=False)


def test_the_fastapi_snippet_beside_alembic_ini(project: Path, at_head: str):
    (project / "main.py").write_text(snippet("# main.py, beside alembic.ini"))
    port = free_port()
    r = serve(["uvicorn", "main:app", "--port", str(port), "--log-level", "warning"], project,
              f"http://127.0.0.1:{port}/health", at_head)
    assert r.status_code == 200 and (r.json()["schema"], r.json()["heads"]) == ("at head", [BASE])


def test_the_flask_snippet_beside_migrations(project: Path, at_head: str, tmp_path: Path):
    app_dir = tmp_path / "flask_app"
    shutil.copytree(project / "alembic", app_dir / "migrations")  # a Flask-Migrate project's folder
    (app_dir / "app.py").write_text(snippet("# app.py, beside migrations/"))
    port = free_port()
    r = serve(["flask", "run", "--port", str(port)], app_dir, f"http://127.0.0.1:{port}/health", at_head)
    assert r.status_code == 200 and (r.json()["schema"], r.json()["heads"]) == ("at head", [BASE])
