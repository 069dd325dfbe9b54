"""Projects in the shapes users have: whatever env.py does, dbops reaches the database it means (issue 19, item 6).

Each project under tests/scenarios/users/ is complete and builds its own engine, as real projects do; none
takes the connection dbops offers in ``config.attributes``:

- ``fastapi_sqlmodel``: the full-stack-fastapi-template's shape: a top-level package ``app``, settings from
  ``POSTGRES_*`` (pydantic-settings), a ``postgresql+psycopg`` URL, a revision that creates ``uuid-ossp``;
- ``flask_migrate``: an application factory, Flask-Migrate's own ``migrations/`` (env.py reads ``current_app``,
  alembic.ini has no ``script_location``), the URL in ``SQLALCHEMY_DATABASE_URI``;
- ``async_engine``: an asyncpg engine from the service's own settings (``ORDERS_DB_URL``, named in its
  pyproject's ``[tool.dbops] url-variables``);
- ``import_time_url``: ``DATABASE_URL`` read at import, the app's engine made when its module is imported.

Every test runs ``inv`` as a user does, in the project's folder, on a developer's machine: the project's own
variables point at the dev database (the session's embedded PostgreSQL 18, at the first revision) and
``PROD_DATABASE_URL`` at prod (a PostgreSQL 16 taking SSL connections only, one revision behind head, rows in
its tables).  A fingerprint of each database (tests/fingerprint.py) taken before and after says what changed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fingerprint import assert_unchanged, differences, fingerprint, schema_dump
from pg_servers import SSL_PASSWORD, SSLServer, ensure_clients
from plain_health import plain_health
from sqlalchemy.engine import URL

from dbops import postgres

ROOT = Path(__file__).resolve().parents[3]
USERS = ROOT / "tests" / "scenarios" / "users"
BIN = Path(sys.executable).parent
#: prod's major: the session server is 18, so a deploy also crosses majors (pg_dump, the rehearsal's server)
PROD_MAJOR = 16
#: the dev database's password: trust auth ignores it, nothing may print it
DEV_PASSWORD = "Dev-0nly-Pa55-mkt"

# -- the projects -----------------------------------------------------------------------------------------------


def _render(url: URL, driver: str | None = None, *, query: bool = True) -> str:
    url = url.set(drivername=driver) if driver else url
    return (url if query else url.set(query={})).render_as_string(hide_password=False)


def _postgres_vars(url: URL) -> dict[str, str]:
    """What full-stack-fastapi-template's compose file hands the backend (SSL: libpq's default, sslmode=prefer)."""
    return {"PROJECT_NAME": "Heroes", "POSTGRES_SERVER": url.host, "POSTGRES_PORT": str(url.port),
            "POSTGRES_USER": url.username, "POSTGRES_PASSWORD": url.password or "", "POSTGRES_DB": url.database}


@dataclass(frozen=True)
class Shape:
    name: str
    #: the alembic.ini, relative to the project
    ini: str
    #: the versions folder, relative to the project
    versions: str
    #: the revisions oldest first: dev starts at the first, prod at the second, the third is head
    chain: tuple[str, str, str]
    #: a table with rows from the second revision on; the head revision adds ``head_column`` to it
    table: str
    head_column: str
    #: a column of ``table`` (at head) for the index revision a test adds
    index_column: str
    #: the project's own variables for a database: where its code (and so its env.py) finds the URL
    own: Callable[[URL], dict[str, str]]
    #: the project's own upgrade command (the target revision is appended)
    migrate: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


ALEMBIC_UPGRADE = (str(BIN / "alembic"), "upgrade")

SHAPES = {
    s.name: s for s in (
        Shape("fastapi_sqlmodel", "alembic.ini", "app/alembic/versions",
              ("e2412789c190", "9c0a54914c78", "d98dd8ec85a3"), "user", "nickname", "full_name",
              _postgres_vars, ALEMBIC_UPGRADE),
        Shape("flask_migrate", "migrations/alembic.ini", "migrations/versions",
              ("4f2e1a9b7c3d", "8b6d0e2f1a4c", "2c9a7f3e5b1d"), "user", "about_me", "last_seen",
              lambda url: {"SQLALCHEMY_DATABASE_URI": _render(url, "postgresql+psycopg")},
              (str(BIN / "flask"), "db", "upgrade")),
        # asyncpg takes no libpq query options: the service's URL has none (asyncpg's default, sslmode=prefer)
        Shape("async_engine", "alembic.ini", "migrations/versions",
              ("1b7e3c9d2a4f", "5d2a8f6c3e1b", "a3f9c1e7b2d8"), "customers", "phone", "name",
              lambda url: {"ORDERS_DB_URL": _render(url, "postgresql+asyncpg", query=False)}, ALEMBIC_UPGRADE),
        Shape("import_time_url", "alembic.ini", "migrations/versions",
              ("0e5c7a2b9d3f", "6a1f4d8c2e7b", "c7e2b5a9f1d4"), "products", "barcode", "name",
              lambda url: {"DATABASE_URL": _render(url)}, ALEMBIC_UPGRADE),
    )
}
ALL = pytest.mark.parametrize("shape", list(SHAPES.values()), ids=str)

#: variables of the machine running the suite that would point a project (or dbops) elsewhere
_AMBIENT_NAMES = {"DBOPS_DB", "DBOPS_PROJECT_ROOT", "DBOPS_STATE_DIR", "ALEMBIC_CONFIG", "FLASK_APP",
                  "SQLALCHEMY_DATABASE_URI", "PROJECT_NAME"}
_AMBIENT_SUFFIXES = ("DATABASE_URL", "BACKUP_URL", "HEALTH_URL")
_AMBIENT_PREFIXES = ("POSTGRES_", "ORDERS_", "PG")


def clean_environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in _AMBIENT_NAMES and not k.endswith(_AMBIENT_SUFFIXES) and not k.startswith(_AMBIENT_PREFIXES)}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # `inv`, `alembic`, `flask` as a user has them
    return env


def copy_scenario(shape: Shape, dest: Path) -> Path:
    shutil.copytree(USERS / shape.name, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


# -- servers and databases ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prod_server(tmp_path_factory) -> Iterator[SSLServer]:
    """An SSL-only PostgreSQL 16 for the module's prod databases (contrib included: uuid-ossp)."""
    ensure_clients(PROD_MAJOR)
    server = SSLServer(tmp_path_factory.mktemp(f"prod{PROD_MAJOR}"), PROD_MAJOR)
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="module")
def health() -> Iterator[str]:
    """The app's health URL: 200 with a body that names no revision (the app's own health route does not)."""
    with plain_health("/api/v1/utils/health-check/") as url:
        yield url


