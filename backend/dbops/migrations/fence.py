"""The fence around a project's env.py: it reaches only the database dbops chose, and a read-only run commits nothing.

Most projects' env.py builds its own engine from the application's settings
and never looks at the connection dbops hands it in
``config.attributes["connection"]``.  While a :func:`fenced` block runs env.py:

- **Its variables name the step's database.**  ``DATABASE_URL``,
  ``SQLALCHEMY_DATABASE_URI``, the ``POSTGRES_SERVER/HOST/PORT/USER/PASSWORD/DB``
  family (FastAPI's template), libpq's ``PGSSL*`` and the names a project lists
  in ``pyproject.toml`` (``[tool.dbops] url-variables``) are set to the target,
  and the project's modules imported under other values are evicted, so a
  setting read at import time is read again.
- **Every connection is checked before it opens.**  SQLAlchemy's ``do_connect``
  event (every dialect: psycopg2, psycopg 3, asyncpg; sync or async engines)
  compares host, port and database with the target's; a connection that gets
  past it (an engine built with ``creator=``, a host alias) is checked at
  ``engine_connect`` against the server dbops' own connection reaches
  (``current_database()``, the postmaster's start time, the port).  A mismatch
  is :class:`~dbops.errors.ForeignDatabase`: nothing ran on that database.
  Offline (``--sql``) runs allow no connection at all.
- **Read-only runs commit nothing.**  On every connection env.py opens, the
  dialect's commit does nothing (the transaction stays open and is rolled back
  when the connection closes or returns to its pool), and a switch to
  ``AUTOCOMMIT`` (``autocommit_block()``) is refused.
- **Its log lines stay out of dbops' output** (``DBOPS_DEBUG=1`` keeps them).
- **A Flask-Migrate env.py** (it reads ``current_app``) gets its application,
  built inside the fence by Flask's own discovery (``FLASK_APP``, ``app.py``,
  ``wsgi.py``), with an app context pushed.

Only connections opened on the thread that runs env.py are checked: dbops' own
threads (the rehearsal's observer) are not env.py's.
"""

from __future__ import annotations

import getpass
import importlib
import logging
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine

from ..errors import ForeignDatabase, ReadOnlyViolation, UsageError
from ..redact import reason

#: variables that hold a whole database URL
URL_VARIABLES = ("DATABASE_URL", "SQLALCHEMY_DATABASE_URI")
#: variables that hold one part of it (FastAPI's full-stack template and its kind), and which part
PART_VARIABLES = {
    "POSTGRES_SERVER": "host", "POSTGRES_HOST": "host", "POSTGRES_PORT": "port", "POSTGRES_USER": "username",
    "POSTGRES_PASSWORD": "password", "POSTGRES_DB": "database",
}
#: libpq's variables for TLS, from the target URL's query (drivers that read them: psycopg2, psycopg 3, asyncpg)
SSL_VARIABLES = {"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT",
                 "sslkey": "PGSSLKEY"}
#: hosts that are this machine
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]"}
#: the tenant's schema of a schema-per-tenant target (dbops fleet), for env.py's version_table_schema; unset
#: otherwise.  The target's URL carries ``options=-csearch_path=<schema>``: every connection finds that schema first
SCHEMA_VARIABLE = "DBOPS_SCHEMA"
#: what dbops sets on its own connection that must hold on env.py's too (migrations.upgrade.set_timeouts)
SESSION_SETTINGS = ("lock_timeout", "statement_timeout", "client_connection_check_interval")
_SAFE_VALUE = re.compile(r"[0-9A-Za-z]+")
#: who a connection reaches: the database, the server's start, its port
_IDENTITY_SQL = "SELECT current_database(), pg_postmaster_start_time()::text, current_setting('port')"


