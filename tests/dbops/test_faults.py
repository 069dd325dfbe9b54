"""Real faults against real servers: a killed or interrupted deploy, a damaged manifest, an unusable folder.

Each ends with the database at a whole revision, a report written and nothing
lost.  The SIGKILL and Ctrl-C tests measure how long an app query waits on the
migration's table lock after the deploy is gone (the figures in
docs/reliability.md come from these runs; the assertion is the issue's 5 s).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from deploy_fixtures import ADD_PHONE, BASE, add_revision, columns, current, settings_for

from dbops import backup, postgres
from dbops.console import Console
from dbops.deploy import history, pipeline
from dbops.deploy.pipeline import DeployOptions
from dbops.errors import UsageError
from dbops.settings import load_settings
from dbops.ui import UI

ROOT = Path(__file__).resolve().parents[2]
SLOW = ("op.add_column('users', sa.Column('phone', sa.Text()))\nop.execute('SELECT pg_sleep(60)')",
        "op.drop_column('users', 'phone')")


def start_deploy(env: dict[str, str]) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL") and not k.startswith("DBOPS_")}
    full.update(env)
    return subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "deploy", "--env", "prod",
                             "--monitor-seconds", "0"], env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def wait_for_activity(conn, where: str, never: str, *, proc: subprocess.Popen | None = None,
                      within_s: float = 60) -> None:
    """Until a session of ``pg_stat_activity`` matches ``where``; ``proc`` (the deploy) must live meanwhile."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = conn.execute(sa.text(f"SELECT count(*) FROM pg_stat_activity WHERE {where}")).scalar()
        conn.rollback()
        if found:
            return
        assert proc is None or proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    raise AssertionError(never)


def wait_for_sleep(conn, proc: subprocess.Popen) -> None:
    """Until the migration's ``pg_sleep(60)`` runs."""
    wait_for_activity(conn, "query LIKE 'SELECT pg_sleep(60)%' AND state = 'active'", "the upgrade never started",
                      proc=proc)


def wait_for_lock_wait(conn) -> None:
    """Until a session waits for a lock on ``users`` (the app query queued behind the migration)."""
    wait_for_activity(conn, "wait_event_type = 'Lock' AND query LIKE '%FROM users%'",
                      "the app query never queued behind the migration's lock", within_s=30)


def app_query_wait(db) -> float:
    """Seconds an app query on ``users`` waits (it queues behind the migration's ACCESS EXCLUSIVE lock)."""
    engine = postgres.make_engine(db)
    try:
        with engine.connect() as conn:
            t0 = time.monotonic()
            conn.execute(sa.text("SET statement_timeout = 30000"))
            conn.execute(sa.text("SELECT count(*) FROM users")).scalar()
            return time.monotonic() - t0
    finally:
        engine.dispose()


def test_sigkill_mid_upgrade_frees_the_table_lock_within_5s(project: Path, db, deploy_env):
    """No ALTER DATABASE here: the deploy's own session sets client_connection_check_interval."""
    add_revision(project, "a1", BASE, *SLOW)
    proc = start_deploy(deploy_env)
    engine = postgres.make_engine(db)
    try:
        with engine.connect() as conn:
            wait_for_sleep(conn, proc)
        waited: list[float] = []
        query = threading.Thread(target=lambda: waited.append(app_query_wait(db)))
        query.start()
        with engine.connect() as conn:
            wait_for_lock_wait(conn)  # the app query is now queued behind the migration's lock
        killed = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        query.join(30)
        freed_after = time.monotonic() - killed
    finally:
        engine.dispose()
        if proc.poll() is None:
            proc.kill()
    assert waited, "the app query never finished"
    print(f"\nSIGKILL: app query waited {waited[0]:.2f}s in all, {freed_after:.2f}s after the kill")
    assert freed_after < 5
    assert current(db) == [BASE] and "phone" not in columns(db, "users")
    # the next run marks the killed run's row, with the evidence
    add_revision(project, "a1", BASE, *ADD_PHONE)
    report = pipeline.deploy(settings_for(deploy_env), DeployOptions(monitor_seconds=0))
    assert report.outcome == "success"
    engine = postgres.make_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT outcome, report->>'abandoned' FROM {history.TABLE} ORDER BY id")).all()
    finally:
        engine.dispose()
    assert rows[0][0] == "abandoned" and "lock was free" in rows[0][1] and "is gone" in rows[0][1]
    assert rows[-1][0] == "success"