class Templates:
    """Databases at a revision, migrated once per module by the project's own tool; tests get copies."""

    def __init__(self, servers: dict[str, object], folder: Path):
        self.servers, self.folder = servers, folder
        self.made: dict[tuple[str, str, str], str] = {}

    def copy(self, shape: Shape, where: str, revision: str) -> URL:
        """A new database on ``where`` (dev | prod) at ``revision`` of ``shape``; its URL."""
        server = self.servers[where]
        template = self.made.get((shape.name, where, revision)) or self._make(shape, where, revision)
        name = f"{where}_{shape.name[:8]}_{uuid.uuid4().hex[:8]}"
        url = postgres.create_database(server.url(), name, template=template)
        return url if where == "prod" else url.set(password=DEV_PASSWORD)

    def _make(self, shape: Shape, where: str, revision: str) -> str:
        server = self.servers[where]
        name = f"tpl_{where}_{shape.name}_{revision}"
        url = postgres.create_database(server.url(), name)
        project = self.folder / shape.name
        if not project.exists():
            copy_scenario(shape, project)
        env = {**clean_environ(), **shape.own(url if where == "prod" else url.set(password=DEV_PASSWORD))}
        done = subprocess.run([*shape.migrate, revision], cwd=project, env=env, capture_output=True, text=True,
                              timeout=300, check=False)
        assert done.returncode == 0, f"{shape} upgrade {revision} on {where}:\n{done.stdout}{done.stderr}"
        self.made[(shape.name, where, revision)] = name
        return name

    def drop(self) -> None:
        for (_, where, _), name in self.made.items():
            postgres.drop_database(self.servers[where].url(), name)


