"""Backups end to end against a real PostgreSQL 18 and a real S3 (SeaweedFS): nothing is mocked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from s3_server import ACCESS_KEY, BUCKETS, SECRET_KEY

from dbops import backup, postgres
from dbops.postgres import clients as pgtools
from dbops.errors import ChecksumMismatch, CheckFailed, ConfirmationRequired, StorageError
from dbops.migrations import Project
from dbops.settings import load_settings
from dbops.storage import MiB

ROOT = Path(__file__).resolve().parents[2]
BUCKET = BUCKETS[0]
DB_PASSWORD = "db-PASSW0RD-never-print"
FIRST_REV = "dc524d74cab6"
LATER_MIGRATION = '''"""add comments

Revision ID: 0002comments
Revises: dc524d74cab6
"""
from alembic import op
import sqlalchemy as sa

revision = "0002comments"
down_revision = "dc524d74cab6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("comments", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.Text))
    op.add_column("users", sa.Column("nickname", sa.String(30)))
    op.execute("INSERT INTO comments (body) VALUES ('after the backup')")


def downgrade() -> None:
    op.drop_column("users", "nickname")
    op.drop_table("comments")
'''


# -- helpers -------------------------------------------------------------------
def with_password(url):
    return url.set(password=DB_PASSWORD)  # the test server trusts 127.0.0.1; the password only has to stay hidden


def settings_for(project: Path, url, *, backup_url: str = f"s3://{BUCKET}/team", env: str = "staging", **extra):
    environ = dict(os.environ)
    environ.update({
        "DBOPS_PROJECT_ROOT": str(project),
        f"{env.upper()}_DATABASE_URL": with_password(url).render_as_string(hide_password=False),
        f"{env.upper()}_BACKUP_URL": backup_url,
        **extra,
    })
    return load_settings(env, environ=environ)


def migrate(project: Path, url, target: str = "head") -> None:
    engine = postgres.make_engine(url)
    with engine.begin() as conn:
        Project(project / "alembic.ini").upgrade(conn, target)
    engine.dispose()


def seed(url, users: int = 50, tag: str = "u") -> None:
    engine = postgres.make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO users (id, email, name) SELECT gen_random_uuid(), :tag || g || '@example.com', 'User ' || g "
            "FROM generate_series(1, :n) g"), {"n": users, "tag": tag})
        conn.execute(sa.text(
            "INSERT INTO posts (author_id, title, body, published) "
            "SELECT id, 'post of ' || name, repeat('x', 100), true FROM users WHERE email LIKE :tag || '%'"),
            {"tag": tag})
    engine.dispose()


def snapshot(url) -> tuple[str, dict[str, list]]:
    """(schema DDL, every table's rows): what 'identical' means for a restore."""
    out = pgtools.run(
        [str(pgtools.find("pg_dump")), "--schema-only", "--no-owner", "--no-privileges",
         *pgtools.conninfo_args(url), pgtools.dbname_arg(url)],
        timeout=60, env=pgtools.libpq_env(url),
    ).stdout
    ddl = "\n".join(line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict", "--")))
    engine = postgres.make_engine(url)
    rows = {}
    with engine.connect() as conn:
        for table in backup.table_row_counts(conn):
            rows[table] = sorted(tuple(map(str, r)) for r in conn.execute(sa.text(f"SELECT * FROM {table}")).all())
    engine.dispose()
    return ddl, rows


def databases(server) -> set[str]:
    with postgres.admin_connection(server.url()) as conn:
        return set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())


def keys(s3, prefix: str = "") -> list[str]:
    resp = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in resp.get("Contents", []))


def uploads(s3) -> list:
    return s3.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads") or []


@pytest.fixture
def app_db(project, fresh_db):
    """A database migrated to the first revision with some users and posts."""
    migrate(project, fresh_db)
    seed(fresh_db)
    return fresh_db


