"""``inv monitor`` (the monitoring window on its own) against real Postgres and the example app.

The window accepts the app's contract: a database at or ahead of the monitoring code's head is healthy;
behind (new code, old schema) or on a line the code cannot place fails at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_fixtures import ADD_PHONE, BASE, add_revision, settings_for
from project_copy import copy_project

from dbops import lineage, monitor, postgres
from dbops.console import Console
from dbops.errors import MonitorFailed
from dbops.migrations import Project


def test_monitor_on_its_own_watches_and_fails_when_the_db_is_behind(project: Path, db, deploy_env, capsys):
    result = monitor.monitor_only(settings_for(deploy_env), seconds=1, ui=Console())
    assert result.samples >= 2 and result.last.schema == "at head"
    assert "all healthy" in capsys.readouterr().out
    add_revision(project, "a1", BASE, *ADD_PHONE)  # new code, old schema: the app answers 503 "behind"
    with pytest.raises(MonitorFailed) as info:
        monitor.monitor_only(settings_for(deploy_env), seconds=1, ui=Console())
    assert "HTTP 503, schema behind" in info.value.message
    assert len(info.value.samples) == 1 and info.value.samples[0].fatal  # at once, not after a streak


def _upgrade_with_newer_code(tmp_path: Path, db, *, record: bool) -> None:
    newer = copy_project(tmp_path / "newer")
    add_revision(newer, "b2", BASE, *ADD_PHONE)
    engine = postgres.make_engine(db)
    try:
        with engine.connect() as conn:
            if record:
                lineage.record(conn, Project(newer / "alembic.ini"))
            Project(newer / "alembic.ini").upgrade(conn, "head")
            conn.commit()
    finally:
        engine.dispose()


def test_a_database_ahead_of_the_monitoring_code_is_healthy(project: Path, db, deploy_env, tmp_path, capsys):
    """An older checkout (and the old app) watching a database the next release upgraded: at or ahead is fine."""
    _upgrade_with_newer_code(tmp_path, db, record=True)
    result = monitor.monitor_only(settings_for(deploy_env), seconds=1, ui=Console())
    assert result.bad_samples == 0 and result.last.schema == "ahead" and result.last.revision == ["b2"]
    assert "schema ahead: database at b2, the app's code expects " + BASE in result.last.health
    assert "all healthy" in capsys.readouterr().out


def test_a_database_on_a_revision_nobody_recorded_fails_at_once(project: Path, db, deploy_env, tmp_path):
    _upgrade_with_newer_code(tmp_path, db, record=False)  # upgraded outside inv deploy: no lineage
    env = {k: v for k, v in deploy_env.items() if k != "PROD_HEALTH_URL"}  # the database side on its own
    with pytest.raises(MonitorFailed) as info:
        monitor.monitor_only(settings_for(env), seconds=1, ui=Console())
    assert "schema unknown" in info.value.message and "b2 is unknown to this code" in info.value.message
    assert len(info.value.samples) == 1