@dataclass(frozen=True)
class Endpoint:
    """Where a connection goes: host (a name, an address or a socket folder), port, database, user."""

    host: str
    port: int
    database: str
    user: str = ""

    @classmethod
    def of_url(cls, url: URL) -> Endpoint:
        return cls.resolve(host=url.host, port=url.port, database=url.database, user=url.username,
                           query=dict(url.query))

    @classmethod
    def resolve(cls, *, host=None, port=None, database=None, user=None, query: Mapping | None = None) -> Endpoint:
        """libpq's defaults filled in: ``PGHOST`` / the socket, ``PGPORT`` / 5432, the user's name as database."""
        query = query or {}
        host = host or query.get("host") or os.environ.get("PGHOST") or "/var/run/postgresql"
        if isinstance(host, (list, tuple)):
            host = host[0]
        port = port or query.get("port") or os.environ.get("PGPORT") or 5432
        user = user or query.get("user") or os.environ.get("PGUSER") or _os_user()
        database = database or query.get("dbname") or os.environ.get("PGDATABASE") or user
        try:
            port = int(port if not isinstance(port, (list, tuple)) else port[0])
        except (TypeError, ValueError):
            port = 5432
        return cls(str(host), port, str(database), str(user))

    @property
    def local(self) -> bool:
        return self.host in _LOOPBACK or self.host.startswith("/")

    def same_place(self, other: Endpoint) -> bool:
        """The same database on the same server, as far as the address tells (loopback and socket are one place)."""
        if (self.port, self.database) != (other.port, other.database):
            return False
        return self.host == other.host or (self.local and other.local)

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        where = f"{host}:{self.port}/{self.database}"
        return f"{where} (user {self.user})" if self.user else where


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "postgres"


def _endpoint_of_params(cparams: Mapping) -> Endpoint:
    """The endpoint of a driver's connect arguments (psycopg2 / psycopg: ``dbname``; asyncpg: ``database``)."""
    dsn = cparams.get("dsn") or cparams.get("conninfo")
    parsed: dict = {}
    if dsn:
        try:  # a libpq conninfo or URL passed whole: libpq's own parser reads it
            import psycopg2.extensions  # reason: only for the rare engine that hands the driver a DSN string

            parsed = psycopg2.extensions.parse_dsn(dsn)
        except Exception:  # not libpq syntax: the explicit arguments below still count
            parsed = {}
    return Endpoint.resolve(
        host=cparams.get("host") or parsed.get("host"),
        port=cparams.get("port") or parsed.get("port"),
        database=cparams.get("dbname") or cparams.get("database") or parsed.get("dbname"),
        user=cparams.get("user") or parsed.get("user"),
    )


@dataclass
class Fence:
    """One fenced stretch of env.py runs: the databases allowed, and whether it may commit."""

    #: the databases env.py may reach (empty: none, an offline run)
    allowed: tuple[URL, ...]
    #: what dbops is doing, for messages (``inv status``, ``the rehearsal`` ...)
    step: str
    read_only: bool = False
    #: the identity (database, postmaster start, port) of dbops' own connection to allowed[0], when known
    identity: tuple | None = None
    #: the variables this fence set, for messages
    variables: tuple[str, ...] = ()
    #: dbops' session settings (timeouts, the dead-client check) on its own connection: env.py's get them too
    session: tuple[tuple[str, str], ...] = ()
    thread: int = field(default_factory=threading.get_ident)
    _muted: list = field(default_factory=list)

    @property
    def endpoints(self) -> list[Endpoint]:
        return [Endpoint.of_url(u) for u in self.allowed]

    def meant(self) -> str:
        return ", ".join(e.describe() for e in self.endpoints)

    def refuse(self, tried: Endpoint | str, how: str = "") -> ForeignDatabase:
        text = tried.describe() if isinstance(tried, Endpoint) else tried
        return ForeignDatabase(text, self.meant(), self.step, how=how, variables=self.variables)

    # -- the events --------------------------------------------------------
    def on_do_connect(self, dialect, _record, _cargs, cparams) -> None:
        if threading.get_ident() != self.thread:
            return
        tried = _endpoint_of_params(cparams)
        if not any(tried.same_place(e) for e in self.endpoints):
            raise self.refuse(tried, f"driver: {dialect.name}+{dialect.driver}")

    def on_engine_connect(self, conn: Connection) -> None:
        if threading.get_ident() != self.thread:
            return
        if self.read_only:
            self._mute_commit(conn.dialect)
            level = conn.get_execution_options().get("isolation_level") or getattr(conn.dialect, "isolation_level",
                                                                                   None)
            if level == "AUTOCOMMIT":
                raise ReadOnlyViolation("env.py opened a connection in AUTOCOMMIT mode", self.step)
        if self.identity is None:
            return
        info = conn.connection.info
        key = "dbops_fence_identity"
        if key not in info:
            info[key] = _identity(conn.connection)
        if self.session and info.get("dbops_fence_session") != self.session:
            _apply_session(conn.connection, self.session)  # dbops' timeouts hold on env.py's connection too
            info["dbops_fence_session"] = self.session
        database, started, port = info[key]
        if (started, port) != tuple(self.identity[1:]) or database not in {e.database for e in self.endpoints}:
            raise self.refuse(f"database {database} on the server at port {port}",
                              "env.py's engine reached another server or database than dbops' own connection")

    def on_execution_options(self, conn: Connection, opts: Mapping) -> None:
        if threading.get_ident() == self.thread and self.read_only and opts.get("isolation_level") == "AUTOCOMMIT":
            raise ReadOnlyViolation("a revision asked for an autocommit block (statements outside a transaction)",
                                    self.step)

    def _mute_commit(self, dialect) -> None:
        """This dialect's commits do nothing while the fence stands; the open transaction is rolled back later."""
        if "do_commit" not in vars(dialect):
            dialect.do_commit = _no_commit
            self._muted.append(dialect)

    def unmute(self) -> None:
        for dialect in self._muted:
            vars(dialect).pop("do_commit", None)
        self._muted.clear()