# -- backup → restore -------------------------------------------------------------
def test_round_trip_through_s3_restores_identical_schema_and_data(project, app_db, s3, pg_server):
    settings = settings_for(project, app_db)
    result = backup.create_backup(settings, settings.database_url, progress=False)

    assert result.key.startswith("team/staging/") and result.key.endswith(f"_{FIRST_REV}.dump")
    assert result.manifest_key == result.key.replace(".dump", ".manifest.json")
    assert keys(s3) == sorted([result.key, result.manifest_key])
    assert uploads(s3) == []
    head = s3.client().head_object(Bucket=BUCKET, Key=result.key)
    assert head["ContentLength"] == result.size and head.get("ServerSideEncryption") == "AES256"

    manifest = json.loads(s3.client().get_object(Bucket=BUCKET, Key=result.manifest_key)["Body"].read())
    assert manifest["sha256"] == result.sha256 and manifest["size"] == result.size
    assert manifest["revision"] == FIRST_REV and manifest["database"] == app_db.database
    assert manifest["server_major"] == 18 and manifest["pg_dump_major"] >= 18
    assert manifest["tables"] == {"public.alembic_version": 1, "public.posts": 50, "public.users": 50}
    assert manifest["part_size"] == 5 * MiB
    for field in ("server_version", "pg_dump_version", "started_at", "finished_at", "duration_s"):
        assert manifest[field] not in (None, "")

    restored = backup.restore_backup(settings, "latest", None, source_url=settings.database_url, progress=False)
    assert restored.replaced is False and restored.sha256 == result.sha256
    assert restored.database.startswith(f"{app_db.database}_restored_")
    assert DB_PASSWORD not in restored.target and "***" in restored.target
    target = app_db.set(database=restored.database)
    try:
        assert snapshot(target) == snapshot(app_db)
    finally:
        postgres.drop_database(pg_server.url(), restored.database)

    [info] = backup.list_backups(settings)
    assert (info.key, info.revision, info.complete, info.verified) == (result.key, FIRST_REV, True, False)


def test_in_place_restore_after_a_later_migration_leaves_no_trace_of_it(project, app_db, s3, pg_server):
    settings = settings_for(project, app_db)
    before = snapshot(app_db)
    result = backup.create_backup(settings, settings.database_url, progress=False)

    (project / "alembic/versions/0002_comments.py").write_text(LATER_MIGRATION)
    migrate(project, app_db)
    seed(app_db, users=5, tag="later")
    assert snapshot(app_db) != before
    dbs_before = databases(pg_server)

    with pytest.raises(ConfirmationRequired) as info:
        backup.restore_backup(settings, result.key, app_db, progress=False)
    assert info.value.database == app_db.database and "--yes-i-know" in info.value.hint
    with pytest.raises(ConfirmationRequired):
        backup.restore_backup(settings, result.key, app_db, in_place_confirmed_name="wrong", progress=False)
    assert "public.comments" in snapshot(app_db)[1]  # refused: nothing changed
    assert databases(pg_server) == dbs_before

    restored = backup.restore_backup(
        settings, result.key.rsplit("/", 1)[-1], app_db, in_place_confirmed_name=app_db.database, progress=False
    )
    assert restored.replaced is True
    assert snapshot(app_db) == before  # no comments table, no nickname column, the old rows only
    engine = postgres.make_engine(app_db)
    with engine.connect() as conn:
        assert Project.current(conn) == (FIRST_REV,)
    engine.dispose()
    assert databases(pg_server) == dbs_before  # no leftover work or replaced databases


def test_restore_refuses_a_corrupted_backup_and_keeps_nothing(project, app_db, s3, pg_server):
    settings = settings_for(project, app_db)
    result = backup.create_backup(settings, settings.database_url, progress=False)
    data = bytearray(s3.client().get_object(Bucket=BUCKET, Key=result.key)["Body"].read())
    data[-10] ^= 0xFF  # one flipped byte near the end
    s3.client().put_object(Bucket=BUCKET, Key=result.key, Body=bytes(data))
    dbs_before = databases(pg_server)

    with pytest.raises(ChecksumMismatch) as info:
        backup.restore_backup(settings, "latest", None, source_url=settings.database_url, progress=False)
    assert info.value.exit_code == 1 and result.key in info.value.message
    assert databases(pg_server) == dbs_before  # the new database was dropped

    with pytest.raises(CheckFailed):  # pg_restore may notice first; either way it is refused
        backup.restore_backup(settings, "latest", app_db, in_place_confirmed_name=app_db.database, progress=False)
    assert databases(pg_server) == dbs_before
    with pytest.raises(CheckFailed):
        backup.verify_backup(settings, progress=False)
    assert not [k for k in keys(s3) if k.endswith(".verified.json")]