@pytest.fixture(scope="module")
def templates(pg_server, prod_server, tmp_path_factory) -> Iterator[Templates]:
    t = Templates({"dev": pg_server, "prod": prod_server}, tmp_path_factory.mktemp("user-projects"))
    yield t
    t.drop()


# -- a project on a developer's machine ---------------------------------------------------------------------------


def address(url: URL) -> str:
    return f"{url.host}:{url.port}/{url.database}"


@dataclass
class UserProject:
    shape: Shape
    root: Path
    dev: URL
    prod: URL
    env: dict[str, str]
    tmp: Path
    #: more databases to fingerprint (name -> URL)
    others: dict[str, URL]

    def inv(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``inv ARGS`` in the project's folder, as the plan's scenario tests run it."""
        return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
                              cwd=self.root, env=self.env, capture_output=True, text=True, timeout=600, check=False)

    def fingerprints(self) -> dict[str, dict]:
        return {name: fingerprint(url) for name, url in {"dev": self.dev, "prod": self.prod, **self.others}.items()}

    def report(self, command: str = "deploy") -> dict:
        """The newest JSON report of ``inv deploy --env prod`` (plan or deploy) under the project's backups/."""
        found = sorted((self.root / "backups").glob(f"{command}_prod_*.json"), key=lambda p: p.stat().st_mtime)
        assert found, f"no {command}_prod_*.json under {self.root / 'backups'}"
        return json.loads(found[-1].read_text())

    def add_revision(self, rev: str, down: str, upgrade: str, downgrade: str, doc: str) -> Path:
        path = self.root / self.shape.versions / f"{rev}_{doc.replace(' ', '_')}.py"
        path.write_text(f'"""{doc}\n\nRevision ID: {rev}\nRevises: {down}\n\n"""\nfrom alembic import op\n\n\n'
                        f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
                        f"def upgrade():\n    {upgrade}\n\n\ndef downgrade():\n    {downgrade}\n")
        return path


def said(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


def problems_in(done: subprocess.CompletedProcess[str], what: str) -> list[str]:
    """What no command may ever show: a traceback, a password."""
    out, found = said(done), []
    if "Traceback" in out:
        found.append(f"{what} printed a traceback:\n{out[-4000:]}")
    for secret in (DEV_PASSWORD, SSL_PASSWORD):
        if secret in out:
            found.append(f"{what} printed a password")
    return found


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=dev@example.com", "-c", "user.name=dev", *args],
                   capture_output=True, text=True, timeout=60, check=True)


@pytest.fixture
def user_project(templates, health, tmp_path) -> Iterator[Callable[..., UserProject]]:
    """make(shape, prod_at=1): the project in its own git repository, dev at chain[0], prod at chain[prod_at]."""
    made: list[tuple[str, URL]] = []

    def make(shape: Shape, *, prod_at: int = 1) -> UserProject:
        root = copy_scenario(shape, tmp_path / shape.name)
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "the code now serving")  # compat maps prod's revision to this commit
        dev = templates.copy(shape, "dev", shape.chain[0])
        prod = templates.copy(shape, "prod", shape.chain[prod_at])
        made.extend([("dev", dev), ("prod", prod)])
        env = {**clean_environ(), **shape.own(dev)}  # the developer's own settings point at dev
        env.update({
            "DBOPS_PROJECT_ROOT": str(root),
            "ALEMBIC_CONFIG": str(root / shape.ini),
            "DATABASE_URL": _render(dev),
            "PROD_DATABASE_URL": _render(prod),
            "PROD_BACKUP_URL": f"file://{tmp_path / 'offsite'}",
            "PROD_HEALTH_URL": health,
            "DBOPS_STATE_DIR": str(tmp_path / "state"),
            "DBOPS_MONITOR_MINUTES": "0",
            "DBOPS_VERIFY_TIMEOUT": "3",
            "DBOPS_HEALTH_TIMEOUT": "2",
            "DBOPS_DEPLOY_LOCK_WAIT": "1",
        })
        return UserProject(shape, root, dev, prod, env, tmp_path, {})

    yield make
    for where, url in made:
        postgres.drop_database(templates.servers[where].url(), url.database)


