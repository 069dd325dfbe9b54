"""The front door: inv backup / backups / verify-backup / restore / prune-backups, run as processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from s3_server import SECRET_KEY

from dbops import postgres

from .helpers import (
    BUCKET,
    DB_PASSWORD,
    FIRST_REV,
    ROOT,
    assert_no_secrets,
    cli_env,
    databases,
    inv,
    keys,
    snapshot,
    uploads,
)


def test_cli_backup_list_verify_restore_prune(project, app_db, s3, pg_server):
    env = cli_env(project, app_db, s3)
    s3.client().create_multipart_upload(Bucket=BUCKET, Key="cli/staging/running.dump")  # a backup in progress
    runs = [inv("backup", "--env", "staging", env=env)]
    assert runs[-1].returncode == 0, runs[-1].stderr
    assert "MiB at" in runs[-1].stdout and "MiB/s" in runs[-1].stdout  # progress: bytes and throughput
    runs.append(inv("backups", "--env", "staging", "--json", env=env))
    [row] = json.loads(runs[-1].stdout)
    assert row["revision"] == FIRST_REV and row["verified"] is False and row["complete"] is True
    runs.append(inv("verify-backup", "--env", "staging", env=env))
    assert runs[-1].returncode == 0 and "row counts match" in runs[-1].stdout
    runs.append(inv("backups", "--env", "staging", env=env))
    assert "time" in runs[-1].stdout and "verified" in runs[-1].stdout and FIRST_REV in runs[-1].stdout
    assert runs[-1].stdout.splitlines()[2].split()[-4] == "yes"  # verified, then last drill and recovery: "-"
    runs.append(inv("restore", "--env", "staging", "--backup", "latest", env=env))
    assert runs[-1].returncode == 0 and "_restored_" in runs[-1].stdout and "***" in runs[-1].stdout
    runs.append(inv("restore", "--env", "staging", "--target-url", env["STAGING_DATABASE_URL"], env=env))
    assert runs[-1].returncode == 2 and f"--yes-i-know {app_db.database}" in runs[-1].stderr
    runs.append(inv("prune-backups", "--env", "staging", "--keep", "1", env=env))
    assert runs[-1].returncode == 0 and "dry run" in runs[-1].stdout and "newest" in runs[-1].stdout
    runs.append(inv("prune-backups", "--env", "staging", "--keep", "1", "--confirm", env=env))
    assert runs[-1].returncode == 0 and "0 backup(s) deleted, 1 kept" in runs[-1].stdout
    assert [u["Key"] for u in uploads(s3)] == ["cli/staging/running.dump"]  # younger than a day: left alone
    for r in runs:
        assert_no_secrets(r)
    for name in databases(pg_server):
        if name.startswith(app_db.database + "_restored_"):
            postgres.drop_database(pg_server.url(), name)


@pytest.mark.parametrize(
    "case, extra, code, expect",
    [
        ("wrong credentials", {"AWS_SECRET_ACCESS_KEY": "wrong-" + SECRET_KEY}, 3, "access denied"),
        ("missing bucket", {"STAGING_BACKUP_URL": "s3://no-such-bucket/x"}, 3,
         "bucket 'no-such-bucket' does not exist"),
        ("unreachable db", {"STAGING_DATABASE_URL": f"postgresql://app:{DB_PASSWORD}@127.0.0.1:1/app"}, 3,
         "cannot connect to postgresql+psycopg2://app:***@127.0.0.1:1/app"),
        ("version mismatch", {"DBOPS_PG_BIN": "/usr/lib/postgresql/15/bin"}, 2,
         "pg_dump 15 (/usr/lib/postgresql/15/bin/pg_dump) cannot handle a PostgreSQL 18"),
        ("pooler host", {"STAGING_DATABASE_URL": f"postgresql://app:{DB_PASSWORD}@ep-x-1-pooler.neon.tech/app"}, 2,
         "use the direct host ep-x-1.neon.tech"),
    ],
)
def test_cli_backup_failures_are_clear_and_change_nothing(project, app_db, s3, case, extra, code, expect):
    if case == "version mismatch" and not Path("/usr/lib/postgresql/15/bin/pg_dump").exists():
        pytest.skip("system PostgreSQL 15 client not installed")
    r = inv("backup", "--env", "staging", env=cli_env(project, app_db, s3, **extra))
    assert r.returncode == code, r.stdout + r.stderr
    assert expect in r.stderr, r.stderr
    assert "hint:" in r.stderr
    assert_no_secrets(r)
    assert keys(s3) == [] and uploads(s3) == []


def _inv_with_terminal(args: list[str], env: dict[str, str], typed: str) -> subprocess.CompletedProcess[str]:
    """Run inv with a terminal as stdin (a pty) and type ``typed`` at the prompt."""
    import pty

    master, slave = pty.openpty()
    full = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "BACKUP_URL")) and k != "DBOPS_DB"}
    full.update(env)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], stdin=slave,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full)
        os.write(master, typed.encode() + b"\n")
        out, err = proc.communicate(timeout=300)
    finally:
        os.close(master)
        os.close(slave)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_cli_in_place_restore_asks_for_the_database_name(project, app_db, s3):
    env = cli_env(project, app_db, s3)
    assert inv("backup", "--env", "staging", "--quiet", env=env).returncode == 0
    engine = postgres.make_engine(app_db)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE created_later (id int)"))
    engine.dispose()
    args = ["restore", "--env", "staging", "--quiet", "--target-url", env["STAGING_DATABASE_URL"]]

    wrong = _inv_with_terminal(args, env, "not-the-name")
    assert wrong.returncode == 2 and "would replace the existing database" in wrong.stdout + wrong.stderr
    assert "public.created_later" in snapshot(app_db)[1]  # nothing changed

    right = _inv_with_terminal(args, env, app_db.database)
    assert right.returncode == 0, right.stdout + right.stderr
    assert "public.created_later" not in snapshot(app_db)[1]
    for r in (wrong, right):
        assert_no_secrets(r)
