"""``inv monitor`` (the monitoring window on its own) against real Postgres and the example app."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbops import monitor
from dbops.console import Console
from dbops.errors import MonitorFailed

from deploy_fixtures import ADD_PHONE, BASE, add_revision, settings_for
from deploy_fixtures import app, db, deploy_env  # noqa: F401  (fixtures)


def test_monitor_on_its_own_watches_and_fails_when_the_db_is_not_at_head(project: Path, db, deploy_env, capsys):
    result = monitor.monitor_only(settings_for(deploy_env), seconds=1, ui=Console())
    assert result.samples >= 2
    assert "all healthy" in capsys.readouterr().out
    add_revision(project, "a1", BASE, *ADD_PHONE)  # new code, old schema: the app answers 503
    with pytest.raises(MonitorFailed) as info:
        monitor.monitor_only(settings_for(deploy_env), seconds=1, ui=Console())
    assert "HTTP 503" in info.value.message
