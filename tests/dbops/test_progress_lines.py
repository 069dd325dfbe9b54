"""Progress lines in logs (no terminal): each state once, the final line once; on a terminal, one live line.

Real runs through `inv` with stdout a pipe, as CI and ``docker run`` capture it, and the progress object on a
real pseudo-terminal.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from deploy_fixtures import SECRET
from project_copy import ROOT

from dbops.console import TerminalProgress


def inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "BACKUP_URL"))
            and not k.startswith("DBOPS_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], env=full,
                          capture_output=True, text=True, timeout=300, check=False)


def test_a_backup_and_a_restore_say_their_progress_once_in_a_log(project: Path, db, tmp_path: Path):
    env = {"DBOPS_PROJECT_ROOT": str(project), "PROD_DATABASE_URL": db.render_as_string(hide_password=False),
           "PROD_BACKUP_URL": f"file://{tmp_path / 'offsite'}"}
    r = inv("backup", "--env", "prod", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    said = [line for line in r.stdout.splitlines() if line.startswith("backup ") and " MiB at " in line]
    assert len(said) == 1, r.stdout  # was twice: the first chunk's state, then the same closing line
    r = inv("verify-backup", "--env", "prod", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    said = [line for line in r.stdout.splitlines() if line.startswith("restore ") and " MiB at " in line]
    assert len(said) == 1 and said[0].endswith("checksum ok"), r.stdout
    assert SECRET not in r.stdout + r.stderr


def test_a_log_gets_each_state_once_and_a_terminal_one_live_line(monkeypatch):
    read, write = os.pipe()
    with os.fdopen(write, "w") as log:
        bar = TerminalProgress(every=0, stream=log)  # every state is due at once: each printed once
        for state in ("1 of 3", "2 of 3", "3 of 3"):
            bar.update(state)
        bar.done("done: 3")
    with os.fdopen(read) as out:
        assert out.read().splitlines() == ["1 of 3", "2 of 3", "3 of 3", "done: 3"]

    monkeypatch.setenv("TERM", "xterm")  # a terminal that is not 'dumb'
    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as terminal:
        bar = TerminalProgress(stream=terminal)
        assert bar.tty
        for state in ("1 of 3", "2 of 3", "3 of 3"):
            bar.update(state)
        bar.done("done: 3")
    shown = os.read(master, 4096).decode()
    os.close(master)
    assert shown.count("done: 3") == 1 and shown.count("\n") == 1 and shown.count("3 of 3") == 1, repr(shown)
