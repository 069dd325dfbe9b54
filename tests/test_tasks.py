"""The front door: every task is documented, and the edge maps errors to exit codes."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

from invoke import Collection
from invoke.loader import FilesystemLoader

ROOT = Path(__file__).resolve().parents[1]


def collection() -> Collection:
    module, _ = FilesystemLoader(start=str(ROOT)).load("tasks")
    return Collection.from_module(module)


def test_every_task_has_a_one_line_help_and_every_flag_is_explained():
    tasks = collection().tasks
    assert {"sync", "status", "db-up", "db-down", "db-shell", "config", "test"} <= set(tasks)
    for name, t in tasks.items():
        doc = (t.__doc__ or "").strip()
        assert doc, f"task {name} has no docstring (it is its --help)"
        params = [p for p in inspect.signature(t.body).parameters if p != "c"]
        for p in params:
            assert t.help.get(p) or t.help.get(p.rstrip("_")), f"{name}: flag --{p.replace('_', '-')} has no help"


def test_the_repositorys_tasks_are_the_toolkits_plus_its_test_suite():
    from dbops.tasks import ns

    assert set(collection().tasks) == {*ns.tasks, "test"}
    assert "test" not in ns.tasks  # the toolkit's collection is not changed by this repository's tasks.py


def test_no_flag_has_a_dash_for_its_short_flag():
    """Invoke offers every character of a flag's name as its short flag: `--compat-ref` got `--` (`--=STRING`)."""
    for name, t in collection().tasks.items():
        for argument in t.get_arguments():
            assert "-" not in argument.names, f"{name}: {argument.names}"
    r = inv("--help", "deploy", env={})
    assert r.returncode == 0 and "--compat-ref=STRING" in r.stdout and "--=" not in r.stdout


def inv(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DBOPS_DB")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(cwd), *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=300,
        check=False,
    )


def test_inv_list_shows_the_tasks():
    r = inv("--list", env={})
    assert r.returncode == 0
    for name in ("sync", "status", "db-up", "db-down", "db-shell", "config", "test"):
        assert f"  {name} " in r.stdout


def test_check_only_exits_1_then_0_end_to_end(project, fresh_db):
    env = {"DBOPS_PROJECT_ROOT": str(project), "DATABASE_URL": fresh_db.render_as_string(hide_password=False)}
    r = inv("sync", "--check-only", env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 pending migration" in r.stderr
    r = inv("sync", "--auto", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = inv("sync", "--check-only", env=env)
    assert r.returncode == 0 and "in sync" in r.stdout


def test_unknown_db_value_exits_2(project):
    r = inv("status", "--db", "podman", env={"DBOPS_PROJECT_ROOT": str(project)})
    assert r.returncode == 2
    assert "unknown database provider 'podman'" in r.stderr and "Traceback" not in r.stderr


def test_malformed_url_exits_2_without_the_password(project):
    r = inv("status", env={"DBOPS_PROJECT_ROOT": str(project), "DATABASE_URL": "postgres://u:sup3rs3cret@/nodb"})
    assert r.returncode == 2
    assert "DATABASE_URL" in r.stderr and "sup3rs3cret" not in r.stderr + r.stdout


def test_config_masks_secrets(project):
    r = inv(
        "config",
        "--env",
        "prod",
        env={"DBOPS_PROJECT_ROOT": str(project), "PROD_DATABASE_URL": "postgres://app:pr0dpw@db.example.com/app"},
    )
    assert r.returncode == 0 and "db.example.com" in r.stdout and "pr0dpw" not in r.stdout


def test_quick_start_sync_on_the_embedded_default(project, tmp_path):
    """The README's first command, minus the install: `inv sync` with no DATABASE_URL and no Docker."""
    from dbops.servers.embedded import free_port

    env = {
        "DBOPS_PROJECT_ROOT": str(project),
        "DBOPS_STATE_DIR": str(tmp_path / "state"),
        "DBOPS_EMBEDDED_PORT": str(free_port()),
        "DBOPS_DB": "embedded",  # what auto-selection gives on a machine without Docker
    }
    try:
        r = inv("sync", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "applying 1 pending migration" in r.stdout and "in sync" in r.stdout
        assert (tmp_path / "state/embedded/pgdata/PG_VERSION").is_file()
        r = inv("status", env=env)
        assert r.returncode == 0 and "pending    none" in r.stdout and "drift      none" in r.stdout
        # the server programs of throwaway servers (test-rollback's), and whether they carry contrib
        assert re.search(r"^throwaway  PostgreSQL 18: .*, contrib: (yes|no) \(test-rollback, compat, sync;",
                         r.stdout, re.MULTILINE), r.stdout
    finally:
        r = inv("db-down", env=env)
    assert r.returncode == 0 and "embedded: stopped" in r.stdout


def test_dbops_list_into_a_closed_pipe_ends_without_a_traceback():
    """`dbops --list | head -1`: the reader is gone before dbops writes; one exit code, no traceback."""
    child = subprocess.Popen([sys.executable, "-m", "dbops", "--list"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    child.stdout.close()  # the reader leaves before dbops has started
    _, err = child.communicate(timeout=60)
    assert child.returncode == 1
    assert b"Traceback" not in err and b"BrokenPipeError" not in err
