"""Client-side encryption to age recipients: no plaintext anywhere in the store; restore and verify only with the
identity of a recipient, refused in one line without it (nothing changed). Real SeaweedFS, real PostgreSQL."""

from __future__ import annotations

import pytest

pyrage = pytest.importorskip("pyrage")  # the `encrypt` extra, part of `dev`

from fingerprint import assert_unchanged, fingerprint  # noqa: E402

from dbops import backup  # noqa: E402
from dbops.backup import crypt  # noqa: E402
from dbops.errors import KeyRequired  # noqa: E402

from .helpers import BUCKET, databases, inv, keys, settings_for, snapshot, with_password  # noqa: E402


def _stored(s3, prefix: str) -> dict[str, bytes]:
    client = s3.client()
    return {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys(s3, prefix)}


def _plaintext(objects: dict[str, bytes]) -> list[str]:
    """What a reader of the bucket learns: pg_dump's magic or a known row anywhere in a stored object."""
    found = []
    for key, data in objects.items():
        for needle in (b"PGDMP", b"u17@example.com", b"post of User 17"):
            if needle in data:
                found.append(f"{key}: {needle.decode()}")
    return found


def test_an_encrypted_backup_stores_no_plaintext_and_restores_only_with_its_key(project, app_db, s3, pg_server):
    team = pyrage.x25519.Identity.generate()
    other = pyrage.x25519.Identity.generate()
    recipient = str(team.to_public())
    # no compression: an unencrypted archive would carry the rows as they are (the control below shows it)
    plain_env = {"BACKUP_COMPRESSION": "none"}
    control = settings_for(project, app_db, backup_url=f"s3://{BUCKET}/control", **plain_env)
    backup.create_backup(control, control.database_url)
    assert len(_plaintext(_stored(s3, "control/"))) >= 3  # the scan finds the rows when they are there

    settings = settings_for(project, app_db, backup_url=f"s3://{BUCKET}/team", **plain_env,
                            BACKUP_AGE_RECIPIENTS=f"{recipient}, {other.to_public()}")
    result = backup.create_backup(settings, settings.database_url)
    stored = _stored(s3, "team/")
    assert sorted(stored) == sorted([result.manifest_key, result.key])
    assert _plaintext(stored) == []
    assert stored[result.key].startswith(crypt.AGE_MAGIC)
    assert not any(str(i).encode() in data for i in (team, other) for data in stored.values())  # no secret key
    manifest = result.manifest
    assert manifest.encryption == "age" and manifest.recipients == [recipient, str(other.to_public())]
    assert manifest.size == len(stored[result.key]) and manifest.plain_size < manifest.size
    assert backup.list_backups(settings)[0].manifest.plain_sha256 == manifest.plain_sha256

    # restore and verify-backup without the key or with another: refused in one line, nothing changed
    source = fingerprint(app_db)
    dbs = databases(pg_server)
    listing = {k: len(v) for k, v in _stored(s3, "").items()}
    env = {"DBOPS_PROJECT_ROOT": str(project), "STAGING_BACKUP_URL": f"s3://{BUCKET}/team",
           "STAGING_DATABASE_URL": with_password(app_db).render_as_string(hide_password=False)}
    wrong = {"STAGING_BACKUP_AGE_IDENTITY": str(pyrage.x25519.Identity.generate())}
    for extra in ({}, wrong):
        for args in (("restore", "--env", "staging", "--in-place", "--yes-i-know", app_db.database),
                     ("verify-backup", "--env", "staging")):
            r = inv(*args, env={**env, **extra})
            assert r.returncode == 2, r.stdout + r.stderr
            errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and recipient in errors[0], r.stderr
            assert "AGE-SECRET-KEY" not in r.stdout + r.stderr.replace("AGE-SECRET-KEY-1…", "")
    assert_unchanged(source, fingerprint(app_db), "the live database after the refused restores")
    assert databases(pg_server) == dbs
    assert {k: len(v) for k, v in _stored(s3, "").items()} == listing

    # with the key (the other recipient's, from a file): restored equal to the source, and verified
    key_file = project / "age-key.txt"
    key_file.write_text(f"# created by the test\n{other}\n")
    reader = settings_for(project, app_db, backup_url=f"s3://{BUCKET}/team", BACKUP_AGE_IDENTITY_FILE=str(key_file))
    with pytest.raises(KeyRequired):
        backup.restore_backup(settings, result.key, None)  # the backup job's own settings hold no identity
    restored = backup.restore_backup(reader, result.key, None)
    assert snapshot(restored_url(app_db, restored.database)) == snapshot(app_db)
    checked = backup.verify_backup(reader, result.key)
    assert checked.tables == manifest.tables
    assert backup.list_backups(reader)[0].verified


def restored_url(url, database: str):
    return url.set(database=database)
