"""GET /api/health of the example app against a real database: the expand/contract contract.

200 when the database is at or ahead of the head this code expects, 503 when it is behind, on a line the
code cannot place, unreachable or not configured (dbops.lineage, docs/production.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from deploy_fixtures import ADD_PHONE, BASE, add_revision
from fastapi.testclient import TestClient
from project_copy import copy_project

from dbops import lineage
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


def _upgrade(project, url, target="head"):
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        Project(project / "alembic.ini").upgrade(conn, target)
        conn.commit()
    engine.dispose()


@pytest.fixture
def newer(tmp_path: Path) -> Path:
    """The next release of the project: the same revisions plus b2 (adds users.phone)."""
    dest = copy_project(tmp_path / "newer")
    add_revision(dest, "b2", BASE, *ADD_PHONE)
    return dest


def test_503_behind_until_the_schema_is_at_head_then_200(client_for, project, fresh_db):
    raw = fresh_db.render_as_string(hide_password=False)
    client = client_for(raw)
    r = client.get("/api/health")
    head = Project(project / "alembic.ini").single_head()
    assert r.status_code == 503
    assert r.json()["current"] == [] and r.json()["heads"] == [head] and r.json()["schema"] == "behind"
    assert f"missing: {head}" in r.json()["detail"]

    _upgrade(project, fresh_db)
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",
        "database": "ok",
        "schema": "at head",
        "detail": f"the database is at this code's head {head}",
        "current": [head],
        "heads": [head],
        "revision": head,
        "head": head,
    }


def test_new_code_on_the_old_schema_is_503_behind(client_for, project, fresh_db):
    _upgrade(project, fresh_db)  # the database at BASE: the old release's head
    add_revision(project, "b2", BASE, *ADD_PHONE)  # this app's code now expects b2
    r = client_for(fresh_db.render_as_string(hide_password=False)).get("/api/health")
    assert r.status_code == 503
    body = r.json()
    assert (body["schema"], body["current"], body["heads"], body["status"]) == ("behind", [BASE], ["b2"], "error")
    assert "missing: b2" in body["detail"]


def test_old_code_on_a_newer_schema_is_200_ahead_through_the_recorded_lineage(client_for, project, newer, fresh_db):
    """The old app does not know b2; the lineage inv deploy records (b2's parent is its head) says "ahead"."""
    _upgrade(newer, fresh_db)  # upgraded by the next release, outside inv deploy: no lineage yet
    client = client_for(fresh_db.render_as_string(hide_password=False))
    r = client.get("/api/health")
    assert r.status_code == 503 and r.json()["schema"] == "unknown"
    assert "b2 is unknown to this code" in r.json()["detail"] and r.json()["heads"] == [BASE]

    engine = sa.create_engine(fresh_db)
    with engine.connect() as conn:
        assert lineage.record(conn, Project(newer / "alembic.ini")) == 2
    engine.dispose()
    r = client.get("/api/health")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert (body["schema"], body["current"], body["heads"], body["status"]) == ("ahead", ["b2"], [BASE], "ok")
    assert (body["revision"], body["head"]) == ("b2", BASE)


def test_a_newer_schema_on_another_line_is_503_unknown(client_for, project, tmp_path, fresh_db):
    """A database at a revision whose recorded lineage does not lead to this code's head is not "ahead"."""
    other = copy_project(tmp_path / "other")
    add_revision(other, "c3", None, "op.create_table('elsewhere', sa.Column('id', sa.Integer, primary_key=True))",
                 "op.drop_table('elsewhere')")
    (other / "alembic" / "versions").joinpath(
        next(p.name for p in (other / "alembic" / "versions").glob(f"*{BASE}*"))).unlink()
    _upgrade(other, fresh_db)
    engine = sa.create_engine(fresh_db)
    with engine.connect() as conn:
        lineage.record(conn, Project(other / "alembic.ini"))
    engine.dispose()
    r = client_for(fresh_db.render_as_string(hide_password=False)).get("/api/health")
    assert r.status_code == 503 and r.json()["schema"] == "unknown"
    assert "its recorded lineage does not lead there" in r.json()["detail"]


def test_503_when_the_database_is_unreachable(client_for):
    from dbops.servers.embedded import free_port

    r = client_for(f"postgresql://app:hidden-pw@127.0.0.1:{free_port()}/app").get("/api/health")
    assert r.status_code == 503
    assert r.json()["database"] == "unreachable" and "hidden-pw" not in r.text


def test_503_when_no_database_is_configured(client_for):
    r = client_for(None).get("/api/health")
    assert r.status_code == 503 and r.json()["database"] == "not configured"


def test_an_app_role_that_cannot_read_the_lineage_is_told_the_grants_that_fix_it(client_for, project, newer, fresh_db):
    """The app's own role may lack access to the dbops schema: 503 unknown, naming the exact grants; run, 200."""
    _upgrade(newer, fresh_db)
    admin = sa.create_engine(fresh_db)
    role = f"app_{fresh_db.database}"
    with admin.connect() as conn:
        lineage.record(conn, Project(newer / "alembic.ini"))
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(sa.text(f'GRANT SELECT ON alembic_version TO "{role}"'))
        conn.commit()
    try:
        client = client_for(fresh_db.set(username=role).render_as_string(hide_password=False))
        r = client.get("/api/health")
        assert r.status_code == 503 and r.json()["schema"] == "unknown"
        detail = r.json()["detail"]
        assert "permission denied for schema dbops" in detail
        grants = detail[detail.index("GRANT USAGE"):]
        assert grants == f"GRANT USAGE ON SCHEMA dbops TO {role}; GRANT SELECT ON dbops.revision_lineage TO {role};"
        with admin.connect() as conn:  # the printed statements, verbatim, as the tables' owner
            conn.execute(sa.text(grants))
            conn.commit()
        r = client.get("/api/health")
        assert r.status_code == 200 and r.json()["schema"] == "ahead"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
            conn.commit()
        admin.dispose()
