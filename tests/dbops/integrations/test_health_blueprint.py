"""dbops.integrations.flask: the health contract as a Flask blueprint, through Flask's test client (real WSGI).

A Flask-SQLAlchemy + Flask-Migrate app registers ``health_blueprint()`` with no arguments: it finds the
engine (``db.engine``) and the migrations folder (Flask-Migrate's) in the app, as ``flask db`` does.
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from deploy_fixtures import ADD_PHONE, BASE, add_revision
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from project_copy import copy_project
from werkzeug.serving import make_server

from dbops import health, lineage
from dbops.integrations.flask import health_blueprint
from dbops.migrations import Project


def flask_app(url, migrations: Path, **blueprint) -> tuple[Flask, SQLAlchemy]:
    """The Flask-Migrate shape: an app factory, ``db = SQLAlchemy()``, ``Migrate(app, db, directory=...)``."""
    app = Flask("shop")
    app.config["SQLALCHEMY_DATABASE_URI"] = url.render_as_string(hide_password=False)
    db = SQLAlchemy()
    db.init_app(app)
    Migrate(app, db, directory=str(migrations))
    app.register_blueprint(health_blueprint(**blueprint))
    return app, db


def upgrade(project: Path, url, target: str = "head") -> None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            Project(project / "alembic.ini").upgrade(conn, target)
            conn.commit()
    finally:
        engine.dispose()


def test_behind_at_head_ahead_with_nothing_passed(project, fresh_db, tmp_path):
    app, db = flask_app(fresh_db, project / "alembic")
    client = app.test_client()

    r = client.get("/health")
    assert r.status_code == 503 and (r.json["schema"], r.json["current"], r.json["heads"]) == ("behind", [], [BASE])

    upgrade(project, fresh_db)
    r = client.get("/health")
    assert r.status_code == 200 and (r.json["schema"], r.json["revision"], r.json["head"]) == ("at head", BASE, BASE)

    newer = copy_project(tmp_path / "newer")
    add_revision(newer, "b2", BASE, *ADD_PHONE)
    upgrade(newer, fresh_db)
    with app.app_context():
        assert client.get("/health").json["schema"] == "unknown"
        with db.engine.connect() as conn:
            lineage.record(conn, Project(newer / "alembic.ini"))
    r = client.get("/health")
    assert r.status_code == 200 and (r.json["schema"], r.json["current"], r.json["heads"]) == ("ahead", ["b2"], [BASE])
    assert r.json["detail"].startswith("the database is at b2, a descendant of this code's head")
    # served over HTTP (werkzeug's server on a free port), dbops' own check reads the body as the contract
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        h = health.check(f"http://127.0.0.1:{server.server_port}/health", expected_heads=["b2"])
    finally:
        server.shutdown()
        thread.join(10)
    assert h.ok and h.contract and h.reason == f"HTTP 200, schema ahead: database at b2, the app's code expects {BASE}"


def test_new_code_on_the_old_schema_is_503_behind(project, fresh_db):
    upgrade(project, fresh_db)
    add_revision(project, "a1", BASE, *ADD_PHONE)  # the app's code now expects a1
    app, _ = flask_app(fresh_db, project / "alembic", path="/api/health")
    r = app.test_client().get("/api/health")
    assert r.status_code == 503 and r.json["status"] == "error"
    assert (r.json["schema"], r.json["current"], r.json["heads"]) == ("behind", [BASE], ["a1"])


def test_an_alembic_ini_and_an_engine_passed_explicitly(project, fresh_db):
    upgrade(project, fresh_db)
    engine = sa.create_engine(fresh_db)
    try:
        app = Flask("plain")
        app.register_blueprint(health_blueprint(engine, alembic_ini=str(project / "alembic.ini"), name="ready",
                                                path="/ready"))
        r = app.test_client().get("/ready")
        assert r.status_code == 200 and r.json["schema"] == "at head"
    finally:
        engine.dispose()


def test_an_app_without_flask_migrate_is_told_what_to_pass(fresh_db):
    app = Flask("bare")
    app.register_blueprint(health_blueprint(lambda: None))
    r = app.test_client().get("/health")
    assert r.status_code == 503
    assert "no Flask-Migrate on this app: pass health_blueprint(alembic_ini=...) or script_location=" \
        in r.json["detail"]
