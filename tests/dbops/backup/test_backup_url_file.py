"""A BACKUP_URL that names a file rather than a folder or bucket is refused in one line by `inv backups` and every
backup task, and nothing is written (it used to answer "no backups yet").  Real SeaweedFS, real PostgreSQL."""

from __future__ import annotations

import pytest

from .helpers import BUCKET, inv, with_password


def _listing(s3) -> dict[str, tuple[int, str]]:
    resp = s3.client().list_objects_v2(Bucket=BUCKET)
    return {o["Key"]: (o["Size"], o["ETag"]) for o in resp.get("Contents", [])}


@pytest.mark.parametrize("args", [
    ("backups",),
    ("backup", "--quiet"),
    ("restore", "--quiet"),
    ("verify-backup",),
    ("prune-backups", "--confirm"),
])
def test_a_stored_object_named_by_backup_url_is_refused_by_every_backup_task(project, app_db, s3, args):
    s3.client().put_object(Bucket=BUCKET, Key="prod/db", Body=b"PGDMP a dump someone uploaded by hand")
    before = _listing(s3)
    env = {"DBOPS_PROJECT_ROOT": str(project), "PROD_BACKUP_URL": f"s3://{BUCKET}/prod/db",
           "PROD_DATABASE_URL": with_password(app_db).render_as_string(hide_password=False)}
    r = inv(*args, "--env", "prod", env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: BACKUP_URL names a file, not a folder or bucket: s3://{BUCKET}/prod/db "
                      "(an object 'prod/db' is stored there)"], r.stderr
    assert "no backups yet" not in r.stdout + r.stderr and "Traceback" not in r.stderr
    assert _listing(s3) == before


def test_a_file_name_or_a_path_that_is_a_file_is_refused(project, app_db, s3, tmp_path):
    dump = tmp_path / "prod.dump"
    dump.write_bytes(b"PGDMP")
    base = {"DBOPS_PROJECT_ROOT": str(project),
            "PROD_DATABASE_URL": with_password(app_db).render_as_string(hide_password=False)}
    for url, why in ((f"s3://{BUCKET}/prod/latest.dump", "'latest.dump' is the name of a file"),
                     (str(dump), f"{dump} is a file"),
                     (str(dump / "sub"), f"{dump} is a file")):
        r = inv("backups", "--env", "prod", env={**base, "PROD_BACKUP_URL": url})
        assert r.returncode == 2, r.stdout + r.stderr
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "BACKUP_URL names a file" in errors[0] and why in errors[0], r.stderr
    assert _listing(s3) == {} and dump.read_bytes() == b"PGDMP"
