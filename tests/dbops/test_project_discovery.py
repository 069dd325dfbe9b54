"""The project dbops manages is found as Alembic's users find theirs: from the working folder up to alembic.ini
(or `[tool.alembic]`), Flask-Migrate's migrations/alembic.ini, -c / ALEMBIC_CONFIG, DBOPS_PROJECT_ROOT; never
dbops' own install location."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dbops.errors import UsageError
from dbops.migrations import Project
from dbops.settings import find_project, load_settings

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "users"


@pytest.fixture(autouse=True)
def _no_ambient(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DBOPS_PROJECT_ROOT", "ALEMBIC_CONFIG", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def ini(folder: Path, script_location: str | None = "%(here)s/migrations") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    line = f"script_location = {script_location}\n" if script_location else ""
    (folder / "alembic.ini").write_text(f"[alembic]\n{line}", encoding="utf-8")
    return folder / "alembic.ini"


def test_from_a_subfolder_the_first_alembic_ini_up_the_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ini(tmp_path / "outer")
    ini(tmp_path / "outer" / "service")
    deep = tmp_path / "outer" / "service" / "app" / "models"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_project() == (tmp_path / "outer" / "service", tmp_path / "outer" / "service" / "alembic.ini")
    settings = load_settings(environ={})
    assert settings.root == tmp_path / "outer" / "service" and settings.state_dir == settings.root / ".dbops"


def test_a_pyproject_with_tool_alembic_marks_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "pyproject.toml").write_text('[tool.alembic]\nscript_location = "%(here)s/migrations"\n')
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "pyproject.toml").write_text('[project]\nname = "not-the-marker"\n')
    monkeypatch.chdir(tmp_path / "src")
    assert find_project().root == tmp_path


def test_flask_migrate_migrations_folder_under_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / ".git").mkdir()  # the search stops at the repository's top: nothing above it is looked at
    ini(tmp_path / "migrations", script_location=None)
    monkeypatch.chdir(tmp_path)
    assert find_project() == (tmp_path, tmp_path / "migrations" / "alembic.ini")
    assert load_settings(environ={}).alembic_ini == tmp_path / "migrations" / "alembic.ini"


def test_no_project_is_a_usage_error_naming_the_places_and_the_ways_out(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch):
    (tmp_path / ".git").mkdir()
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path / "docs")
    with pytest.raises(UsageError) as caught:
        load_settings(environ={})
    error = caught.value
    assert error.exit_code == 2 and "no Alembic project here" in error.message
    assert error.details.splitlines()[0].endswith(f"[tool.alembic]): {tmp_path / 'docs'}, {tmp_path}")  # not above
    assert str(tmp_path / "docs" / "migrations" / "alembic.ini") in error.details
    assert "dbops -c path/to/alembic.ini" in error.hint and "ALEMBIC_CONFIG" in error.hint


def test_alembic_config_and_the_project_root_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    service = ini(tmp_path / "service")
    flask = ini(tmp_path / "flaskapp" / "migrations", script_location=None)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / ".git").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    # named from outside any project: that ini's project (Flask-Migrate's: the folder above migrations/)
    assert load_settings(environ={"ALEMBIC_CONFIG": "../service/alembic.ini"}).root == tmp_path / "service"
    assert load_settings(alembic_ini=flask).root == tmp_path / "flaskapp"
    # named from inside a project: the ini is the one named, the state stays in the project of the folder
    monkeypatch.chdir(tmp_path / "flaskapp")
    settings = load_settings(alembic_ini=service)
    assert (settings.root, settings.alembic_ini) == (tmp_path / "flaskapp", service)
    # DBOPS_PROJECT_ROOT: that folder, its alembic.ini or Flask-Migrate's
    monkeypatch.chdir(elsewhere)
    assert load_settings(environ={"DBOPS_PROJECT_ROOT": str(tmp_path / "flaskapp")}).alembic_ini == flask
    assert load_settings(environ={"DBOPS_PROJECT_ROOT": str(tmp_path / "service")}).alembic_ini == service


def test_a_relative_script_location_is_read_from_the_inis_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    project = Path(shutil.copytree(SCENARIO / "import_time_url", tmp_path / "inventory"))
    text = (project / "alembic.ini").read_text(encoding="utf-8")
    (project / "alembic.ini").write_text(text.replace("script_location = %(here)s/migrations",
                                                      "script_location = migrations"), encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # Alembic itself would look for ./migrations here
    assert Path(Project(project / "alembic.ini").script.dir) == project / "migrations"


def test_a_pyproject_only_project_runs_as_alembic_runs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_db):
    """`alembic init -t pyproject` without an alembic.ini: Alembic's CLI reads [tool.alembic] alone; so does dbops."""
    import subprocess
    import sys

    bin_ = Path(sys.executable).parent
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\nversion = "0"\n')
    subprocess.run([str(bin_ / "alembic"), "init", "-t", "pyproject", "migrations"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=60)
    (tmp_path / "alembic.ini").unlink()  # the logging section only: a project may keep everything in pyproject
    (tmp_path / "migrations" / "versions" / "a1_items.py").write_text(
        'revision = "a1"\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n'
        "import sqlalchemy as sa\nfrom alembic import op\n\n\ndef upgrade():\n"
        '    op.create_table("items", sa.Column("id", sa.Integer, primary_key=True))\n\n\n'
        'def downgrade():\n    op.drop_table("items")\n')
    (tmp_path / "models.py").write_text("import sqlalchemy as sa\n\nmetadata = sa.MetaData()\n"
                                        'items = sa.Table("items", metadata, sa.Column("id", sa.Integer, '
                                        "primary_key=True))\n")
    monkeypatch.chdir(tmp_path)
    place = find_project()
    assert place.root == tmp_path
    project = Project(place.alembic_ini)
    assert project.heads() == ("a1",)
    env = {"DATABASE_URL": fresh_db.render_as_string(hide_password=False), "PATH": f"{bin_}:/usr/bin:/bin"}
    def dbops(*args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([str(bin_ / "dbops"), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300, check=False)
        assert "Traceback" not in r.stdout + r.stderr
        return r

    r = dbops("sync", "--auto")  # the template's env.py: target_metadata = None
    assert r.returncode == 1 and "hint: set target_metadata in env.py" in r.stdout + r.stderr, r.stdout + r.stderr
    env_py = tmp_path / "migrations" / "env.py"
    env_py.write_text(env_py.read_text().replace("target_metadata = None", "from models import metadata\n"
                                                 "target_metadata = metadata"))
    r = dbops("sync", "--auto")
    assert r.returncode == 0 and "in sync" in r.stdout, r.stdout + r.stderr
    with __import__("dbops.postgres", fromlist=["connect"]).connect(fresh_db) as conn:
        assert Project.current(conn) == ("a1",)
