"""Parallel restore: fetched through ranged reads into scratch space, then pg_restore --jobs; and what must
hold when it cannot or when it is stopped (too little scratch space, S3 killed during the fetch, Ctrl-C)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from fingerprint import assert_unchanged, fingerprint

from dbops import backup, postgres
from dbops.errors import StorageError
from dbops.ui import UI, Progress

from .helpers import ROOT, assert_no_secrets, cli_env, databases, settings_for, snapshot


class Heard(UI):
    def __init__(self):
        self.lines: list[str] = []

    def say(self, text: str = "") -> None:
        self.lines.append(text)


@pytest.fixture
def app_db(fresh_db):
    """Tables and rows made with SQL (no Alembic): what these tests restore is the archive, not a migration."""
    engine = postgres.make_engine(fresh_db)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL, name text)"))
        conn.execute(sa.text("CREATE TABLE posts (id serial PRIMARY KEY, author_id int REFERENCES users(id), "
                             "title text, body text)"))
        conn.execute(sa.text("INSERT INTO users (email, name) SELECT 'u' || g || '@example.com', 'User ' || g "
                             "FROM generate_series(1, 50) g"))
        conn.execute(sa.text("INSERT INTO posts (author_id, title, body) SELECT id, 'post of ' || name, "
                             "repeat('x', 100) FROM users"))
    engine.dispose()
    return fresh_db


def _later_change(url) -> None:
    """What a later deploy did: a new table, a new column, new rows."""
    engine = postgres.make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE comments (id serial PRIMARY KEY, body text)"))
        conn.execute(sa.text("ALTER TABLE users ADD COLUMN nickname text"))
        conn.execute(sa.text("INSERT INTO users (email) VALUES ('later@example.com')"))
    engine.dispose()


def _blob(url, rows: int = 200_000) -> None:
    """A second large-ish table (incompressible text), so pg_restore --jobs has two tables' data to share."""
    engine = postgres.make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE blob AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS t "
                             "FROM generate_series(1, :n) g"), {"n": rows})
        conn.execute(sa.text("ALTER TABLE blob ADD PRIMARY KEY (id)"))
    engine.dispose()


