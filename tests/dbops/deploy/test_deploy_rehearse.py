"""``inv deploy --rehearse``: the rehearsal between the backup and the upgrade stops the deploy before prod changes;
``--plan`` rehearses on the newest backup and says why it does (or does not)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_fixtures import ADD_PHONE, BASE, SECRET, add_revision, columns, current, settings_for

from dbops import backup
from dbops.console import Console
from dbops.deploy import pipeline
from dbops.deploy.pipeline import DeployOptions
from dbops.errors import DeployFailed, RehearsalFailed

ROOT = Path(__file__).resolve().parents[3]

#: a nullable column (Squawk sees nothing wrong), then slow work in the same transaction: the ACCESS EXCLUSIVE
#: lock of the ADD COLUMN is held until the revision commits - only a rehearsal measures that
SLOW_AFTER_ALTER = (("op.add_column('users', sa.Column('phone', sa.Text(), nullable=True))\n"
                     "op.execute('SELECT pg_sleep(0.6)')"),
                    "op.drop_column('users', 'phone')")


def test_deploy_rehearse_stops_on_an_error_before_touching_prod(project: Path, db, deploy_env, capsys):
    add_revision(project, "a1", BASE, *SLOW_AFTER_ALTER, doc="phone then slow work")
    settings = settings_for(deploy_env)  # DBOPS_LOCK_TIMEOUT_MS=300: a lock held 300 ms is an error
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings, DeployOptions(rehearse=True, monitor_seconds=0), ui=Console())
    err, r = info.value, info.value.report
    assert isinstance(err.cause, RehearsalFailed) and err.exit_code == 1
    assert r.failed_step == "rehearse" and [s.name for s in r.steps][-2:] == ["backup", "rehearse"]
    assert current(db) == [BASE] and "phone" not in columns(db, "users") and r.db_changed is False
    assert r.backup is not None and r.rehearsal.ran and r.rehearsal.errors >= 1
    assert "ACCESS EXCLUSIVE on users" in err.render() and "(limit 300 ms)" in err.render()
    out = capsys.readouterr().out
    assert "rehearse on a copy of" in out and "longest wait of application reads" in out
    assert Path(r.rehearsal.text).is_file() and SECRET not in out
    # deciding the risk is acceptable: --allow-unsafe deploys (the rehearsal still runs and is reported)
    report = pipeline.deploy(settings, DeployOptions(rehearse=True, allow_unsafe=True, monitor_seconds=0))
    assert report.outcome == "success" and current(db) == ["a1"]
    assert any("the rehearsal found" in w and "--allow-unsafe" in w for w in report.warnings)


def test_plan_rehearses_on_the_newest_backup_by_default_when_it_is_small_and_says_why(project: Path, db, deploy_env,
                                                                                      capsys):
    add_revision(project, "a1", BASE, *ADD_PHONE, doc="add phone")
    settings = settings_for(deploy_env, DBOPS_REHEARSE_AUTO_MB="256")  # the shipped default: on for small backups

    first = pipeline.deploy(settings, DeployOptions(plan=True), ui=Console())
    assert first.rehearsal.ran is False and "no backup to rehearse on yet" in first.rehearsal.why
    assert "no rehearsal: no backup to rehearse on yet" in capsys.readouterr().out

    taken = backup.create_backup(settings, db)
    planned = pipeline.deploy(settings, DeployOptions(plan=True), ui=Console())
    assert planned.outcome == "planned" and [s.name for s in planned.steps][-2:] == ["rehearse", "dry-run"]
    assert planned.rehearsal.ran and planned.rehearsal.backup == taken.key and planned.rehearsal.errors == 0
    out = capsys.readouterr().out
    assert "on by default: the backup is" in out and "at most DBOPS_REHEARSE_AUTO_MB=256 MiB" in out
    assert "rehearse the pending revisions on a copy of the new backup" in out and "nothing was changed" in out
    assert "ALTER TABLE users ADD COLUMN phone TEXT" in out  # the dry run shows the SQL the rehearsal ran
    assert current(db) == [BASE]

    bigger = pipeline.deploy(settings_for(deploy_env, DBOPS_REHEARSE_AUTO_MB="0.001"), DeployOptions(plan=True))
    assert bigger.rehearsal.ran is False and "above DBOPS_REHEARSE_AUTO_MB=0.001 MiB" in bigger.rehearsal.why
    # the command it offers instead runs verbatim
    command = re.search(r"`(inv rehearse --env prod --schema-only)`", bigger.rehearsal.why).group(1)
    done = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *command.split()[1:]],
                          capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, **deploy_env, "DBOPS_REHEARSE_AUTO_MB": "0.001"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "durations and hold times are NOT measured" in done.stdout and "rehearsal: 0 error(s)" in done.stdout
    assert SECRET not in done.stdout + done.stderr and current(db) == [BASE]
    off = pipeline.deploy(settings, DeployOptions(plan=True, rehearse=False))
    assert off.rehearsal.to_dict() == {"ran": False, "backup": None, "why": "--no-rehearse"}
    assert "rehearse" not in [s.name for s in off.steps]
