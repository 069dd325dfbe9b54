"""Backups end to end against a real PostgreSQL 18 and a real S3 (SeaweedFS): nothing is mocked."""

from __future__ import annotations

import json
import threading
import time

import pytest
import sqlalchemy as sa

from dbops import backup, postgres
from dbops.errors import StorageError
from dbops.storage import MiB

from .helpers import BUCKET, DB_PASSWORD, FIRST_REV, keys, settings_for, snapshot, uploads


def test_round_trip_through_s3_restores_identical_schema_and_data(project, app_db, s3, pg_server):
    settings = settings_for(project, app_db)
    result = backup.create_backup(settings, settings.database_url)

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

    restored = backup.restore_backup(settings, "latest", None, source_url=settings.database_url)
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


def test_what_the_manifest_records_is_the_dump_s_snapshot_while_the_database_changes_meanwhile(
    project, app_db, s3, pg_server
):
    """Writes committed after the snapshot was exported are in neither the archive nor the manifest.

    The backup reads its revision, the database size and the row counts on its
    one read-only REPEATABLE READ connection, in the snapshot pg_dump imports,
    while pg_dump already runs.  The change is committed when the backup says
    which pg_dump it runs: after the export, before any of those reads.
    """
    from dbops.ui import UI

    from .helpers import seed

    settings = settings_for(project, app_db)
    engine = postgres.make_engine(app_db)

    class ChangeAfterTheExport(UI):
        changed = False

        def say(self, text: str = "") -> None:
            if text.startswith("pg_dump:") and not self.changed:
                seed(app_db, users=10, tag="later")
                with engine.begin() as conn:
                    conn.execute(sa.text("UPDATE alembic_version SET version_num = 'zzzz'"))
                self.changed = True

    ui = ChangeAfterTheExport()
    try:
        result = backup.create_backup(settings, settings.database_url, ui=ui)
        assert ui.changed
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 60
        assert result.manifest.tables["public.users"] == 50
        assert result.manifest.revision == FIRST_REV and result.revision == FIRST_REV
        restored = backup.restore_backup(settings, result.key, None, source_url=settings.database_url)
        target = postgres.make_engine(app_db.set(database=restored.database))
        try:
            with target.connect() as conn:
                assert conn.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 50
                assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == FIRST_REV
        finally:
            target.dispose()
            postgres.drop_database(pg_server.url(), restored.database)
    finally:
        engine.dispose()


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
        backup.create_backup(settings, settings.database_url, part_size=5 * MiB, on_part=on_part)
    assert info.value.exit_code != 0
    assert restarted.wait(90)
    assert 1 in parts_seen
    assert keys(s3, "team/") == []  # no dump, no manifest
    assert [u["Key"] for u in uploads(s3)] == ["canary/left-open"]  # ours was aborted after the restart
    s3.client().abort_multipart_upload(Bucket=BUCKET, Key="canary/left-open", UploadId=canary["UploadId"])