def test_parallel_restore_into_a_new_database_and_in_place(project, app_db, s3, pg_server, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    settings = settings_for(project, app_db, DBOPS_SCRATCH_DIR=str(scratch), DBOPS_SCRATCH_MIN_FREE_MB="0")
    _blob(app_db, 20_000)
    before = snapshot(app_db)
    made = backup.create_backup(settings, settings.database_url)

    heard = Heard()
    new = backup.restore_backup(settings, made.key, None, source_url=settings.database_url, jobs=2, ui=heard)
    assert new.jobs == 2 and new.fetch_s > 0 and new.restore_s > 0 and not new.single_stream_why
    assert any("pg_restore --jobs 2 from the fetched archive" in line for line in heard.lines), heard.lines
    assert snapshot(app_db.set(database=new.database)) == before  # rows and schema equal
    postgres.drop_database(pg_server.url(), new.database)
    assert list(scratch.iterdir()) == []  # the fetched archive is gone

    _later_change(app_db)
    dbs_before = databases(pg_server)
    done = backup.restore_backup(settings, made.key, app_db, in_place_confirmed_name=app_db.database, jobs=2)
    assert done.replaced and done.jobs == 2
    assert snapshot(app_db) == before  # the later migration's table, column and rows are gone
    assert databases(pg_server) == dbs_before
    assert list(scratch.iterdir()) == []


def test_too_little_scratch_space_restores_in_one_stream_and_says_why(project, app_db, s3, pg_server, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    free_mb = shutil.disk_usage(scratch).free // 1_000_000
    # the reserve asked for is more than the disk has: the honest "no room" of a full disk
    settings = settings_for(project, app_db, DBOPS_SCRATCH_DIR=str(scratch),
                            DBOPS_SCRATCH_MIN_FREE_MB=str(free_mb + 1000))
    before = snapshot(app_db)
    made = backup.create_backup(settings, settings.database_url)
    heard = Heard()
    new = backup.restore_backup(settings, made.key, None, source_url=settings.database_url, jobs=2, ui=heard)
    assert new.jobs == 1 and new.fetch_s == 0
    [line] = [line for line in heard.lines if "one stream" in line]
    assert f"one stream instead of --jobs 2: {scratch} has" in line and "DBOPS_SCRATCH_MIN_FREE_MB" in line, line
    assert snapshot(app_db.set(database=new.database)) == before
    postgres.drop_database(pg_server.url(), new.database)
    assert list(scratch.iterdir()) == []  # nothing was written there


def test_s3_killed_during_the_fetch_changes_nothing_and_leaves_no_file(project, app_db, s3, pg_server, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    settings = settings_for(project, app_db, DBOPS_SCRATCH_DIR=str(scratch), DBOPS_SCRATCH_MIN_FREE_MB="0")
    _blob(app_db, 400_000)  # ~30 MiB stored: several ranged reads, the store dies after the first bytes
    made = backup.create_backup(settings, settings.database_url)
    fp_before, dbs_before = fingerprint(app_db), databases(pg_server)

    killed = []

    class KillUI(UI):
        def progress(self, *, every=5.0):
            # the fetch asks for its progress line once it has read the object's size and reserved the scratch
            # file, right before the ranged reads: the store dies there, every time (a kill on the first bytes
            # raced a loopback fetch of two parts that could finish first)
            if not killed:
                killed.append("fetch")
                s3.stop()
            return Progress()

    with pytest.raises(StorageError) as info:
        backup.restore_backup(settings, made.key, app_db, in_place_confirmed_name=app_db.database, jobs=2,
                              ui=KillUI())
    assert killed, "the fetch never started"
    assert made.key in info.value.message and "Traceback" not in info.value.render()
    assert "the live database" in (info.value.hint or "")
    assert_unchanged(fp_before, fingerprint(app_db), "the live database after S3 died during the fetch")
    assert databases(pg_server) == dbs_before  # the work database was dropped
    assert list(scratch.iterdir()) == []


def _pg_restore_pids(root_pid: int) -> set[int]:
    """pg_restore processes anywhere under ``root_pid``."""
    found, todo = set(), [root_pid]
    while todo:
        pid = todo.pop()
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                todo += [int(c) for c in children]
                for c in children:
                    if Path(f"/proc/{c}/comm").read_text().strip() == "pg_restore":
                        found.add(int(c))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def test_ctrl_c_during_pg_restore_jobs_leaves_nothing_half_done(project, app_db, s3, pg_server, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _blob(app_db, 1_500_000)  # long enough a restore to be interrupted in the middle
    env = cli_env(project, app_db, s3, DBOPS_SCRATCH_DIR=str(scratch), DBOPS_SCRATCH_MIN_FREE_MB="0")
    full = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "BACKUP_URL")) and k != "DBOPS_DB"}
    full.update(env)
    base = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
    made = subprocess.run([*base, "backup", "--env", "staging", "--quiet"], env=full, capture_output=True, text=True,
                          timeout=300, check=False)
    assert made.returncode == 0, made.stderr
    fp_before, dbs_before = fingerprint(app_db), databases(pg_server)

    proc = subprocess.Popen([*base, "restore", "--env", "staging", "--in-place", "--yes-i-know", app_db.database,
                             "--jobs", "2", "--quiet"], env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    with postgres.admin_connection(pg_server.url()) as conn:
        while time.monotonic() < deadline and proc.poll() is None:
            seen |= _pg_restore_pids(proc.pid)
            copying = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_restore' "
                "AND datname LIKE '%\\_\\_restoring\\_%' AND state = 'active'")).scalar()
            if seen and copying:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"pg_restore --jobs was never seen at work: {proc.communicate()[0]}")
    os.kill(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted" in out and "Traceback" not in out, out
    assert_no_secrets(subprocess.CompletedProcess([], 0, out, ""))
    time.sleep(0.5)
    assert not [p for p in seen if os.path.exists(f"/proc/{p}") and
                Path(f"/proc/{p}/stat").read_text().split()[2] != "Z"], "a pg_restore outlived the restore"
    assert_unchanged(fp_before, fingerprint(app_db), "the live database after Ctrl-C during pg_restore --jobs")
    assert databases(pg_server) == dbs_before  # the work database was dropped
    assert list(scratch.iterdir()) == []  # the fetched archive too


def test_an_encrypted_backup_is_fetched_decrypted_and_restored_in_parallel(project, app_db, s3, pg_server, tmp_path):
    pyrage = pytest.importorskip("pyrage")  # the `encrypt` extra, part of `dev`
    team = pyrage.x25519.Identity.generate()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    settings = settings_for(project, app_db, DBOPS_SCRATCH_DIR=str(scratch), DBOPS_SCRATCH_MIN_FREE_MB="0",
                            BACKUP_AGE_RECIPIENTS=str(team.to_public()), BACKUP_AGE_IDENTITY=str(team))
    _blob(app_db, 20_000)
    before = snapshot(app_db)
    made = backup.create_backup(settings, settings.database_url)
    assert made.manifest.encryption == "age"
    for jobs in (2, 1):  # decrypted from the fetched file; decrypted while it streams
        heard = Heard()
        new = backup.restore_backup(settings, made.key, None, source_url=settings.database_url, jobs=jobs, ui=heard)
        assert new.jobs == jobs and (new.fetch_s > 0) == (jobs > 1), heard.lines
        assert snapshot(app_db.set(database=new.database)) == before
        postgres.drop_database(pg_server.url(), new.database)
        assert list(scratch.iterdir()) == []  # neither the encrypted nor the decrypted copy is left