def _no_commit(_dbapi_connection) -> None:
    """A read-only run's commit: nothing; the transaction is rolled back when the connection closes."""


def _identity(dbapi_connection) -> tuple:
    """(database, postmaster start, port) read on a raw driver connection, leaving no transaction open."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(_IDENTITY_SQL)
        row = tuple(cursor.fetchone())
    finally:
        cursor.close()
    dbapi_connection.rollback()
    return row


def _apply_session(dbapi_connection, settings: tuple[tuple[str, str], ...]) -> None:
    """``set_config(name, value, false)`` for each setting, committed at once (a session setting, no data)."""
    cursor = dbapi_connection.cursor()
    try:
        for name, value in settings:
            cursor.execute(f"SELECT set_config('{name}', '{value}', false)")
    finally:
        cursor.close()
    dbapi_connection.commit()


def session_settings(conn: Connection) -> tuple[tuple[str, str], ...]:
    """The settings of dbops' own connection that env.py's connections must share (unset ones left out)."""
    rows = conn.execute(sa.text(
        "SELECT name, current_setting(name, true) FROM unnest(CAST(:names AS text[])) AS name"),
        {"names": list(SESSION_SETTINGS)}).all()
    return tuple((name, value) for name, value in rows if value is not None and _SAFE_VALUE.fullmatch(value))


def identity(conn: Connection) -> tuple:
    """Who dbops' own connection reaches (it may be inside a transaction: the query is read-only)."""
    return tuple(conn.execute(sa.text(_IDENTITY_SQL)).one())


# -- the variables env.py reads ---------------------------------------------------------------------------------


