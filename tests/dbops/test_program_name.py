"""The commands dbops prints are spelled the way the user ran it: `dbops backup …` under the installed command,
`inv backup …` in this repository; and each printed command runs as printed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from fingerprint import fingerprint
from project_copy import ROOT

from dbops.ui import set_program, spelled

BIN = Path(sys.executable).parent


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "BACKUP_URL"))
            and not k.startswith("DBOPS_") and k != "ALEMBIC_CONFIG"}
    r = subprocess.run(argv, cwd=cwd, env={**full, **env}, capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    return r


def printed(text: str, program: str) -> list[str]:
    return re.findall(rf"`({program} [^`]+)`", text)


def test_spelled_rewrites_commands_only():
    text = "run `inv backup --env prod`; inv --list; an invalid inventory at /usr/bin/inv x; (inv sync)"
    assert spelled(text) == text  # this process runs as inv
    set_program("dbops")
    try:
        assert spelled(text) == ("run `dbops backup --env prod`; dbops --list; an invalid inventory at "
                                 "/usr/bin/inv x; (dbops sync)")
    finally:
        set_program("inv")


def test_an_error_under_dbops_names_a_dbops_command_that_runs_as_printed(project: Path, fresh_db, tmp_path):
    env = {"DATABASE_URL": fresh_db.render_as_string(hide_password=False), "BACKUP_URL": str(tmp_path / "store")}
    r = run([str(BIN / "dbops"), "restore", "--env", "local", "--backup", "latest"], project, env)
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "no complete backup" in out, out
    assert "inv " not in out
    (command,) = printed(out, "dbops")
    assert command == "dbops backup --env local"
    before = fingerprint(fresh_db)
    made = run([str(BIN / shlex.split(command)[0]), *shlex.split(command)[1:]], project, env)
    assert made.returncode == 0, made.stdout + made.stderr
    assert fingerprint(fresh_db) == before  # a backup changes nothing in the database
    assert list((tmp_path / "store").rglob("*.manifest.json"))
    # the same error through this repository's inv: `inv backup …`
    r = run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "verify-backup", "--env", "local",
             "--backup", "nope"], project, {**env, "DBOPS_PROJECT_ROOT": str(project)})
    assert printed(r.stdout + r.stderr, "inv") == ["inv backups --env local"], r.stdout + r.stderr


def test_a_missing_scripts_folder_names_alembics_own_init(tmp_path: Path):
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    r = run([str(BIN / "dbops"), "heads"], tmp_path, {})
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "Path doesn't exist: migrations" in out and "'init' command" not in out, out
    (command,) = printed(out, "alembic")
    assert run([str(BIN / "alembic"), *shlex.split(command)[1:]], tmp_path, {}).returncode == 0
    r = run([str(BIN / "dbops"), "heads"], tmp_path, {})
    assert "no revisions yet" in r.stdout + r.stderr, r.stdout + r.stderr
