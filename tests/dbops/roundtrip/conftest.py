"""Fixtures for the round-trip tester: scenario projects and a runner on the session server."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dbops import roundtrip
from dbops.settings import load_settings

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture
def scenario(tmp_path: Path):
    """A private copy of tests/scenarios/<name>; returns its alembic.ini."""

    def copy(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(SCENARIOS / name, dest, ignore=shutil.ignore_patterns("__pycache__"))
        return dest / "alembic.ini"

    return copy


@pytest.fixture
def check(pg_server):
    """Run the round-trip tester on an alembic.ini against the session server; returns (report, error)."""

    def run(ini: Path, **kwargs):
        # DBOPS_ROLLBACK_SNAPSHOTS passes through (``verify``: every tracked snapshot checked against a full one)
        mode = os.environ.get("DBOPS_ROLLBACK_SNAPSHOTS")
        settings = load_settings(alembic_ini=ini, environ={"DBOPS_ROLLBACK_SNAPSHOTS": mode} if mode else {})
        try:
            return roundtrip.run(settings, server_url=pg_server.url(), **kwargs), None
        except roundtrip.RoundTripFailed as exc:
            return exc.report, exc

    return run
