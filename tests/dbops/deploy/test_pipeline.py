"""``inv deploy`` end to end against real Postgres and the example app served by uvicorn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbops.deploy import pipeline
from dbops.deploy.pipeline import DeployOptions
from dbops.errors import DeployFailed

from conftest import ADD_PHONE, BASE, SECRET, add_revision, columns, current, settings_for


def test_clean_deploy_end_to_end(project: Path, db, app, deploy_env, capsys):
    path = add_revision(project, "a1", BASE, *ADD_PHONE, doc="add phone")
    settings = settings_for(deploy_env, PROD_HEALTH_URL=app.url)

    report = pipeline.deploy(settings, DeployOptions(monitor_seconds=1))

    assert report.outcome == "success"
    assert current(db) == ["a1"]
    assert "phone" in columns(db, "users")
    assert [s.name for s in report.steps] == ["settings", "lock", "preflight", "backup", "dry-run", "upgrade", "verify", "monitor"]
    assert all(s.status == "ok" for s in report.steps)
    assert report.revision_before == [BASE] and report.revision_after == ["a1"]
    # the backup exists where BACKUP_URL says, and its checksum is the file's
    backup = Path(report.backup["key"])
    assert backup.is_file() and backup.stat().st_size == report.backup["size"]
    # dry-run SQL and the JSON report: under backups/ and beside the backup
    sql = Path(report.dry_run_sql).read_text()
    assert "-- ==== revision a1: add phone" in sql and "ALTER TABLE users ADD COLUMN phone TEXT" in sql
    data = json.loads(Path(report.path).read_text())
    assert data["outcome"] == "success" and data["backup"]["sha256"] == report.backup["sha256"]
    assert (backup.parent / Path(report.path).name).is_file()
    assert (backup.parent / Path(report.dry_run_sql).name).is_file()
    assert report.health and report.health[0]["ok"] and report.health[0]["revision"] == ["a1"]
    assert report.monitor["samples"] >= 2
    out = capsys.readouterr().out
    assert "SUCCESS" in out and "a1" in out
    assert SECRET not in out and SECRET not in Path(report.path).read_text()


def test_nothing_pending_exits_clean_without_backup(project: Path, db, deploy_env, tmp_path, capsys):
    settings = settings_for(deploy_env, PROD_HEALTH_URL="http://127.0.0.1:9/never-called")
    report = pipeline.deploy(settings)
    assert report.outcome == "nothing to deploy"
    assert report.backup is None
    assert not (tmp_path / "offsite").exists()
    assert "nothing to deploy" in capsys.readouterr().out
