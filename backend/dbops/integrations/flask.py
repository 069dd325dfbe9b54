"""``health_blueprint``: dbops' health contract as a Flask ``Blueprint``.

    from dbops.integrations.flask import health_blueprint

    app.register_blueprint(health_blueprint())  # Flask-SQLAlchemy + Flask-Migrate: nothing to pass

``GET path`` answers 200 when the database is at or ahead of the head this
code expects, 503 otherwise, with the contract's JSON body
(:mod:`dbops.integrations.contract`).  With no arguments it reads the app's
Flask-SQLAlchemy engine (``db.engine``) and Flask-Migrate's migrations
folder, inside the request's app context.  The only module of dbops that
imports Flask (``pip install flask``).
"""

from __future__ import annotations

from pathlib import Path

try:
    from flask import Blueprint, current_app, jsonify
except ImportError as exc:  # Flask is the app's own dependency, not dbops'
    raise ImportError(f"dbops.integrations.flask needs Flask ({exc}): pip install flask") from None

from .contract import Database, HealthContract, PathSource


def _flask_sqlalchemy_engine():
    """The engine of the app's Flask-SQLAlchemy extension (``db.engine``), or None when it has none."""
    ext = current_app.extensions.get("sqlalchemy")
    return getattr(ext, "engine", None) if ext is not None else None


def _flask_migrate_folder() -> Path:
    """Flask-Migrate's migrations folder (``Migrate(app, db, directory=...)``), found as ``flask db`` finds it:
    relative to the current folder, else to the app's folder and its parent."""
    ext = current_app.extensions.get("migrate")
    if ext is None:
        raise TypeError("no Flask-Migrate on this app: pass health_blueprint(alembic_ini=...) or script_location=")
    folder = Path(ext.directory)
    if folder.is_absolute():
        return folder
    root = Path(current_app.root_path)
    return next((base / folder for base in (Path.cwd(), root, root.parent) if (base / folder).is_dir()),
                Path.cwd() / folder)


def health_blueprint(
    database: Database = None, *, alembic_ini: PathSource = None, script_location: PathSource = None,
    path: str = "/health", name: str = "dbops_health",
) -> Blueprint:
    """A ``Blueprint`` with ``GET path`` answering dbops' health contract.

    ``database``: the app's Engine, its URL, or a callable returning either; by default Flask-SQLAlchemy's
    ``db.engine``.  The scripts: ``alembic_ini`` or ``script_location``; by default Flask-Migrate's folder.
    Callables are read on each request, inside the app context.
    """
    if alembic_ini is None and script_location is None:
        script_location = _flask_migrate_folder
    contract = HealthContract(database if database is not None else _flask_sqlalchemy_engine,
                              alembic_ini=alembic_ini, script_location=script_location)
    bp = Blueprint(name, __name__)

    @bp.get(path)
    def health():
        found = contract.answer()
        return jsonify(found.body), found.status

    bp.contract = contract  # the answer without HTTP, for an app's own checks
    return bp
