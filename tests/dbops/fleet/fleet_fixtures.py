"""Fleet fixtures: a tenant project (two revisions: a1 applied, b2 pending), tenant databases made from one
migrated template database, a schema-per-tenant database, a sampler of pg_stat_activity."""

from __future__ import annotations

import shutil
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbops import postgres
from dbops.migrations import Project

HERE = Path(__file__).resolve().parent


@pytest.fixture
def fleet_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of tests/dbops/fleet/project, the working folder and DBOPS_PROJECT_ROOT."""
    dest = tmp_path / "tenants"
    shutil.copytree(HERE / "project", dest)
    for key in ("DATABASE_URL", "LOCAL_DATABASE_URL", "DBOPS_DB", "ALEMBIC_CONFIG", "DBOPS_FLEET_FILE", "BACKUP_URL",
                "NOTIFY_WEBHOOK_URL", "HEALTH_URL", "DBOPS_SCHEMA"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DBOPS_PROJECT_ROOT", str(dest))
    monkeypatch.chdir(dest)
    return dest


class Tenants:
    """Databases ``<prefix>_<n>`` on the session server, each at revision a1 (copies of one migrated template)."""

    def __init__(self, server, count: int, *, at: str = "a1", project: Path):
        self.server = server
        self.prefix = f"fl{uuid.uuid4().hex[:6]}"
        self.names = [f"{self.prefix}_{i:03d}" for i in range(count)]
        self.template = f"{self.prefix}_tpl"
        url = postgres.create_database(server.url(), self.template)
        with postgres.connect(url) as conn:
            Project(project / "alembic.ini").upgrade(conn, at)
            conn.commit()
        for name in self.names:
            postgres.create_database(server.url(), name, template=self.template)

    def url(self, name: str) -> sa.engine.URL:
        return self.server.url(name)

    def template_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.server.port}/{{name}}"

    def revisions(self) -> dict[str, list[str]]:
        out = {}
        for name in self.names:
            with postgres.connect(self.url(name)) as conn:
                out[name] = sorted(r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version")))
        return out

    def drop(self) -> None:
        with postgres.admin_connection(self.server.url()) as conn:  # one connection for all of them
            for name in [*self.names, self.template]:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {postgres.quote_ident(name)} WITH (FORCE)"))


@pytest.fixture
def tenants(pg_server, fleet_project):
    made: list[Tenants] = []

    def make(count: int, **kw) -> Tenants:
        t = Tenants(pg_server, count, project=fleet_project, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.drop()


def make_schemas(url, count: int, *, prefix: str = "tenant") -> list[str]:
    """``count`` schemas in the database at ``url``, each with items and an alembic_version at a1 (one statement)."""
    names = [f"{prefix}_{i:04d}" for i in range(count)]
    sql = ";".join(
        f"CREATE SCHEMA {n}; CREATE TABLE {n}.items (id bigint PRIMARY KEY, name text); "
        f"CREATE TABLE {n}.alembic_version (version_num varchar(32) NOT NULL PRIMARY KEY); "
        f"INSERT INTO {n}.alembic_version VALUES ('a1')" for n in names)
    with postgres.connect(url) as conn:
        conn.exec_driver_sql(sql)
        conn.commit()
    return names


def write_fleet(project: Path, body: str) -> None:
    """The project's pyproject.toml with this [tool.dbops.fleet.local] body (and nothing else)."""
    (project / "pyproject.toml").write_text("[tool.dbops.fleet.local]\n" + body)


class ConnectionSampler:
    """The peak number of backends connected to databases whose names start with ``prefix`` (pg_stat_activity),
    sampled every few milliseconds in a thread until stopped."""

    def __init__(self, server, prefix: str, interval: float = 0.005):
        self.server, self.prefix, self.interval = server, prefix, interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with postgres.connect(self.server.url()) as conn:
            conn.execute(sa.text("SET application_name = 'fleet sampler'"))
            while not self._stop.is_set():
                n = conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname LIKE :p "
                                         "AND pid <> pg_backend_pid()"), {"p": self.prefix + "%"}).scalar_one()
                conn.rollback()
                self.peak = max(self.peak, n)
                self.samples += 1
                self._stop.wait(self.interval)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