# -- read-only commands ---------------------------------------------------------------------------------------------

#: (arguments, exit code, a line fragment that shows the command did its work on the right database)
READ_ONLY: tuple[tuple[tuple[str, ...], int, Callable[[Shape], str]], ...] = (
    (("status",), 0, lambda s: s.chain[0]),  # dev's revision
    (("sync", "--check-only"), 1, lambda s: s.chain[0]),  # dev is behind head: "not in sync" is its answer
    (("deploy", "--env", "prod", "--plan"), 0, lambda s: s.chain[2]),  # the revision prod would get
    (("lint", "--env", "prod"), 0, lambda s: "prefer-text-field"),  # the head's VARCHAR column, linted
    (("compat", "--env", "prod"), 0, lambda s: "compatible"),
)


@ALL
def test_read_only_commands_change_no_database(shape: Shape, user_project):
    """status, sync --check-only, deploy --plan, lint, compat: with revisions pending on dev and on prod (when an
    env.py that opens its own engine used to write), every database is as it was."""
    p = user_project(shape)
    before = p.fingerprints()
    assert before["dev"]["revision"] == [shape.chain[0]] and before["prod"]["revision"] == [shape.chain[1]]
    problems: list[str] = []
    for args, code, shows in READ_ONLY:
        what = f"`inv {' '.join(args)}`"
        done = p.inv(*args)
        after = p.fingerprints()
        for name in before:
            diff = differences(before[name], after[name])
            if diff:
                problems.append(f"{what} changed {name}:\n" + "\n".join(diff))
        if done.returncode != code:
            problems.append(f"{what} exited {done.returncode}, expected {code}:\n{said(done)[-3000:]}")
        elif shows(shape) not in said(done):
            problems.append(f"{what} did not show {shows(shape)!r}:\n{said(done)[-3000:]}")
        problems += problems_in(done, what)
        before = after  # one command's change is not blamed on the next
    assert not problems, "\n\n".join(problems)


# -- deploy ----------------------------------------------------------------------------------------------------------


@ALL
def test_deploy_to_prod_migrates_prod_and_only_prod(shape: Shape, user_project):
    p = user_project(shape)
    before = p.fingerprints()
    done = p.inv("deploy", "--env", "prod")
    assert not problems_in(done, "inv deploy --env prod")
    assert done.returncode == 0, said(done)[-4000:]
    after = p.fingerprints()
    assert_unchanged(before["dev"], after["dev"], "inv deploy --env prod (dev)")
    prod, table = after["prod"], f"public.{shape.table}"
    assert prod["revision"] == [shape.chain[2]]
    assert shape.head_column in prod["tables"][table]["columns"]
    assert prod["tables"][table]["rows"] == before["prod"]["tables"][table]["rows"] > 0
    if shape.name == "fastapi_sqlmodel":
        assert "uuid-ossp" in prod["extensions"] and "public.item" in prod["tables"]
    report = p.report()
    assert report["outcome"] == "success" and report["revision_after"] == [shape.chain[2]]
    assert report["rehearsal"]["ran"] is True and report["rehearsal"]["errors"] == 0  # on by default: a small backup