def test_ctrl_c_mid_upgrade_cancels_the_statement_and_reports_the_real_state(project: Path, db, deploy_env):
    add_revision(project, "a1", BASE, *SLOW)
    proc = start_deploy(deploy_env)
    engine = postgres.make_engine(db)
    try:
        with engine.connect() as conn:
            wait_for_sleep(conn, proc)
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        stopped_after = time.monotonic() - t0
    finally:
        engine.dispose()
        if proc.poll() is None:
            proc.kill()
    print(f"\nCtrl-C: the deploy ended {stopped_after:.2f}s after the interrupt")
    assert stopped_after < 5, out
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "interrupted (Ctrl-C)" in out
    assert current(db) == [BASE] and "phone" not in columns(db, "users")
    assert app_query_wait(db) < 1
    [path] = (project / "backups").glob("deploy_prod_*.json")
    report = json.loads(path.read_text())
    assert report["revision_after"] == [BASE] and report["db_changed"] is False
    assert report["outcome"] == "failed" and report["failed_step"] == "upgrade"


def test_a_damaged_manifest_beside_good_backups_blocks_nothing(project: Path, db, deploy_env, capsys):
    settings = settings_for(deploy_env)
    good = backup.create_backup(settings, db)
    bad = backup.create_backup(settings, db)
    store = Path(deploy_env["PROD_BACKUP_URL"].removeprefix("file://"))
    manifest = store / (bad.key[: -len(".dump")] + ".manifest.json")
    manifest.write_text('{"sha256": "cut sho')  # a torn write
    listed = backup.list_backups(settings)
    assert [b.damaged for b in listed] == ["not valid JSON", None]
    assert "DAMAGED (not valid JSON)" in backup.render_backups(listed)
    # latest skips it, the good one restores by its key, prune runs, naming the damaged one by key is refused
    assert backup.find_backup(settings, "latest", store=backup.checked_store(settings)).key == good.key
    # the person restoring "latest" hears of the damaged one passed over, through the UI
    warned: list[str] = []

    class Heard(UI):
        def warn(self, text: str) -> None:
            warned.append(text)

    assert backup.find_backup(settings, "latest", store=backup.checked_store(settings), ui=Heard()).key == good.key
    assert warned == [f"{bad.key}: damaged manifest (not valid JSON); skipped"]
    restored = backup.restore_backup(settings, good.key, None, source_url=db)
    assert restored.key == good.key
    result = backup.prune_backups(settings, keep=1, confirm=True)
    assert manifest.exists() and not result.delete
    with pytest.raises(UsageError, match="damaged manifest"):
        backup.restore_backup(settings, bad.key, None, source_url=db)
    postgres.drop_database(db, restored.database)


def test_an_unwritable_backups_folder_still_leaves_the_report(project: Path, db, deploy_env):
    """backups/ is a file here (the same OSError a full or read-only folder gives): the report goes beside the
    backup."""
    add_revision(project, "a1", BASE, *ADD_PHONE)
    folder = project / "backups"
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    folder.write_text("not a folder")
    report = pipeline.deploy(settings_for(deploy_env), DeployOptions(monitor_seconds=0), ui=Console())
    assert report.outcome == "success" and current(db) == ["a1"]
    assert any("could not write" in w for w in report.warnings)
    store = Path(deploy_env["PROD_BACKUP_URL"].removeprefix("file://"))
    copies = list(store.rglob("deploy_prod_*.json"))
    assert copies and json.loads(copies[0].read_text())["outcome"] == "success"


