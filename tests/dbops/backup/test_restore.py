"""Restore: into a new database, in place after a later migration, and refusing a corrupted backup."""

from __future__ import annotations

import pytest

from dbops import backup, postgres
from dbops.errors import CheckFailed, ChecksumMismatch, ConfirmationRequired
from dbops.migrations import Project

from .helpers import BUCKET, FIRST_REV, LATER_MIGRATION, databases, keys, migrate, seed, settings_for, snapshot


def test_in_place_restore_after_a_later_migration_leaves_no_trace_of_it(project, app_db, s3, pg_server):
    settings = settings_for(project, app_db)
    before = snapshot(app_db)
    result = backup.create_backup(settings, settings.database_url)

    (project / "alembic/versions/0002_comments.py").write_text(LATER_MIGRATION)
    migrate(project, app_db)
    seed(app_db, users=5, tag="later")
    assert snapshot(app_db) != before
    dbs_before = databases(pg_server)

    with pytest.raises(ConfirmationRequired) as info:
        backup.restore_backup(settings, result.key, app_db)
    assert info.value.database == app_db.database and "--yes-i-know" in info.value.hint
    with pytest.raises(ConfirmationRequired):
        backup.restore_backup(settings, result.key, app_db, in_place_confirmed_name="wrong")
    assert "public.comments" in snapshot(app_db)[1]  # refused: nothing changed
    assert databases(pg_server) == dbs_before

    restored = backup.restore_backup(
        settings, result.key.rsplit("/", 1)[-1], app_db, in_place_confirmed_name=app_db.database
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
    result = backup.create_backup(settings, settings.database_url)
    data = bytearray(s3.client().get_object(Bucket=BUCKET, Key=result.key)["Body"].read())
    data[-10] ^= 0xFF  # one flipped byte near the end
    s3.client().put_object(Bucket=BUCKET, Key=result.key, Body=bytes(data))
    dbs_before = databases(pg_server)

    with pytest.raises(ChecksumMismatch) as info:
        backup.restore_backup(settings, "latest", None, source_url=settings.database_url)
    assert info.value.exit_code == 1 and result.key in info.value.message
    assert databases(pg_server) == dbs_before  # the new database was dropped

    with pytest.raises(CheckFailed):  # pg_restore may notice first; either way it is refused
        backup.restore_backup(settings, "latest", app_db, in_place_confirmed_name=app_db.database)
    assert databases(pg_server) == dbs_before
    with pytest.raises(CheckFailed):
        backup.verify_backup(settings)
    assert not [k for k in keys(s3) if k.endswith(".verified.json")]
