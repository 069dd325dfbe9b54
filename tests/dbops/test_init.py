"""`dbops init` on copies of the user-shaped projects (tests/scenarios/users): it writes [tool.dbops], the
.gitignore lines, the job Dockerfile (+ .dockerignore) and a workflow that actionlint passes; it keeps what
exists, asks before adding to a file, overwrites a differing file only with --force, and a second run writes
nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from dbops import init
from dbops.settings import find_project
from dbops.ui import UI

ROOT = Path(__file__).resolve().parents[2]
USERS = ROOT / "tests" / "scenarios" / "users"
DBOPS = Path(sys.executable).with_name("dbops")
SHA_ACTION = "example-org/dbops@" + "0123456789abcdef" * 2 + "01234567"


class Recorder(UI):
    """A UI that keeps every line and answers questions with ``answer``."""

    def __init__(self, answer: bool = False):
        self.lines: list[str] = []
        self.answer = answer

    def say(self, text: str = "") -> None:
        self.lines.append(text)

    ok = warn = fail = heading = say

    def confirm(self, question: str, *, default: bool = False) -> bool:
        self.lines.append(question)
        return self.answer

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def copy_user_project(name: str, dest: Path) -> Path:
    target = dest / name
    shutil.copytree(USERS / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["git", "init", "-q", str(target)], check=True, timeout=60)  # a project is a repository
    return target


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts[:1]}


def run_init(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ALEMBIC_CONFIG", "DBOPS_PROJECT_ROOT")}
    env["NO_COLOR"] = "1"
    return subprocess.run([str(DBOPS), "init", *args], cwd=root, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300, check=False)


def tool(name: str) -> str:
    here = Path(sys.executable).with_name(name)
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return found


def test_init_in_a_flask_migrate_project_writes_everything_then_nothing(tmp_path):
    """`dbops init` run as a user runs it (the command, from the project's folder), twice."""
    if init.template("job.Dockerfile") is None:
        pytest.fail("dbops has no job Dockerfile template (backend/dbops/templates/job.Dockerfile)")
    project = copy_user_project("flask_migrate", tmp_path)
    before = snapshot(project)

    first = run_init(project)
    assert first.returncode == 0, first.stdout + first.stderr
    for path in ("pyproject.toml", ".gitignore", "Dockerfile", ".dockerignore", ".github/workflows/dbops.yml"):
        assert (project / path).is_file(), path
        assert f"create     {path}" in first.stdout
    assert "Traceback" not in first.stdout + first.stderr
    settings = tomllib.loads((project / "pyproject.toml").read_text())
    assert settings == {"tool": {"dbops": {}}}  # Flask's URL variable is one dbops knows: the example is commented
    assert '# url-variables = ["APP_DB_URL"]' in (project / "pyproject.toml").read_text()
    assert {".dbops/", "backups/"} <= set((project / ".gitignore").read_text().splitlines())
    assert (project / "Dockerfile").read_text() == init.template("job.Dockerfile")
    flow = (project / ".github/workflows/dbops.yml").read_text()
    assert "config: migrations/alembic.ini" in flow and "revisions: migrations/versions/*.py" in flow
    assert {k: v for k, v in snapshot(project).items() if k in before} == before  # nothing of the project changed

    written = snapshot(project)
    second = run_init(project)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nothing to write" in second.stdout and "create" not in second.stdout
    assert snapshot(project) == written

    # the written workflow is one actionlint passes, and zizmor too once `uses:` names a commit
    lint = subprocess.run([tool("actionlint"), "-no-color", ".github/workflows/dbops.yml"], cwd=project,
                          capture_output=True, text=True, timeout=120, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    pinned = run_init(project, "--force", "--action", SHA_ACTION)
    assert pinned.returncode == 0 and "overwrite  .github/workflows/dbops.yml" in pinned.stdout, pinned.stdout
    audit = subprocess.run([tool("zizmor"), "--offline", "--no-progress", ".github/workflows"], cwd=project,
                           capture_output=True, text=True, timeout=120, check=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_existing_files_are_kept_asked_for_and_overwritten_only_with_force(tmp_path):
    project = copy_user_project("fastapi_sqlmodel", tmp_path)
    old_toml = '[project]\nname = "heroes"\nversion = "1.0"\n\n[tool.ruff]\nline-length = 100\n'
    (project / "pyproject.toml").write_text(old_toml)
    (project / ".gitignore").write_text("*.pyc\n/.dbops\n")
    app_dockerfile = "FROM python:3.12-slim\nCMD [\"fastapi\", \"run\", \"app/main.py\"]\n"
    (project / "Dockerfile").write_text(app_dockerfile)
    place = find_project(project)
    template = "FROM python:3.12-slim\n# the job image\n"
    changes = init.plan(place.root, place.alembic_ini, uses=SHA_ACTION, dockerfile=template, dockerignore=".git\n")
    kinds = {c.path: c.kind for c in changes}
    assert kinds == {"pyproject.toml": "add", ".gitignore": "add", "Dockerfile": "differs", ".dockerignore": "create",
                     ".github/workflows/dbops.yml": "create"}

    # asked, answered no: only the new files are written
    ui = Recorder(answer=False)
    outcome = init.apply(place.root, changes, ui=ui)
    assert set(outcome.written) == {".dockerignore", ".github/workflows/dbops.yml"}
    assert (project / "pyproject.toml").read_text() == old_toml
    assert (project / ".gitignore").read_text() == "*.pyc\n/.dbops\n"
    assert (project / "Dockerfile").read_text() == app_dockerfile
    assert "skipped    Dockerfile: it exists and differs" in ui.text and "--force" in ui.text
    assert "add these lines to pyproject.toml?" in ui.text and "--yes" in ui.text

    # --yes: the lines are added, what was there is kept; the app's Dockerfile still is
    ui = Recorder()
    changes = init.plan(place.root, place.alembic_ini, uses=SHA_ACTION, dockerfile=template, dockerignore=".git\n")
    init.apply(place.root, changes, yes=True, ui=ui)
    toml = (project / "pyproject.toml").read_text()
    assert toml.startswith(old_toml)
    parsed = tomllib.loads(toml)
    assert parsed["project"]["name"] == "heroes" and parsed["tool"]["ruff"] == {"line-length": 100}
    assert parsed["tool"]["dbops"] == {}  # POSTGRES_* are known to dbops: nothing to list
    assert (project / ".gitignore").read_text() == ("*.pyc\n/.dbops\n"
                                                    "# dbops: its state and local backups (dbops init)\nbackups/\n")
    assert (project / "Dockerfile").read_text() == app_dockerfile

    # --force overwrites the differing Dockerfile; then a run writes nothing
    changes = init.plan(place.root, place.alembic_ini, uses=SHA_ACTION, dockerfile=template, dockerignore=".git\n")
    assert [c.path for c in changes if c.kind != "same"] == ["Dockerfile"]
    init.apply(place.root, changes, force=True, ui=Recorder())
    assert (project / "Dockerfile").read_text() == template
    changes = init.plan(place.root, place.alembic_ini, uses=SHA_ACTION, dockerfile=template, dockerignore=".git\n")
    assert {c.kind for c in changes} == {"same"}
    assert init.apply(place.root, changes, ui=Recorder()).written == ()


def test_without_a_terminal_and_without_yes_an_existing_file_is_not_changed(tmp_path):
    project = copy_user_project("fastapi_sqlmodel", tmp_path)
    (project / "pyproject.toml").write_text('[project]\nname = "heroes"\n')
    r = run_init(project, "--dockerfile", "dbops.Dockerfile")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (project / "pyproject.toml").read_text() == '[project]\nname = "heroes"\n'
    assert "(no terminal: no)" in r.stdout and "dbops init --yes" in r.stdout
    assert (project / "dbops.Dockerfile").is_file() and (project / "dbops.Dockerfile.dockerignore").is_file()
    r = run_init(project, "--yes", "--dockerfile", "dbops.Dockerfile")
    assert r.returncode == 0 and "tool" in tomllib.loads((project / "pyproject.toml").read_text())


def test_url_variables_are_guessed_from_the_projects_settings(tmp_path):
    """async_engine reads ORDERS_DB_URL through pydantic-settings (env_prefix + db_url): init lists it."""
    project = copy_user_project("async_engine", tmp_path)
    toml = project / "pyproject.toml"
    toml.write_text(toml.read_text().split("[tool.dbops]")[0])  # as it was before the project adopted dbops
    place = find_project(project)
    assert init.url_variable_candidates(place.root, project / "migrations" / "env.py") == ["ORDERS_DB_URL"]
    init.init(place.root, place.alembic_ini, yes=True, uses=SHA_ACTION, ui=Recorder())
    assert tomllib.loads(toml.read_text())["tool"]["dbops"] == {"url-variables": ["ORDERS_DB_URL"]}
    # the fence reads what init wrote
    from dbops.migrations import Project
    assert Project(place.alembic_ini).url_variables == ("ORDERS_DB_URL",)


@pytest.mark.parametrize("args,says", [
    (["--action", "not an action"], "--action 'not an action' is not an action reference"),
])
def test_bad_input_exits_2_with_a_message(tmp_path, args, says):
    project = copy_user_project("flask_migrate", tmp_path)
    before = snapshot(project)
    r = run_init(project, *args)
    assert r.returncode == 2 and says in r.stderr + r.stdout and "Traceback" not in r.stderr
    assert snapshot(project) == before


def test_outside_a_project_init_says_where_it_looked(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    r = run_init(tmp_path)
    assert r.returncode == 2 and "no Alembic project here" in r.stdout + r.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / ".git"]