def test_verify_marks_the_backup_verified_and_catches_a_wrong_manifest(project, app_db, s3):
    settings = settings_for(project, app_db)
    result = backup.create_backup(settings, settings.database_url, progress=False)
    verified = backup.verify_backup(settings, "latest", progress=False)
    assert verified.tables == {"public.alembic_version": 1, "public.posts": 50, "public.users": 50}
    record = json.loads(s3.client().get_object(Bucket=BUCKET, Key=verified.verified_key)["Body"].read())
    assert record["sha256"] == result.sha256
    assert backup.list_backups(settings)[0].verified is True

    # a second backup whose manifest promises a row that is not in the dump
    time.sleep(1.1)
    second = backup.create_backup(settings, settings.database_url, progress=False)
    manifest = second.manifest
    manifest["tables"]["public.users"] = 51
    s3.client().put_object(Bucket=BUCKET, Key=second.manifest_key, Body=json.dumps(manifest).encode())
    with pytest.raises(CheckFailed, match="did not restore to what its manifest describes") as info:
        backup.verify_backup(settings, second.key, progress=False)
    assert "public.users: 50 rows restored, the manifest says 51" in info.value.details
    assert [b.verified for b in backup.list_backups(settings)] == [False, True]


def test_s3_down_mid_upload_aborts_and_leaves_no_manifest_and_no_upload(project, fresh_db, s3):
    engine = postgres.make_engine(fresh_db)
    with engine.begin() as conn:  # ~60 MiB of barely compressible rows: a dump of several 5 MiB parts
        conn.execute(sa.text("CREATE TABLE blobs (id int PRIMARY KEY, v text)"))
        conn.execute(sa.text(
            "INSERT INTO blobs SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) "
            "FROM generate_series(1, 600000) g"))
    engine.dispose()
    settings = settings_for(project, fresh_db)
    # a multipart upload left open on purpose: proves open uploads survive the restart and are listed
    canary = s3.client().create_multipart_upload(Bucket=BUCKET, Key="canary/left-open")
    restarted = threading.Event()

    def restart_later():
        time.sleep(2)
        s3.start()
        restarted.set()

    parts_seen = []

    def on_part(number, size):
        parts_seen.append(number)
        if number == 1:
            s3.stop()  # S3 goes away in the middle of the upload
            threading.Thread(target=restart_later, daemon=True).start()

    with pytest.raises(StorageError) as info:
        backup.create_backup(settings, settings.database_url, progress=False, part_size=5 * MiB, on_part=on_part)
    assert info.value.exit_code != 0
    assert restarted.wait(90)
    assert 1 in parts_seen
    assert keys(s3, "team/") == []  # no dump, no manifest
    assert [u["Key"] for u in uploads(s3)] == ["canary/left-open"]  # ours was aborted after the restart
    s3.client().abort_multipart_upload(Bucket=BUCKET, Key="canary/left-open", UploadId=canary["UploadId"])


