"""GET /api/health of the example app against a real database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from dbops.migrations import Project


@pytest.fixture
def client_for(monkeypatch, project):
    def make(url: str | None):
        if url is None:
            monkeypatch.delenv("DATABASE_URL", raising=False)
        else:
            monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("APP_ALEMBIC_INI", str(project / "alembic.ini"))
        from app import config, main

        config.get_settings.cache_clear()
        main._engine.cache_clear()
        return TestClient(main.app)

    return make


def _upgrade(project, url):
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        Project(project / "alembic.ini").upgrade(conn, "head")
        conn.commit()
    engine.dispose()


def test_503_until_the_schema_is_at_head_then_200(client_for, project, fresh_db):
    raw = fresh_db.render_as_string(hide_password=False)
    client = client_for(raw)
    r = client.get("/api/health")
    assert r.status_code == 503
    head = Project(project / "alembic.ini").single_head()
    assert r.json()["current"] == [] and r.json()["heads"] == [head] and r.json()["schema"] == "not at head"

    _upgrade(project, fresh_db)
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",
        "database": "ok",
        "schema": "at head",
        "current": [head],
        "heads": [head],
        "revision": head,
        "head": head,
    }


def test_503_when_the_database_is_unreachable(client_for):
    from dbops.servers.embedded import free_port

    r = client_for(f"postgresql://app:hidden-pw@127.0.0.1:{free_port()}/app").get("/api/health")
    assert r.status_code == 503
    assert r.json()["database"] == "unreachable" and "hidden-pw" not in r.text


def test_503_when_no_database_is_configured(client_for):
    r = client_for(None).get("/api/health")
    assert r.status_code == 503 and r.json()["database"] == "not configured"
