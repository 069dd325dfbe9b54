"""The exit codes docs/container.md promises, one real case of each row, through `inv` as a job runs it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from deploy_fixtures import ADD_PHONE, BASE, SECRET, add_revision, current
from project_copy import ROOT


def inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "BACKUP_URL", "HEALTH_URL"))
            and not k.startswith("DBOPS_")}
    full.update(env)
    r = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], env=full,
                       capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in r.stdout + r.stderr and SECRET not in r.stdout + r.stderr
    return r


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def documented() -> dict[int, str]:
    table = (ROOT / "docs" / "container.md").read_text().split("| exit | when |", 1)[1].split("\n\n", 1)[0]
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| (.+) \|$", table, re.MULTILINE)}


def test_each_documented_exit_code_is_the_one_a_job_gets(deploy_env: dict[str, str], project: Path, db):
    rows = documented()
    assert set(rows) == {0, 1, 2, 3, 4, 130}
    add_revision(project, "a1", BASE, *ADD_PHONE)

    # 3: the health URL does not answer before the upgrade (a service), nothing changed
    down = {**deploy_env, "PROD_HEALTH_URL": f"http://127.0.0.1:{closed_port()}/api/health"}
    r = inv("deploy", "--env", "prod", env=down)
    assert r.returncode == 3 and "does not answer" in r.stderr and "does not answer" in rows[3], r.stderr
    assert current(db) == [BASE]
    # 3: the database does not answer
    gone = {**deploy_env, "PROD_DATABASE_URL": f"postgresql://app:{SECRET}@127.0.0.1:{closed_port()}/app"}
    assert inv("backup", "--env", "prod", env=gone).returncode == 3
    # 1: an unknown flag is invoke's own parse error; a failed check
    r = inv("deploy", "--env", "prod", "--no-such-flag", env=deploy_env)
    assert r.returncode == 1 and "No idea what '--no-such-flag' is!" in r.stderr and "unknown task or flag" in rows[1]
    r = inv("sync", "--check-only", env={"DBOPS_PROJECT_ROOT": str(project),
                                         "DATABASE_URL": deploy_env["PROD_DATABASE_URL"]})
    assert r.returncode == 1, r.stdout + r.stderr  # a1 is pending
    # 2: a flag's value
    r = inv("deploy", "--env", "prod", "--monitor-seconds", "soon", env=deploy_env)
    assert r.returncode == 2 and r.stderr.startswith("error: --monitor-seconds"), r.stderr
    # 0: the deploy itself
    r = inv("deploy", "--env", "prod", env=deploy_env)
    assert r.returncode == 0 and current(db) == ["a1"], r.stdout + r.stderr
