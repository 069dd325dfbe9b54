"""Run as a script in a process of its own: the models another commit's env.py maps, as JSON.

``python -I load_models.py INI OUT [EXCLUDE ...]`` runs that project's env.py
offline (nothing connects) and writes to ``OUT`` the heads of its scripts and
every table of its ``target_metadata``: the columns with their PostgreSQL
types, nullability and whether they have a default, and the ORM classes that
map each table and column.  It imports only the standard library, Alembic and
SQLAlchemy (never dbops), and ``sys.path`` entries under the ``EXCLUDE``
folders (the serving tree, whose ``backend/`` an editable install puts on the
path) are dropped first, except the interpreter's own (a virtualenv inside
the tree), so the old ``app`` modules are the ones imported.

A failure writes ``{"error": ..., "where": ...}`` and exits 3.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback

OFFLINE_URL = "postgresql+psycopg2://offline@localhost/offline"


def _under(path: str, folder: str) -> bool:
    try:
        real, root = os.path.realpath(path or "."), os.path.realpath(folder)
    except OSError:
        return False
    return real == root or real.startswith(root + os.sep)


def _type(column) -> str:
    from sqlalchemy.dialects import postgresql

    try:
        return column.type.compile(dialect=postgresql.dialect())
    except Exception:
        return repr(column.type)


def _mapped(tables) -> dict:
    """``{id(table): {"models": [class names], "attrs": {column name: attribute}}}`` from every ORM registry."""
    from sqlalchemy.orm import mapperlib

    found: dict = {}
    for registry in list(mapperlib._mapper_registries):  # the only list of every registry (private)
        for mapper in registry.mappers:
            table = mapper.local_table
            if id(table) not in tables:
                continue
            entry = found.setdefault(id(table), {"models": [], "attrs": {}})
            entry["models"].append(mapper.class_.__name__)
            for prop in mapper.column_attrs:
                for col in prop.columns:
                    if getattr(col, "table", None) is table:
                        entry["attrs"].setdefault(col.name, f"{mapper.class_.__name__}.{prop.key}")
    return found


def describe(metadatas) -> list[dict]:
    tables = {id(t): t for md in metadatas for t in md.tables.values()}
    mapped = _mapped(tables)
    out = []
    for key, table in tables.items():
        entry = mapped.get(key, {"models": [], "attrs": {}})
        out.append({
            "schema": table.schema,
            "name": table.name,
            "models": sorted(set(entry["models"])),
            "columns": [{
                "name": col.name,
                "attr": entry["attrs"].get(col.name),
                "type": _type(col),
                "nullable": bool(col.nullable),
                "default": col.default is not None or col.server_default is not None
                or (col.primary_key and col.autoincrement is True),
            } for col in table.columns],
        })
    return out


def load(ini: str) -> dict:
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    toml = os.path.join(os.path.dirname(ini), "pyproject.toml")
    try:
        with open(toml, encoding="utf-8") as f:
            toml_file = toml if "[tool.alembic]" in f.read() else None
    except OSError:
        toml_file = None
    # a project with [tool.alembic] and no alembic.ini (`alembic init -t pyproject`): the toml alone, as Alembic
    reads_toml = hasattr(Config, "get_alembic_option")  # Alembic 1.16+; before it, the ini alone
    cfg = Config(ini if os.path.isfile(ini) else None, stdout=io.StringIO(), output_buffer=io.StringIO(),
                 **({"toml_file": toml_file} if reads_toml else {}))
    cfg.set_main_option("sqlalchemy.url", OFFLINE_URL)
    cfg.attributes["skip_logging_config"] = True
    get_option = cfg.get_alembic_option if reads_toml else cfg.get_main_option
    if not get_option("script_location"):  # Flask-Migrate's ini: the scripts are beside it
        cfg.set_main_option("script_location", os.path.dirname(os.path.abspath(ini)).replace("%", "%%"))
    script = ScriptDirectory.from_config(cfg)
    heads = sorted(script.get_heads())
    seen: list = []

    def fn(_rev, context):
        seen.append(context.opts.get("target_metadata"))
        return []

    head = heads[0] if heads else None
    with _flask_app(script.dir), \
            EnvironmentContext(cfg, script, fn=fn, as_sql=True, starting_rev=head, destination_rev=head, tag=None):
        script.run_env()
    metadata = seen[0] if seen else None
    if metadata is None:
        raise LookupError("env.py gives no target_metadata (context.configure(target_metadata=...))")
    metadatas = list(metadata) if isinstance(metadata, (list, tuple)) else [metadata]
    return {"heads": heads, "tables": describe(metadatas)}


@contextlib.contextmanager
def _flask_app(script_dir: str):
    """A Flask-Migrate env.py (it reads ``current_app``) runs in its app's context, the app found as
    ``flask`` finds it (``FLASK_APP``, else app.py / wsgi.py beside the migrations folder)."""
    try:
        with open(os.path.join(script_dir, "env.py"), encoding="utf-8") as f:
            flask = "current_app" in f.read()
    except OSError:
        flask = False
    if not flask:
        yield
        return
    from flask.cli import ScriptInfo

    root = os.path.dirname(os.path.abspath(script_dir))
    cwd = os.getcwd()
    os.chdir(root)
    sys.path.insert(0, root)
    try:
        app = ScriptInfo(app_import_path=os.environ.get("FLASK_APP"), load_dotenv_defaults=False).load_app()
    finally:
        os.chdir(cwd)
    with app.app_context():
        yield


#: the variables an env.py builds its URL from: all name the offline placeholder here
_URL_VARIABLES = ("DATABASE_URL", "SQLALCHEMY_DATABASE_URI")
_PART_VARIABLES = {"POSTGRES_SERVER": "localhost", "POSTGRES_HOST": "localhost", "POSTGRES_PORT": "5432",
                   "POSTGRES_USER": "offline", "POSTGRES_PASSWORD": "offline", "POSTGRES_DB": "offline"}


def _offline_only() -> None:
    """No database for the old env.py: its URL variables name a placeholder and every connection is refused
    (the parent's environment may hold production's URL under any name)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    for name in _URL_VARIABLES:
        os.environ[name] = OFFLINE_URL
    os.environ.update(_PART_VARIABLES)
    for name in [n for n in os.environ if n.endswith("DATABASE_URL") and n not in _URL_VARIABLES]:
        os.environ[name] = OFFLINE_URL

    def refuse(dialect, _record, _cargs, cparams) -> None:
        database = cparams.get("dbname") or cparams.get("database")
        where = f"{cparams.get('host', '?')}:{cparams.get('port', '?')}/{database}"
        raise RuntimeError(f"env.py tried to connect to {where}; the serving commit's models load offline, "
                           "with no database")

    event.listen(Engine, "do_connect", refuse)


def main(argv: list[str]) -> int:
    ini, out, excluded = argv[1], argv[2], argv[3:]
    # keep the interpreter's own folders (a virtualenv may live inside an excluded tree)
    sys.path[:] = [p for p in sys.path if _under(p, sys.prefix) or _under(p, sys.base_prefix)
                   or not any(_under(p, e) for e in excluded)]
    _offline_only()
    try:
        result = load(ini)
        code = 0
    except BaseException as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if "site-packages" not in f.filename]
        where = f"{frames[-1].filename}, line {frames[-1].lineno}" if frames else ""
        first = (str(exc).strip().splitlines() or [""])[0]
        result, code = {"error": f"{type(exc).__name__}: {first}", "where": where}, 3
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
