"""``BACKUP_URL=s3://bucket/prod``, as docs/container.md shows it, keeps prod's backups under ``prod/``, not
``prod/prod/``; a prefix that names no environment (``s3://bucket/team``) still gets one folder per environment.
Against the real S3 server (SeaweedFS), through `inv` as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dbops import backup

from .helpers import BUCKET, ROOT, settings_for, with_password


def inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "BACKUP_URL"))}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], env=full,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize(("backup_url", "folder"), [
    (f"s3://{BUCKET}/prod", "prod/"),            # the location is prod's already
    (f"s3://{BUCKET}/acme/prod/", "acme/prod/"),  # deeper, with a trailing slash
    (f"s3://{BUCKET}/team", "team/prod/"),       # a team's prefix: one folder per environment under it
    (f"s3://{BUCKET}", "prod/"),
])
def test_backups_live_once_under_the_environments_folder(s3, project, app_db, backup_url, folder):
    env = {"DBOPS_PROJECT_ROOT": str(project), "PROD_BACKUP_URL": backup_url,
           "PROD_DATABASE_URL": with_password(app_db).render_as_string(hide_password=False)}
    for args in (("backup", "--env", "prod", "--quiet"), ("backup", "--env", "prod", "--quiet")):
        r = inv(*args, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
    keys = sorted(o["Key"] for o in s3.client().list_objects_v2(Bucket=BUCKET).get("Contents", []))
    assert len(keys) == 4 and all(k.startswith(folder) and "/" not in k[len(folder):] for k in keys), keys
    assert not any("prod/prod/" in k for k in keys), keys
    r = inv("backups", "--env", "prod", env=env)
    assert r.returncode == 0 and r.stdout.count(".dump") == 2, r.stdout + r.stderr
    settings = settings_for(project, app_db, backup_url=backup_url, env="prod")
    listed = backup.list_backups(settings)
    assert [b.key for b in listed] == sorted((k for k in keys if k.endswith(".dump")), reverse=True)
    assert all(b.complete for b in listed)
    r = inv("prune-backups", "--env", "prod", "--keep", "1", env=env)  # a dry run: it finds both
    assert r.returncode == 0 and all(f"keep: {k}" in r.stdout for k in keys if k.endswith(".dump")), r.stdout