@ALL
def test_rehearsal_leaves_prod_byte_identical_and_the_lint_gate_sees_the_captured_sql(shape: Shape, user_project):
    p = user_project(shape)
    done = p.inv("backup", "--env", "prod")
    assert done.returncode == 0 and not problems_in(done, "inv backup --env prod"), said(done)[-4000:]
    before, dump = p.fingerprints(), schema_dump(p.prod)
    out = p.tmp / "rehearse.json"

    done = p.inv("rehearse", "--env", "prod", "--json", str(out))
    assert not problems_in(done, "inv rehearse --env prod")
    assert done.returncode == 0, said(done)[-4000:]
    rehearsed = {r["revision"]: r for r in json.loads(out.read_text())["revisions"]}
    assert list(rehearsed) == [shape.chain[2]]
    ran = [s["sql"] for s in rehearsed[shape.chain[2]]["statements"] if "alembic_version" not in s["sql"]]
    assert any(shape.head_column in sql for sql in ran), ran  # captured on the copy, through env.py's own engine
    assert schema_dump(p.prod) == dump
    assert_unchanged(before["prod"], fingerprint(p.prod), "inv rehearse --env prod (prod)")
    assert_unchanged(before["dev"], fingerprint(p.dev), "inv rehearse --env prod (dev)")

    done = p.inv("deploy", "--env", "prod", "--plan")  # rehearses on the newest backup: it is small
    assert not problems_in(done, "inv deploy --env prod --plan")
    assert done.returncode == 0, said(done)[-4000:]
    report = p.report()
    assert report["mode"] == "plan" and report["rehearsal"]["ran"] is True, report["rehearsal"]
    sql = Path(report["dry_run_sql"]).read_text()
    assert f"revision {shape.chain[2]}" in sql and "(captured in a rehearsal)" in sql, sql
    assert shape.head_column in sql
    assert ("prefer-text-field", shape.chain[2]) in [(f["rule"], f["revision"]) for f in report["lint"]], report["lint"]
    assert schema_dump(p.prod) == dump
    assert_unchanged(before, p.fingerprints(), "inv deploy --env prod --plan")


INDEX_REV = "f00dfacade01"


@ALL
def test_a_pending_create_index_on_a_table_with_rows_stops_the_default_deploy_before_prod(shape: Shape, user_project):
    p = user_project(shape, prod_at=2)
    name = f"ix_{shape.table}_{shape.index_column}"
    p.add_revision(INDEX_REV, shape.chain[2], f"op.create_index({name!r}, {shape.table!r}, [{shape.index_column!r}])",
                   f"op.drop_index({name!r}, table_name={shape.table!r})", doc=f"index {shape.index_column}")
    before = p.fingerprints()
    assert before["prod"]["tables"][f"public.{shape.table}"]["rows"] > 0
    done = p.inv("deploy", "--env", "prod")
    assert not problems_in(done, "inv deploy --env prod")
    assert done.returncode == 1, said(done)[-4000:]
    assert "require-concurrent-index-creation" in said(done)
    assert_unchanged(before, p.fingerprints(), "a deploy stopped by its lint gate")
    report = p.report()
    assert report["failed_step"] in ("rehearse", "dry-run") and report["db_changed"] is False, report["failed_step"]


# -- test-rollback ----------------------------------------------------------------------------------------------------


def test_test_rollback_round_trips_the_uuid_ossp_chain(user_project):
    """On a throwaway server (with contrib: uuid-ossp); env.py's own engine must be pointed there, not at dev."""
    p = user_project(SHAPES["fastapi_sqlmodel"])
    before = p.fingerprints()
    done = p.inv("test-rollback")
    assert not problems_in(done, "inv test-rollback")
    assert done.returncode == 0, said(done)[-4000:]
    assert_unchanged(before, p.fingerprints(), "inv test-rollback")


