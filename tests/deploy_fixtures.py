"""Deploy scenarios: a project copy with revisions added per test, a real app served by uvicorn."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from dbops import postgres
from dbops.migrations import Project
from dbops.servers.embedded import free_port
from dbops.settings import load_settings

BASE = "dc524d74cab6"
#: a real-looking password: trust auth ignores it, tests assert it never prints
SECRET = "S3cr3t-Pa55w0rd-xyz"


def add_revision(
    project: Path, rev: str, down: str | None, upgrade: str, downgrade: str = "pass", doc: str | None = None
) -> Path:
    """Write a revision file into the project copy's versions folder."""
    doc = doc or f"revision {rev}"
    body = f'''"""{doc}

Revision ID: {rev}
Revises: {down or ''}
"""
from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{textwrap.indent(textwrap.dedent(upgrade).strip(), "    ")}


def downgrade() -> None:
{textwrap.indent(textwrap.dedent(downgrade).strip(), "    ")}
'''
    path = project / "alembic" / "versions" / f"2027_{rev}_{doc.replace(' ', '_')[:20]}.py"
    path.write_text(body)
    return path


ADD_PHONE = ("op.add_column('users', sa.Column('phone', sa.Text(), nullable=True))",
             "op.drop_column('users', 'phone')")


def current(url: URL) -> list[str]:
    engine = postgres.make_engine(url)
    try:
        with engine.connect() as conn:
            return list(Project.current(conn))
    finally:
        engine.dispose()


def columns(url: URL, table: str) -> list[str]:
    engine = postgres.make_engine(url)
    try:
        with engine.connect() as conn:
            return [c["name"] for c in sa.inspect(conn).get_columns(table)]
    finally:
        engine.dispose()


@pytest.fixture
def db(fresh_db: URL, project: Path) -> URL:
    """The fresh database at the example's first revision, with a password in its URL (trust auth ignores it)."""
    proj = Project(project / "alembic.ini")
    engine = postgres.make_engine(fresh_db)
    try:
        with engine.connect() as conn:
            proj.upgrade(conn, BASE)
            conn.commit()
    finally:
        engine.dispose()
    return fresh_db.set(password=SECRET)


def app_env(project: Path, database_url: URL | str) -> dict[str, str]:
    url = database_url if isinstance(database_url, str) else database_url.render_as_string(hide_password=False)
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        APP_ALEMBIC_INI=str(project / "alembic.ini"),
        PYTHONPATH=str(project / "backend"),
    )
    return env


class App:
    def __init__(self, project: Path, database_url: URL | str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/health"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "warning"],
            cwd=project / "backend",
            env=app_env(project, database_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url, timeout=1)
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"uvicorn exited: {self.proc.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("uvicorn did not answer within 30s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def app(project: Path, db: URL):
    """The example app served by uvicorn on a free loopback port, on the test database."""
    a = App(project, db)
    yield a
    a.stop()


@pytest.fixture
def deploy_env(project: Path, db: URL, app: App, tmp_path: Path) -> dict[str, str]:
    """Environment variables of a prod deploy against the test database and app (short timeouts for tests)."""
    return prod_env(project, db, app.url, tmp_path)


def prod_env(project: Path, db: URL, health_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment variables of a prod deploy against ``db``, checking ``health_url`` (short timeouts for tests)."""
    env = {
        "PROD_HEALTH_URL": health_url,
        "DBOPS_PROJECT_ROOT": str(project),
        "PROD_DATABASE_URL": db.render_as_string(hide_password=False),
        "PROD_BACKUP_URL": f"file://{tmp_path / 'offsite'}",
        "DBOPS_LOCK_TIMEOUT_MS": "300",
        "DBOPS_LOCK_RETRIES": "3",
        "DBOPS_VERIFY_TIMEOUT": "3",
        "DBOPS_HEALTH_TIMEOUT": "2",
        "DBOPS_MONITOR_INTERVAL": "0.5",
        "DBOPS_DEPLOY_LOCK_WAIT": "1",
        "DBOPS_MONITOR_MINUTES": "0",
        # the rehearsal (on by default for small backups) has its own tests: tests/dbops/deploy/test_deploy_rehearse.py
        "DBOPS_REHEARSE_AUTO_MB": "0",
    }
    return env


def settings_for(env: dict[str, str], **extra: str):
    return load_settings("prod", environ={**env, **extra})


def backup_file(env: dict[str, str], key: str) -> Path:
    """The local file of a backup key under a file:// BACKUP_URL (keys may be store-relative)."""
    path = Path(key)
    if path.is_absolute():
        return path
    return Path(env["PROD_BACKUP_URL"].removeprefix("file://")) / key
