"""Restore drills: recorded beside the backup, shown by `inv backups`, and the status check failing and passing."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
import sqlalchemy as sa

from dbops import backup, postgres
from dbops.errors import CheckFailed

from .helpers import BUCKET, assert_no_secrets, cli_env, databases, inv, keys, settings_for


@pytest.fixture
def data_db(fresh_db):
    """Two tables made with SQL (no Alembic), one of them large enough for pg_restore --jobs to share."""
    engine = postgres.make_engine(fresh_db)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL)"))
        conn.execute(sa.text("INSERT INTO users (email) SELECT 'u' || g || '@example.com' "
                             "FROM generate_series(1, 500) g"))
        conn.execute(sa.text("CREATE TABLE blob AS SELECT g AS id, md5(g::text) AS t FROM generate_series(1, 20000) g"))
    engine.dispose()
    return fresh_db


def test_drill_recorded_shown_and_checked_from_the_command_line(project, data_db, s3, pg_server):
    env = cli_env(project, data_db, s3, DBOPS_SCRATCH_MIN_FREE_MB="0")
    assert inv("backup", "--env", "staging", "--quiet", env=env).returncode == 0
    dbs_before = databases(pg_server)

    never = inv("backups", "--env", "staging", "--check", env=env)
    assert never.returncode == 1, never.stdout + never.stderr
    assert "no backup of --env staging was ever drilled" in never.stderr
    [command] = re.findall(r"run `(inv drill --env staging)`", never.stderr)

    drilled = inv(*command.split()[1:], env=env)  # the command the check printed, verbatim
    assert drilled.returncode == 0, drilled.stderr
    assert re.search(r"recovery time [\d.]+s \(fetch [\d.]+s, decrypt 0.0s, restore [\d.]+s with --jobs \d+, "
                     r"checks [\d.]+s\); 2 tables, 20,500 rows", drilled.stdout), drilled.stdout
    [key] = [k for k in keys(s3, "cli/staging/") if k.endswith(".drill.json")]
    record = json.loads(s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert record["ok"] is True and record["tables"] == 2 and record["rows"] == 20_500
    steps = record["fetch_s"] + record["decrypt_s"] + record["restore_s"] + record["checks_s"]
    assert record["recovery_s"] == pytest.approx(steps, abs=0.002) and record["restore_s"] > 0
    assert databases(pg_server) == dbs_before  # the drill restored into a throwaway server, not this one

    listed = inv("backups", "--env", "staging", env=env)
    row = listed.stdout.splitlines()[2]
    assert f"{record['drilled_at'][:16].replace('T', ' ')} ok" in row and f"{record['recovery_s']:.1f}s" in row, row
    assert row.split()[-6] == "yes"  # a passing drill is a verification too (then: date, time, ok, recovery, name)
    [as_json] = json.loads(inv("backups", "--env", "staging", "--json", env=env).stdout)
    assert as_json["drill"]["recovery_s"] == record["recovery_s"]

    passing = inv("backups", "--env", "staging", "--check", env=env)
    assert passing.returncode == 0, passing.stderr
    assert f"recovered in {record['recovery_s']:.1f}s" in passing.stdout

    too_slow = inv("backups", "--env", "staging", "--check", env={**env, "DBOPS_DRILL_TARGET_S": "0.001"})
    assert too_slow.returncode == 1
    assert f"recovered in {record['recovery_s']:.1f}s, over DBOPS_DRILL_TARGET_S (0.001s)" in too_slow.stderr
    for r in (never, drilled, listed, passing, too_slow):
        assert_no_secrets(r)


def test_a_failed_drill_is_recorded_and_fails_the_check_and_an_old_one_too(project, data_db, s3):
    settings = settings_for(project, data_db, DBOPS_SCRATCH_MIN_FREE_MB="0")
    made = backup.create_backup(settings, settings.database_url)
    manifest_key = made.key[: -len(".dump")] + ".manifest.json"
    manifest = json.loads(s3.client().get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    manifest["tables"]["public.users"] += 1  # the manifest promises a row the archive does not hold
    s3.client().put_object(Bucket=BUCKET, Key=manifest_key, Body=json.dumps(manifest).encode())

    with pytest.raises(CheckFailed) as info:
        backup.drill(settings, jobs=2)
    assert "public.users: 500 rows restored, the manifest says 501" in info.value.details
    status = backup.drill_status(settings)
    assert not status.ok and status.drill is not None and status.drill.ok is False
    assert status.problems == [f"the last drill ({made.key}) failed: public.users: 500 rows restored, the manifest "
                               "says 501"]
    assert not [k for k in keys(s3) if k.endswith(".verified.json")]

    manifest["tables"]["public.users"] -= 1
    s3.client().put_object(Bucket=BUCKET, Key=manifest_key, Body=json.dumps(manifest).encode())
    good = backup.drill(settings, jobs=2)
    assert good.ok and good.jobs == 2 and good.fetch_s > 0
    assert backup.drill_status(settings).ok
    later = dt.datetime.fromisoformat(good.drilled_at) + dt.timedelta(hours=settings.drill_max_age_h + 1)
    old = backup.drill_status(settings, now=later)
    assert not old.ok and old.problems == [
        f"the last drill ({made.key}) is {settings.drill_max_age_h + 1:.1f} hours old; DBOPS_DRILL_MAX_AGE_HOURS is "
        f"{settings.drill_max_age_h:g}"]