def target_variables(url: URL | None, *, names: Sequence[str] = (), async_driver: bool = False,
                     environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """What each variable becomes for env.py's run (None: removed).

    A URL variable keeps the driver its current value names (``postgresql+psycopg://`` stays psycopg);
    an async env.py gets ``postgresql+asyncpg``.  ``names``: the project's own URL variables.
    """
    environ = os.environ if environ is None else environ
    if url is None:
        return {}
    values: dict[str, str | None] = {}
    ssl = {k: str(v) for k, v in url.query.items() if k in SSL_VARIABLES}
    plain = url.set(drivername="postgresql")
    # dbops' own per-environment variables (PROD_DATABASE_URL ...) too: env.py may read the one it knows
    scoped = [n for n in environ if n.endswith("_DATABASE_URL") and n.isupper()]
    for name in dict.fromkeys((*URL_VARIABLES, *names, *scoped)):
        driver = "postgresql+asyncpg" if async_driver else _driver_of(environ.get(name))
        chosen = plain.set(drivername=driver)
        if driver.endswith("asyncpg"):  # asyncpg takes TLS from PGSSL*, not from libpq's query words
            chosen = chosen.set(query={k: v for k, v in url.query.items() if k not in SSL_VARIABLES})
        values[name] = chosen.render_as_string(hide_password=False)
    for name, part in PART_VARIABLES.items():
        value = getattr(url, part)
        values[name] = None if value is None else str(value)
    for key, name in SSL_VARIABLES.items():
        values[name] = ssl.get(key)
    values[SCHEMA_VARIABLE] = target_schema(url)
    return values


def target_schema(url: URL) -> str | None:
    """The schema a schema-per-tenant target names: its URL's ``options=-csearch_path=<schema>`` (dbops fleet)."""
    options = url.query.get("options")
    options = options[0] if isinstance(options, (list, tuple)) else options
    found = re.search(r"-c\s*search_path=([A-Za-z_][A-Za-z0-9_]*)", options or "")
    return found.group(1) if found else None


def _driver_of(value: str | None) -> str:
    scheme = (value or "").partition("://")[0] if value and "://" in value else ""
    if scheme.startswith(("postgresql+", "postgres+")):
        return "postgresql+" + scheme.partition("+")[2]
    return "postgresql"


@contextmanager
def variables_set(values: Mapping[str, str | None]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- the project's modules ---------------------------------------------------------------------------------------


def project_names(import_dirs: Sequence[Path]) -> dict[str, Path]:
    """Top-level modules and packages in the project's import folders: name -> its file or folder."""
    names: dict[str, Path] = {}
    for folder in import_dirs:
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            if entry.suffix == ".py" and entry.is_file():
                names.setdefault(entry.stem, entry)
            elif entry.is_dir() and (entry / "__init__.py").is_file():
                names.setdefault(entry.name, entry)
    names.pop("dbops", None)  # the toolkit itself (its own repository is a project too)
    return names


def evict(names: Mapping[str, Path], *, shadows_only: bool = False) -> list[str]:
    """Forget the project's modules, so the next import runs their code again under the current variables.

    A module of the same top-level name loaded from elsewhere (another ``app``) always goes: it shadows the
    project's.  ``shadows_only``: only those (the project's own were imported under the same variables).
    Installed packages (``site-packages``) stay.
    """
    gone = []
    for name, module in list(sys.modules.items()):
        top = name.partition(".")[0]
        if top not in names:
            continue
        file = getattr(module, "__file__", None) or ""
        if "site-packages" in file or "dist-packages" in file:
            continue
        own = names[top]
        if shadows_only and file and (file == str(own) or file.startswith(str(own) + os.sep)):
            continue
        del sys.modules[name]
        gone.append(name)
    if gone:
        _forget_mappings(set(gone))
    # a relative sys.path entry ("." from prepend_sys_path) has a finder bound to the folder it was first
    # used from: forget those, so the modules come from the working folder of now
    for entry in [p for p in sys.path_importer_cache if not os.path.isabs(p)]:
        del sys.path_importer_cache[entry]
    importlib.invalidate_caches()
    return gone


def _forget_mappings(modules: set[str]) -> None:
    """Tables and mappers of evicted modules leave shared registries (SQLModel keeps one for every model),
    so the models can be declared again."""
    try:
        from sqlalchemy.orm import mapperlib  # reason: registries exist only once the ORM is in use
    except ImportError:  # pragma: no cover - the ORM ships with SQLAlchemy
        return
    for registry in list(mapperlib._mapper_registries):  # the ORM keeps its registries there
        mappers = list(registry.mappers)
        ours = [m for m in mappers if m.class_.__module__ in modules]
        if not ours:
            continue
        for mapper in ours:
            for table in mapper.tables:
                if table.metadata is not None and table.key in table.metadata.tables:
                    table.metadata.remove(table)
        if len(ours) == len(mappers):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                registry.dispose()


# -- env.py's logging --------------------------------------------------------------------------------------------


@contextmanager
def quiet_logging() -> Iterator[None]:
    """env.py's log lines stay out of dbops' output, and its ``fileConfig`` is undone afterwards.

    Alembic's INFO lines ("Running upgrade ...") are dropped (``DBOPS_DEBUG=1`` keeps them); the root logger's
    handlers and level and every logger's ``disabled`` flag (``fileConfig`` disables the loggers that exist)
    are put back.
    """
    manager = logging.root.manager
    saved_disable, saved_handlers, saved_level = manager.disable, list(logging.root.handlers), logging.root.level
    saved_disabled = {name: lg.disabled for name, lg in manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    if os.environ.get("DBOPS_DEBUG", "") in ("", "0"):
        logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(saved_disable)
        logging.root.handlers[:] = saved_handlers
        logging.root.setLevel(saved_level)
        for name, disabled in saved_disabled.items():
            logging.getLogger(name).disabled = disabled


# -- Flask-Migrate ---------------------------------------------------------------------------------------------


@contextmanager
def flask_app_context(root: Path) -> Iterator[None]:
    """The project's Flask app, found as ``flask`` finds it, with an app context pushed (Flask-Migrate's env.py)."""
    try:
        from flask.cli import NoAppException, ScriptInfo  # reason: only a Flask project has Flask
    except ImportError:
        raise UsageError("env.py uses Flask's current_app, but Flask is not installed in this environment",
                         hint="install the project's requirements (pip install -r requirements.txt) and run "
                         "again") from None
    where = os.environ.get("FLASK_APP")
    cwd = os.getcwd()
    try:
        os.chdir(root)
        try:
            app = ScriptInfo(app_import_path=where, load_dotenv_defaults=False).load_app()
        except NoAppException as exc:
            raise UsageError(f"env.py uses Flask's current_app, and the Flask app could not be loaded: {exc}",
                             details=f"checked: FLASK_APP ({where or 'not set'}), then app.py and wsgi.py in {root}",
                             hint="set FLASK_APP to the app or its factory (e.g. FLASK_APP=blog:create_app), as "
                             "for `flask db upgrade`") from None
        except Exception as exc:  # the app's own code failed while it was built
            raise UsageError(f"the Flask app ({where or 'app.py / wsgi.py'}) failed while it was built: "
                             f"{reason(exc, typed=True, unwrap=False)}",
                             hint="fix the app factory; `flask --app ... routes` shows the same error") from None
    finally:
        os.chdir(cwd)
    with app.app_context():
        yield


# -- the fence ---------------------------------------------------------------------------------------------------

_state = threading.local()
#: the variables the project's modules were last imported under (None: not under a fence)
_imported_under: dict[str, tuple | None] = {"signature": None}


def active() -> Fence | None:
    return getattr(_state, "fence", None)


@contextmanager
def fenced(
    allowed: Sequence[URL],
    *,
    step: str,
    read_only: bool = False,
    own: Connection | None = None,
    variables: Mapping[str, str | None] | None = None,
    modules: Mapping[str, Path] | None = None,
    flask_root: Path | None = None,
    session: tuple[tuple[str, str], ...] | None = None,
) -> Iterator[Fence]:
    """Run env.py inside this block: it reaches ``allowed`` only (none: offline), read-only if asked.

    ``own``: dbops' connection to ``allowed[0]``, whose server identity env.py's connections must match.
    ``variables``: the values env.py's variables take (see :func:`target_variables`).  ``modules``: the
    project's top-level modules (:func:`project_names`), evicted on entry when they were imported under
    other values.  ``flask_root``: push the Flask app's context (found from this folder).  ``session``: ``own``'s
    settings as :func:`session_settings` read them earlier (a caller running env.py many times on one
    connection reads them once; default: read now).  A nested block
    for the same databases (and no looser) reuses the outer fence.
    """
    outer = active()
    if outer is not None and outer.allowed == tuple(allowed) and (outer.read_only or not read_only):
        yield outer
        return
    variables = dict(variables or {})
    own_identity, session = _own_identity(own, session) if own is not None and allowed else (None, ())
    fence = Fence(tuple(allowed), step, read_only, identity=own_identity, session=session,
                  variables=tuple(n for n, v in variables.items() if v is not None and not n.startswith("PGSSL")))
    names = dict(modules or {})
    signature = tuple(sorted(variables.items(), key=lambda kv: kv[0]))
    listeners = [(Engine, "do_connect", fence.on_do_connect), (Engine, "engine_connect", fence.on_engine_connect),
                 (Engine, "set_connection_execution_options", fence.on_execution_options)]
    with ExitStack() as stack:
        stack.enter_context(quiet_logging())
        stack.enter_context(variables_set(variables))
        evict(names, shadows_only=_imported_under["signature"] == signature)
        _imported_under["signature"] = signature  # what is imported from here on
        for target, name, fn in listeners:
            event.listen(target, name, fn)
            stack.callback(event.remove, target, name, fn)
        stack.callback(fence.unmute)
        _state.fence = fence
        stack.callback(setattr, _state, "fence", outer)
        if flask_root is not None:
            stack.enter_context(flask_app_context(flask_root))
        yield fence


def _own_identity(own: Connection, settings: tuple[tuple[str, str], ...] | None = None,
                  ) -> tuple[tuple, tuple[tuple[str, str], ...]]:
    """The identity (kept with the connection) and session settings (``settings`` when given, else read now)
    of dbops' own connection, leaving its transaction state as it was."""
    key = "dbops_fence_identity"
    if key in own.info and settings is not None:
        return tuple(own.info[key]), settings
    began = not own.in_transaction()
    if key not in own.info:
        own.info[key] = identity(own)
    if settings is None:
        settings = session_settings(own)
    if began:
        own.rollback()
    return tuple(own.info[key]), settings