def test_local_folder_store_and_pruning_rules(project, app_db):
    folder = project / "backups"
    settings = settings_for(project, app_db, backup_url=str(folder), env="local")
    result = backup.create_backup(settings, settings.database_url, progress=False)
    backup.verify_backup(settings, progress=False)
    env_dir = folder / "local"
    stem = result.key.rsplit("/", 1)[-1][: -len(".dump")]

    def clone(stamp: str, *, manifest=True, verified=True):
        new = f"{stamp}_{FIRST_REV}"
        shutil.copy(env_dir / f"{stem}.dump", env_dir / f"{new}.dump")
        if manifest:
            shutil.copy(env_dir / f"{stem}.manifest.json", env_dir / f"{new}.manifest.json")
        if verified:
            shutil.copy(env_dir / f"{stem}.verified.json", env_dir / f"{new}.verified.json")
        return f"local/{new}.dump"

    import datetime as dt

    recent = clone((dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).strftime("%Y%m%dT%H%M%S.%fZ"))
    old_verified = [clone("20200101T000000.000000Z"), clone("20200102T000000.000000Z"), clone("20200103T000000.000000Z")]
    old_unverified = clone("20200104T000000.000000Z", verified=False)
    old_incomplete = clone("20200105T000000.000000Z", manifest=False, verified=False)
    outside = folder / "prod" / "20200101T000000Z_x.dump"  # another environment's prefix
    outside.parent.mkdir()
    outside.write_bytes(b"not ours")

    killed = env_dir / "20200106T000000Z_x.dump.partial"  # what a backup killed with SIGKILL leaves
    killed.write_bytes(b"half a dump")
    os.utime(killed, (time.time() - 3 * 86400,) * 2)
    just_started = env_dir / "29990101T000000Z_x.dump.partial"  # a backup running right now
    just_started.write_bytes(b"in progress")

    listed = backup.list_backups(settings)
    assert [b.key for b in listed] == [result.key, recent, old_incomplete, old_unverified, *old_verified[::-1]]
    assert [b.complete for b in listed] == [True, True, False, True, True, True, True]

    dry = backup.prune_backups(settings, keep=1, confirm=False)
    assert dry.dry_run and [b.key for b in dry.delete] == old_verified[::-1]
    assert all((folder / k).exists() for k in old_verified)  # a dry run deletes nothing
    assert "would delete" in backup.render_prune(dry) and "add --confirm" in backup.render_prune(dry)
    assert [u.key for u in dry.stale_uploads] == ["local/20200106T000000Z_x.dump"] and killed.exists()

    kept = backup.prune_backups(settings, keep=3, confirm=False)  # newest, recent and old_unverified count
    assert [b.key for b in kept.delete] == old_verified[::-1]
    assert dict((b.key, why) for b, why in kept.keep)[old_unverified] == "within --keep 3"
    assert [b.key for b in backup.prune_backups(settings, keep=4).delete] == old_verified[::-1][1:]

    done = backup.prune_backups(settings, keep=1, confirm=True)
    reasons = {b.key: why for b, why in done.keep}
    assert reasons[result.key] == "newest"
    assert reasons[recent] == "younger than 1 day(s)"
    assert "never pruned" in reasons[old_unverified] and "never pruned" in reasons[old_incomplete]
    for key in old_verified:
        for suffix in (".dump", ".manifest.json", ".verified.json"):
            assert not (folder / key.replace(".dump", suffix)).exists()
    assert [b.key for b in backup.list_backups(settings)] == [result.key, recent, old_incomplete, old_unverified]
    assert outside.exists()
    assert not killed.exists() and just_started.exists()
    with pytest.raises(Exception, match="--keep must be at least 1"):
        backup.prune_backups(settings, keep=0)


# -- the front door: inv backup / backups / verify-backup / restore / prune-backups -------
def inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "BACKUP_URL")) and k != "DBOPS_DB"}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
                          capture_output=True, text=True, env=full, timeout=300)


def cli_env(project: Path, url, s3, **extra) -> dict[str, str]:
    return {
        "DBOPS_PROJECT_ROOT": str(project),
        "STAGING_DATABASE_URL": with_password(url).render_as_string(hide_password=False),
        "STAGING_BACKUP_URL": f"s3://{BUCKET}/cli",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ENDPOINT_URL_S3": s3.endpoint,
        "AWS_REGION": "us-east-1",
        **extra,
    }


def assert_no_secrets(r: subprocess.CompletedProcess[str]) -> None:
    text = r.stdout + r.stderr
    assert SECRET_KEY not in text and DB_PASSWORD not in text
    assert "Traceback" not in text


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
    assert runs[-1].stdout.splitlines()[2].split()[-2] == "yes"
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
        ("missing bucket", {"STAGING_BACKUP_URL": "s3://no-such-bucket/x"}, 3, "bucket 'no-such-bucket' does not exist"),
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
