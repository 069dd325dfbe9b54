"""Bad input to ``inv rehearse`` and the deploy's rehearsal flags: one clear message, exit 2, nothing changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from project_copy import copy_project

ROOT = Path(__file__).resolve().parents[3]


def inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "BACKUP_URL")) and k != "DBOPS_DB"}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
                          capture_output=True, text=True, env=full, timeout=120, check=False)


@pytest.mark.parametrize("args,extra,says", [
    (["rehearse", "--server", "mysql://root:hunter2@db/app"], {}, "--server: uses the 'mysql' scheme"),
    (["rehearse", "--server", "postgresql://u:hunter2@db:99999/app"], {}, "--server: has the port '99999'"),
    (["rehearse", "--env", "nope"], {}, "unknown environment 'nope'"),
    (["rehearse", "--format", "yaml"], {}, "unknown --format 'yaml'"),
    (["rehearse"], {"DBOPS_REHEARSE_LARGE_TABLE_MB": "big"}, "DBOPS_REHEARSE_LARGE_TABLE_MB: must be a number"),
    (["rehearse"], {"DBOPS_REHEARSE_MAX_BLOCK_MS": "-5"}, "DBOPS_REHEARSE_MAX_BLOCK_MS: must be at least 0"),
    (["rehearse", "--env", "staging"], {"STAGING_BACKUP_URL": "EMPTY"}, "no complete backup in"),
    (["deploy", "--rehearse", "--no-rehearse"], {}, "--rehearse and --no-rehearse contradict each other"),
    (["deploy", "--rehearse-server", "postgresql://u:hunter2@db.example.com:6543/app"], {},
     "--rehearse-server"),
])
def test_bad_input_is_refused_cleanly(args, extra, says, tmp_path):
    project = copy_project(tmp_path / "project")
    extra = {k: (f"file://{tmp_path / 'store'}" if v == "EMPTY" else v) for k, v in extra.items()}
    done = inv(*args, env={"DBOPS_PROJECT_ROOT": str(project), **extra})
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert says in out and "Traceback" not in out and "hunter2" not in out
    assert not list(project.glob("backups/rehearse_*"))
