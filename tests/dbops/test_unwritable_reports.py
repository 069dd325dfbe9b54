"""A report that cannot be written where dbops keeps it never decides the run: `docker run --read-only`.

The job image's only writable folder is ``/app/backups``; with ``--read-only`` not even that.  Here the
project's ``backups`` is a regular file, so every write under it fails for root too (``mkdir`` of a path
through a file), as a read-only filesystem fails it.  Each report writer then says so in one line and the run
goes on: the rehearsal, the round trip (``--json``) and the deploy (whose report goes beside its backup), through
``inv`` as a user runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from deploy_fixtures import ADD_PHONE, BASE, SECRET, add_revision, current
from project_copy import ROOT


def inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "BACKUP_URL"))
            and not k.startswith("DBOPS_")}
    full.update(env)
    r = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], env=full,
                       capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in r.stdout + r.stderr and "internal error" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert SECRET not in r.stdout + r.stderr
    return r


def unwritable_backups(project: Path) -> Path:
    """``project/backups`` as a regular file: nothing can be written under it, not even by root."""
    folder = project / "backups"
    if folder.is_dir():
        shutil.rmtree(folder)
    folder.write_text("not a folder: stands for a read-only filesystem\n")
    return folder


def test_rehearse_and_test_rollback_go_on_when_their_report_cannot_be_written(deploy_env, project: Path):
    backups = unwritable_backups(project)
    target = backups / "roundtrip.json"
    r = inv("test-rollback", "--json", str(target), env={"DBOPS_PROJECT_ROOT": str(project)})
    assert r.returncode == 0, r.stdout + r.stderr
    last = r.stdout.rstrip().splitlines()[-1]
    assert last.startswith(f"! could not write the report to {target}: ") and last.endswith("printed here only"), last

    add_revision(project, "a1", BASE, *ADD_PHONE)
    assert inv("backup", "--env", "prod", "--quiet", env=deploy_env).returncode == 0
    r = inv("rehearse", "--env", "prod", env=deploy_env)
    assert r.returncode == 0, r.stdout + r.stderr
    said = [line for line in r.stdout.splitlines() if "could not write the report" in line]
    assert len(said) == 1 and f"to {backups}/rehearse_prod_" in said[0] and "printed here only" in said[0], r.stdout
    assert "report: " not in r.stdout  # no path is claimed for a report that was not written

    r = inv("rehearse", "--env", "prod", "--format", "json", env=deploy_env)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)  # stdout stays one JSON document
    assert any("could not write the report" in w for w in report["warnings"])
    assert backups.is_file()


def test_a_deploy_whose_backups_folder_cannot_be_written_keeps_its_report_beside_the_backup(deploy_env,
                                                                                           project: Path, db):
    add_revision(project, "a1", BASE, *ADD_PHONE)
    unwritable_backups(project)
    r = inv("deploy", "--env", "prod", env=deploy_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert current(db) == ["a1"]
    offsite = Path(deploy_env["PROD_BACKUP_URL"].removeprefix("file://"))
    reports = list(offsite.rglob("deploy_prod_*.json"))
    assert len(reports) == 1, sorted(offsite.rglob("*"))
    assert json.loads(reports[0].read_text())["outcome"] == "success"
    assert "could not write the report to" in r.stdout + r.stderr