# -- env.py that reaches another database -------------------------------------------------------------------------

REPORTING_PASSWORD = "Rep0rting-Pa55-zzq"


def _unknown_variable(p: UserProject, elsewhere: URL) -> URL:
    """The service's pyproject no longer names ORDERS_DB_URL: it still points at dev while prod deploys."""
    pyproject = p.root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().split("[tool.dbops]")[0])
    return p.dev


def _hard_coded_url(p: UserProject, elsewhere: URL) -> URL:
    """The settings module hard-codes another database (with its password)."""
    settings = p.root / "inventory" / "settings.py"
    url = _render(elsewhere.set(username="postgres", password=REPORTING_PASSWORD))
    settings.write_text(settings.read_text().replace('os.environ["DATABASE_URL"]', repr(url)))
    return elsewhere


REFUSALS = {"unknown url variable": ("async_engine", _unknown_variable),
            "hard-coded url": ("import_time_url", _hard_coded_url)}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_env_py_reaching_another_database_is_refused_in_one_line(case, user_project, pg_server):
    shape, edit = REFUSALS[case]
    p = user_project(SHAPES[shape])
    elsewhere = postgres.create_database(pg_server.url(), f"reporting_{uuid.uuid4().hex[:8]}")
    try:
        tried = edit(p, elsewhere)
        p.others["elsewhere"] = elsewhere
        before = p.fingerprints()
        done = p.inv("deploy", "--env", "prod")
        out = said(done)
        assert done.returncode == 2, out[-4000:]
        assert "Traceback" not in out and REPORTING_PASSWORD not in out and not problems_in(done, "deploy")
        named = [line for line in out.splitlines() if address(tried) in line]
        assert any("env.py" in line for line in named), out[-4000:]  # what env.py tried, in one line
        assert_unchanged(before, p.fingerprints(), "a refused env.py")
    finally:
        postgres.drop_database(pg_server.url(), elsewhere.database)


# -- the local loop ---------------------------------------------------------------------------------------------------

#: a model change per shape: (the models file, the line after which a new column goes, the new line)
MODEL_CHANGES = {
    "import_time_url": ("inventory/models.py", "    barcode: Mapped[str | None] = mapped_column(String(64))\n",
                        "    note: Mapped[str | None] = mapped_column(String(100))\n", "products", "note"),
    "async_engine": ("orders/models.py", "    phone: Mapped[str | None] = mapped_column(String(32))\n",
                     "    loyalty_tier: Mapped[str | None] = mapped_column(String(16))\n", "customers", "loyalty_tier"),
}


@pytest.mark.parametrize("name", list(MODEL_CHANGES))
def test_sync_auto_after_a_model_change_migrates_dev_and_round_trips_on_a_throwaway(name: str, user_project):
    """`inv sync --auto`: pending revisions, a new one generated from the models, applied, proven in place and on
    a throwaway database by its built-in `test-rollback --last 1`, where the app's settings (read at import for
    dev) must be read again for the throwaway database.  Prod is not touched."""
    shape = SHAPES[name]
    p = user_project(shape)
    models, after_line, new_line, table, column = MODEL_CHANGES[name]
    path = p.root / models
    text = path.read_text()
    assert after_line in text
    path.write_text(text.replace(after_line, after_line + new_line))
    before = p.fingerprints()
    done = p.inv("sync", "--auto")
    assert not problems_in(done, "inv sync --auto")
    assert done.returncode == 0, said(done)[-4000:]
    after = p.fingerprints()
    assert_unchanged(before["prod"], after["prod"], "inv sync --auto (prod)")
    assert column in after["dev"]["tables"][f"public.{table}"]["columns"]
    assert after["dev"]["revision"] not in ([shape.chain[0]], [shape.chain[2]])  # the generated one
    assert "test-rollback --last 1 on a throwaway database" in said(done)
    assert "Running upgrade" not in said(done)  # env.py's own log lines stay out of dbops' output
