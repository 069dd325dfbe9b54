"""Shared fixtures: real Postgres servers on loopback, throwaway databases, project copies.

Everything runs against real services on free ports the fixtures pick; nothing
is mocked.  Tests marked ``docker`` skip without a Docker engine, except where
``DBOPS_REQUIRE_DOCKER=1`` (CI sets it): there a missing engine fails them.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from project_copy import copy_project, forget_app_modules  # noqa: E402  (re-exported for tests)

from dbops import postgres  # noqa: E402
from dbops.containers.engine import engine_available, probe  # noqa: E402
from dbops.servers.embedded import FAST_OPTIONS, EmbeddedServer  # noqa: E402

#: the deploy fixtures (db, app, deploy_env) for every test that asks for them by name
pytest_plugins = ["deploy_fixtures"]

_OWN_TEMP = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """A private temp root per session: pytest's shared numbered dirs are pruned by *other* sessions, which
    deletes the data directory of a session server still running (two suites run side by side)."""
    if not config.option.basetemp:
        config.option.basetemp = tempfile.mkdtemp(prefix="dbops-pytest-")
        config.stash[_OWN_TEMP] = config.option.basetemp


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(_OWN_TEMP, None)
    if own:
        shutil.rmtree(own, ignore_errors=True)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") and not engine_available():
        why = f"no Docker engine ({probe()})"
        if os.environ.get("DBOPS_REQUIRE_DOCKER") == "1":
            pytest.fail(f"{why}, and DBOPS_REQUIRE_DOCKER=1 says docker tests must run here")
        pytest.skip(why)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory):
    """One throwaway embedded PostgreSQL 18 for the whole session (127.0.0.1, a free port)."""
    server = EmbeddedServer(tmp_path_factory.mktemp("pg"), port=0, options=FAST_OPTIONS)
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def fresh_db(pg_server):
    """A new empty database on the session server; dropped afterwards. Yields its URL."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    url = postgres.create_database(pg_server.url(), name)
    yield url
    postgres.drop_database(pg_server.url(), name)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the example project, set as DBOPS_PROJECT_ROOT; ``app`` modules are re-imported from it."""
    dest = copy_project(tmp_path / "project")
    monkeypatch.setenv("DBOPS_PROJECT_ROOT", str(dest))
    for key in ("DATABASE_URL", "DBOPS_DB", "LOCAL_DATABASE_URL"):
        monkeypatch.delenv(key, raising=False)
    forget_app_modules()
    monkeypatch.syspath_prepend(str(dest / "backend"))
    yield dest
    forget_app_modules()


# -- S3 (SeaweedFS) ----------------------------------------------------------
from s3_server import ACCESS_KEY, SECRET_KEY, SeaweedS3  # noqa: E402

S3_ENV_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION",
               "AWS_DEFAULT_REGION", "AWS_PROFILE", "BACKUP_URL", "BACKUP_SSE")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """One SeaweedFS (``weed mini``) for the session, every port free; killed at the end.

    Tests may ``stop()``/``start()`` it (the "S3 down mid-upload" test); the
    fixture makes sure it runs again for the next test.
    """
    server = SeaweedS3(tmp_path_factory.mktemp("s3"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> SeaweedS3:
    """The session S3 server, running and empty, with AWS_* variables pointing at it (BACKUP_URL not set)."""
    if s3_server.proc is None or s3_server.proc.poll() is not None:
        s3_server.start()
    for key in S3_ENV_VARS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    s3_server.empty()
    yield s3_server
    if s3_server.proc is None or s3_server.proc.poll() is not None:
        s3_server.start()
