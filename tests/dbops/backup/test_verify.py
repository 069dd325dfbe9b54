"""verify-backup: marks a good backup verified, catches a manifest the dump does not match."""

from __future__ import annotations

import json

import pytest

from dbops import backup
from dbops.errors import CheckFailed

from .helpers import BUCKET, settings_for


def test_verify_marks_the_backup_verified_and_catches_a_wrong_manifest(project, app_db, s3):
    settings = settings_for(project, app_db)
    result = backup.create_backup(settings, settings.database_url)
    verified = backup.verify_backup(settings, "latest")
    assert verified.tables == {"public.alembic_version": 1, "public.posts": 50, "public.users": 50}
    record = json.loads(s3.client().get_object(Bucket=BUCKET, Key=verified.verified_key)["Body"].read())
    assert record["sha256"] == result.sha256
    assert backup.list_backups(settings)[0].verified is True

    # a second backup whose manifest promises a row that is not in the dump
    second = backup.create_backup(settings, settings.database_url)
    manifest = second.manifest.to_dict()
    manifest["tables"]["public.users"] = 51
    s3.client().put_object(Bucket=BUCKET, Key=second.manifest_key, Body=json.dumps(manifest).encode())
    with pytest.raises(CheckFailed, match="did not restore to what its manifest describes") as info:
        backup.verify_backup(settings, second.key)
    assert "public.users: 50 rows restored, the manifest says 51" in info.value.details
    assert [b.verified for b in backup.list_backups(settings)] == [False, True]