def test_an_unusable_store_folder_is_one_clear_error(project: Path, db, deploy_env, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the store's folder should be")
    settings = load_settings("prod", environ={**deploy_env, "PROD_BACKUP_URL": f"file://{blocker}/store"})
    with pytest.raises(Exception) as info:
        backup.create_backup(settings, db)
    # refused before anything is dumped or written: a store folder under a file is a BACKUP_URL naming a file
    assert type(info.value).__name__ == "UsageError" and str(blocker) in info.value.render(), info.value.render()
    assert info.value.exit_code == 2
    assert current(db) == [BASE] and blocker.read_text() == "a file where the store's folder should be"


class _Flaky:
    """A health endpoint on loopback answering from a script: 200 or 503 per request, then 200."""

    def __init__(self, script: list[int]):
        import http.server

        flaky = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                code = flaky.script.pop(0) if flaky.script else 200
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": "ok"}' if code == 200 else b'{"status": "down"}')

            def log_message(self, *args):
                pass

        self.script = list(script)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def close(self):
        self.server.shutdown()


@pytest.mark.parametrize("script,fails", [([503], False), ([200, 503, 200, 503], False), ([503] * 20, True)],
                         ids=["one-blip", "two-isolated-blips", "sustained"])
def test_monitoring_tolerates_isolated_blips_but_never_a_sustained_failure(db, project, script, fails):
    from dbops.errors import MonitorFailed
    from dbops.migrations import Project
    from dbops.monitor import window

    flaky = _Flaky(script)
    try:
        settings = load_settings("prod", environ={"PROD_DATABASE_URL": db.render_as_string(hide_password=False),
                                                  "PROD_HEALTH_URL": flaky.url, "DBOPS_PROJECT_ROOT": str(project),
                                                  "DBOPS_MONITOR_INTERVAL": "0.2"})
        proj = Project(project / "alembic.ini")
        if fails:
            with pytest.raises(MonitorFailed, match="3 bad samples in a row"):
                window.watch(settings, db, proj, seconds=1)
        else:
            result = window.watch(settings, db, proj, seconds=1)
            assert result.bad_samples == script.count(503) and any("blip" in w for w in result.warnings)
    finally:
        flaky.close()


def test_an_in_place_restore_waits_for_the_deploy_lock(project: Path, db, deploy_env):
    from dbops.errors import LockBusy
    from dbops.postgres.lock import DeployLock

    settings = settings_for(deploy_env)
    made = backup.create_backup(settings, db)
    engine = postgres.make_engine(db)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE TABLE marker (id int)"))
            conn.commit()
    finally:
        engine.dispose()
    with DeployLock(db, "dbops deploy prod (test)", wait_s=1):
        with pytest.raises(LockBusy, match="dbops deploy prod"):
            backup.restore_backup(settings, made.key, db, in_place_confirmed_name=db.database)
    assert "marker" in sa.inspect(postgres.make_engine(db)).get_table_names()  # untouched while a deploy runs
    databases = postgres.make_engine(db)
    try:
        with databases.connect() as conn:
            left = conn.execute(
                sa.text("SELECT count(*) FROM pg_database WHERE datname LIKE '%__restoring_%'")).scalar()
    finally:
        databases.dispose()
    assert left == 0
    restored = backup.restore_backup(settings, made.key, db, in_place_confirmed_name=db.database)  # lock free: runs
    assert restored.replaced and "marker" not in sa.inspect(postgres.make_engine(db)).get_table_names()


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs, filled to the last page; ``free(n)`` frees n bytes. Needs root (mount); skips otherwise."""
    mounted = []

    def make(where: Path):
        where.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], capture_output=True,
                           text=True, timeout=10, check=False)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.strip()}): no real full disk to test")
        mounted.append(where)
        filler = where / ".filler"
        with open(filler, "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(b"\0" * 4096)
                    fh.flush()
            except OSError:
                pass
        return filler

    yield make
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=10, check=False)


@pytest.mark.parametrize("free", [0, 8192], ids=["no-room-for-the-dump", "no-room-for-the-manifest"])
def test_a_full_disk_under_the_local_store_leaves_nothing_behind(project: Path, db, deploy_env, full_disk, tmp_path,
                                                                 free):
    from dbops.errors import StorageError

    store = tmp_path / "full-store"
    filler = full_disk(store)
    if free:
        os.truncate(filler, filler.stat().st_size - free)
    settings = load_settings("prod", environ={**deploy_env, "PROD_BACKUP_URL": f"file://{store}"})
    with pytest.raises(StorageError, match="No space left on device") as info:
        backup.create_backup(settings, db)
    assert "free space" in (info.value.hint or "")
    assert [p.name for p in store.rglob("*") if p.is_file()] == [".filler"]  # no dump, no manifest, no .partial
    assert backup.list_backups(settings) == []


def test_a_full_backups_folder_during_a_deploy_keeps_the_report(project: Path, db, deploy_env, full_disk):
    add_revision(project, "a1", BASE, *ADD_PHONE)
    full_disk(project / "backups")
    report = pipeline.deploy(settings_for(deploy_env), DeployOptions(monitor_seconds=0))
    assert report.outcome == "success" and current(db) == ["a1"]
    assert any("No space left" in w for w in report.warnings)
    store = Path(deploy_env["PROD_BACKUP_URL"].removeprefix("file://"))
    [copy] = store.rglob("deploy_prod_*.json")
    assert json.loads(copy.read_text())["outcome"] == "success"


def test_statement_timeout_fails_the_upgrade_at_the_old_revision_with_a_report(project: Path, db, deploy_env):
    from dbops.errors import DeployFailed

    add_revision(project, "a1", BASE, "op.add_column('users', sa.Column('phone', sa.Text()))\n"
                 "op.execute('SELECT pg_sleep(5)')", "op.drop_column('users', 'phone')")
    settings = settings_for(deploy_env, DBOPS_STATEMENT_TIMEOUT_MS="300")
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings, DeployOptions(monitor_seconds=0))
    assert "statement_timeout=300ms" in info.value.message
    assert current(db) == [BASE] and "phone" not in columns(db, "users")
    [path] = (project / "backups").glob("deploy_prod_*.json")
    report = json.loads(path.read_text())
    assert report["failed_step"] == "upgrade" and report["revision_after"] == [BASE]


class _KillS3OnFirstChunk:
    """A UI whose progress line stops the S3 server at the first chunk streamed (deterministic, mid-object)."""

    def __init__(self, s3):
        from dbops.ui import UI, Progress

        outer = self
        self.s3, self.killed = s3, False

        class Kill(Progress):
            def update(self, text, *, force=False):
                if not outer.killed:
                    outer.killed = True
                    outer.s3.stop()

        class KillUI(UI):
            def progress(self, *, every=5.0):
                return Kill()

        self.ui = KillUI()


@pytest.mark.parametrize("in_place", [False, True], ids=["into-a-new-database", "in-place"])
def test_s3_killed_during_a_restore_leaves_every_database_as_it_was(project: Path, db, deploy_env, s3, in_place):
    from dbops.errors import DbopsError

    engine = postgres.make_engine(db)
    try:
        with engine.connect() as conn:  # ~40 MB of incompressible text: far more than the socket buffers hold
            conn.execute(sa.text("CREATE TABLE blob AS SELECT g AS id, md5(random()::text) || md5(random()::text) "
                                 "|| md5(random()::text) AS t FROM generate_series(1, 400000) g"))
            conn.commit()
    finally:
        engine.dispose()
    settings = load_settings("prod", environ={**deploy_env, "PROD_BACKUP_URL": "s3://dbops-backups/faults",
                                              "AWS_ENDPOINT_URL_S3": s3.endpoint, "AWS_REGION": "us-east-1"})
    made = backup.create_backup(settings, db)
    engine = postgres.make_engine(db)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE TABLE after_backup (id int)"))  # must survive the failed restore
            conn.commit()
            databases = sorted(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
    finally:
        engine.dispose()
    killer = _KillS3OnFirstChunk(s3)
    with pytest.raises(DbopsError) as info:
        backup.restore_backup(settings, made.key, db if in_place else None, source_url=db,
                              in_place_confirmed_name=db.database if in_place else None, ui=killer.ui)
    assert killer.killed
    print(f"\nS3 killed mid-restore ({'in place' if in_place else 'new database'}): {info.value.message}")
    assert "Traceback" not in info.value.render()
    engine = postgres.make_engine(db)
    try:
        with engine.connect() as conn:
            assert sorted(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars()) == databases
            assert {"after_backup", "blob", "users"} <= set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert current(db) == [BASE]


def test_ctrl_c_during_the_backup_stops_pg_dump_and_leaves_nothing_half_written(project: Path, db, deploy_env, s3):
    """Ctrl-C while pg_dump waits for a table lock: exit 130 at once, no object and no open upload, prod untouched."""
    add_revision(project, "a1", BASE, *ADD_PHONE)
    env = {**deploy_env, "PROD_BACKUP_URL": "s3://dbops-backups/ctrlc", "AWS_ENDPOINT_URL_S3": s3.endpoint,
           "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
           "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"]}
    engine = postgres.make_engine(db)
    holder = engine.connect()  # an app transaction holding users: pg_dump queues for its ACCESS SHARE lock
    try:
        holder.execute(sa.text("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"))
        proc = start_deploy(env)
        deadline = time.monotonic() + 60
        with engine.connect() as watch:
            while time.monotonic() < deadline:
                waiting = watch.execute(sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' "
                    "AND wait_event_type = 'Lock'")).scalar()
                watch.rollback()
                if waiting:
                    break
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.1)
            else:
                raise AssertionError("pg_dump never queued for the lock")
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        stopped_after = time.monotonic() - t0
    finally:
        holder.rollback()
        holder.close()
    try:
        with engine.connect() as conn:
            dumps = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump'")).scalar()
    finally:
        engine.dispose()
    print(f"\nCtrl-C during the backup: the deploy ended {stopped_after:.2f}s after the interrupt")
    assert stopped_after < 5, out
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "interrupted" in out, out
    assert dumps == 0, "pg_dump's session outlived the deploy"
    assert current(db) == [BASE] and "phone" not in columns(db, "users")
    client = s3.client()
    listed = client.list_objects_v2(Bucket="dbops-backups", Prefix="ctrlc/").get("Contents", [])
    assert listed == [], [o["Key"] for o in listed]
    assert not client.list_multipart_uploads(Bucket="dbops-backups").get("Uploads"), "an upload was left open"
    [path] = (project / "backups").glob("deploy_prod_*.json")
    report = json.loads(path.read_text())
    assert report["outcome"] == "failed" and report["failed_step"] == "backup", report
    assert report["db_changed"] is False
