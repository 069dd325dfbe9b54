"""The deploy with backups on real S3 (SeaweedFS, the backup layer's ``s3`` fixture).

These run once the backup layer (issue 4: ``dbops.backup`` and the ``s3``
fixture in tests/conftest.py) is on the branch; until then they skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_fixtures import ADD_PHONE, BASE, SECRET, add_revision, columns, current, settings_for

from dbops.console import Console
from dbops.deploy import pipeline
from dbops.deploy.pipeline import DeployOptions
from dbops.errors import DeployFailed


@pytest.fixture
def s3_env(request):
    server = request.getfixturevalue("s3")
    deploy_env = request.getfixturevalue("deploy_env")
    return server, {**deploy_env, "PROD_BACKUP_URL": "s3://dbops-backups/deploys"}


def test_clean_deploy_backs_up_to_s3_and_stores_its_record_beside(project: Path, db, s3_env, capsys):
    server, env = s3_env
    add_revision(project, "a1", BASE, *ADD_PHONE)
    report = pipeline.deploy(settings_for(env), DeployOptions(monitor_seconds=0), ui=Console())
    assert report.outcome == "success" and current(db) == ["a1"]
    keys = [o["Key"] for o in server.client().list_objects_v2(Bucket="dbops-backups").get("Contents", [])]
    assert any(k.endswith(".dump") for k in keys)
    assert any(k.endswith(Path(report.path).name) for k in keys)
    assert any(k.endswith(Path(report.dry_run_sql).name) for k in keys)
    assert SECRET not in capsys.readouterr().out


def test_s3_down_means_no_upgrade(project: Path, db, s3_env):
    server, env = s3_env
    add_revision(project, "a1", BASE, *ADD_PHONE)
    server.stop()
    try:
        with pytest.raises(DeployFailed) as info:
            pipeline.deploy(settings_for(env), DeployOptions(monitor_seconds=0))
    finally:
        server.start()
    r = info.value.report
    assert r.failed_step == "backup"
    assert current(db) == [BASE] and "phone" not in columns(db, "users")
    assert r.db_changed is False and r.recovery == []
