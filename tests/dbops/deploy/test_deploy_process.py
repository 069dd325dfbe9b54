"""``inv deploy`` as a process: the front door, exit codes, secrets, and a SIGKILL mid-upgrade."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from deploy_fixtures import ADD_PHONE, BASE, SECRET, add_revision, columns, current

from dbops import postgres
from dbops.postgres.lock import DeployLock

ROOT = Path(__file__).resolve().parents[3]


def inv_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args]


def run_inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL") and k != "DBOPS_DB"}
    full.update(env)
    return subprocess.run(inv_argv(*args), capture_output=True, text=True, env=full, timeout=300, check=False)


def test_unknown_env_is_a_usage_error():
    r = run_inv("deploy", "--env", "qa", env={})
    assert r.returncode == 2
    assert "unknown environment 'qa'" in r.stderr and "local, staging, prod" in r.stderr


def test_missing_database_url_names_the_variable(project: Path):
    r = run_inv("deploy", "--env", "prod", env={"DBOPS_PROJECT_ROOT": str(project)})
    assert r.returncode == 2
    assert "PROD_DATABASE_URL: is not set" in r.stderr + r.stdout


def test_a_deploy_through_inv_succeeds_and_never_prints_the_password(project: Path, db, deploy_env):
    add_revision(project, "a1", BASE, *ADD_PHONE)
    r = run_inv("deploy", "--env", "prod", "--monitor-seconds", "1", env=deploy_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert current(db) == ["a1"]
    assert "SUCCESS" in r.stdout
    assert SECRET not in r.stdout + r.stderr
    reports = list((project / "backups").glob("deploy_prod_*.json"))
    assert reports and all(SECRET not in p.read_text() for p in reports)
    cfg = run_inv("config", "--env", "prod", env=deploy_env)
    assert cfg.returncode == 0 and "***" in cfg.stdout and SECRET not in cfg.stdout


def test_a_pooled_url_is_refused_without_leaking_it(project: Path):
    url = f"postgresql://app:{SECRET}@ep-cool-123-pooler.eu-central-1.aws.neon.tech/app"
    r = run_inv("deploy", "--env", "prod", env={"DBOPS_PROJECT_ROOT": str(project), "PROD_DATABASE_URL": url,
                                                 "PROD_BACKUP_URL": "file:///tmp/x", "PROD_HEALTH_URL": "http://h/"})
    assert r.returncode == 2
    assert "ep-cool-123.eu-central-1.aws.neon.tech" in r.stderr
    assert SECRET not in r.stdout + r.stderr


def test_sigkill_during_the_upgrade_leaves_the_old_revision(project: Path, db, deploy_env):
    add_revision(project, "a1", BASE,
                 "op.add_column('users', sa.Column('phone', sa.Text()))\nop.execute('SELECT pg_sleep(60)')",
                 "op.drop_column('users', 'phone')")
    # the orphaned backend notices its client is gone within 100ms instead of sleeping on
    with postgres.admin_connection(db) as admin:
        admin.execute(sa.text(f'ALTER DATABASE "{db.database}" SET client_connection_check_interval = 100'))
    full = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    full.update(deploy_env)
    proc = subprocess.Popen(inv_argv("deploy", "--env", "prod", "--monitor-seconds", "0"), env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    engine = postgres.make_engine(db)
    try:
        deadline = time.monotonic() + 60
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                sleeping = conn.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%' AND state = 'active'"
                )).scalar()
                conn.rollback()
                if sleeping:
                    break
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.1)
            else:
                raise AssertionError("the upgrade never started")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            while time.monotonic() < deadline:
                left = conn.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'dbops %' "
                    "AND pid <> pg_backend_pid()"
                )).scalar()
                conn.rollback()
                if not left:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("the killed deploy's sessions did not go away")
    finally:
        engine.dispose()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert current(db) == [BASE]
    assert "phone" not in columns(db, "users")
    with DeployLock(db, "test", wait_s=1):  # the killed deploy's lock went with its connection
        pass


def test_inv_lint_lints_pending_revisions_and_exits_1_on_errors(project: Path, db, deploy_env):
    add_revision(project, "a1", BASE, "op.drop_column('users', 'name')", "pass")
    r = run_inv("lint", "--env", "prod", env=deploy_env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "-- ==== revision a1" in r.stdout and "[error] a1" in r.stdout and "ban-drop-column" in r.stdout
    assert SECRET not in r.stdout + r.stderr
    ok = run_inv("lint", "--revision", BASE, env={"DBOPS_PROJECT_ROOT": str(project)})
    assert ok.returncode == 0, ok.stdout + ok.stderr
