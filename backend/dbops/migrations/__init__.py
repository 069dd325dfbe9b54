"""Alembic, through its own API (``alembic.command``, ``ScriptDirectory``, ``MigrationContext``).

One :class:`Project` per ``alembic.ini``.  Commands share the caller's
connection through ``config.attributes["connection"]`` (the alembic cookbook
pattern), so a whole ``inv`` run uses one connection and nothing parses CLI
output.
"""

from __future__ import annotations

import configparser
import io
import logging
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import RevisionContext
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import URL, Connection

from alembic import __version__ as alembic_version
from alembic import command

from ..errors import MigrationError, ModelImportError, MultipleHeads, ReadOnlyViolation, UsageError
from ..redact import reason
from . import compare
from .alembic_compat import READS_TOML, make_config, option, prepend_sys_paths
from .fence import Fence, fenced, project_names, target_variables

log = logging.getLogger(__name__)

#: what marks an env.py that opens an asyncio engine (it needs an async driver in its URL)
_ASYNC_ENV = re.compile(r"\b(async_engine_from_config|create_async_engine|AsyncEngine|AsyncConnection)\b")
#: what marks a Flask-Migrate env.py (it needs the Flask app's context)
_FLASK_ENV = re.compile(r"\bcurrent_app\b")
#: the arguments of ``alembic check`` / ``alembic revision --autogenerate`` for a comparison only
CHECK_ARGS = {"message": None, "autogenerate": True, "sql": False, "head": "head", "splice": False,
              "branch_label": None, "version_path": None, "rev_id": None, "depends_on": None}


@dataclass
class State:
    """Where a database stands against the migration scripts."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: list[Script]
    #: autogenerate diffs between models and the database at head (None: not computed)
    diffs: list | None = None
    diff_error: str | None = None

    @property
    def at_head(self) -> bool:
        return not self.pending and set(self.current) == set(self.heads)

    @property
    def in_sync(self) -> bool:
        return self.at_head and self.diffs == []


def failing_file(exc: BaseException) -> str:
    """The file a SyntaxError or an import-time error of a revision points at."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}, line {exc.lineno}"
    tb, last = exc.__traceback__, None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if "site-packages" not in name and not name.startswith("<"):
            last = tb
        tb = tb.tb_next
    return f"{last.tb_frame.f_code.co_filename}, line {last.tb_lineno}" if last else "(unknown)"


@dataclass
class Project:
    """An Alembic project: its ini file, script directory and env.py."""

    ini: Path

    def __post_init__(self) -> None:
        self.ini = Path(self.ini).resolve()
        if not READS_TOML and self.toml_file:
            raise UsageError(f"{self.toml_file} configures Alembic in [tool.alembic], which needs Alembic 1.16 or "
                             f"newer; this environment has Alembic {alembic_version}",
                             hint="upgrade Alembic (pip install 'alembic>=1.16'), or keep the options in alembic.ini")
        if not self.ini.is_file() and self.toml_file:  # `alembic init -t pyproject` without an ini: Alembic's CLI
            return  # reads [tool.alembic] alone, and so does Config(toml_file=) here
        if not self.ini.is_file():
            raise UsageError(
                f"alembic config {self.ini} not found",
                hint="run from the repository root, or pass --config path/to/alembic.ini",
            )
        parser = configparser.ConfigParser()
        try:
            parser.read(self.ini, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise UsageError(f"alembic config {self.ini} cannot be read: {reason(exc)}",
                             hint="fix the file (it is an INI file: [alembic] then key = value lines)") from None
        if not parser.has_section("alembic"):
            raise UsageError(f"alembic config {self.ini} has no [alembic] section",
                             hint="an alembic.ini starts with [alembic] and sets script_location") from None

    # -- config and scripts -------------------------------------------------
    def config(
        self, *, connection: Connection | None = None, url: URL | None = None, stdout=None, output_buffer=None
    ) -> Config:
        """A fresh alembic Config; ``connection`` goes to env.py via attributes, ``url`` as sqlalchemy.url.

        ``output_buffer`` receives the SQL of ``--sql`` (offline) runs; ``stdout`` alembic's messages.
        """
        ini = str(self.ini) if self.ini.is_file() else None  # None: env.py's `fileConfig(config_file_name)` skips
        cfg = make_config(ini, self.toml_file, stdout=stdout or io.StringIO(),
                     output_buffer=output_buffer)
        if url is None and connection is not None:
            # an env.py that builds its engine from sqlalchemy.url (Alembic's templates) reaches the connection's
            # database, the one the fence lets it reach
            url = connection.engine.url
            url = url.set(drivername="postgresql+asyncpg") if self.env_is_async else url
        if url is not None:
            # ConfigParser interpolation: a literal % must be doubled
            cfg.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
        if connection is not None:
            cfg.attributes["connection"] = connection
        cfg.attributes["skip_logging_config"] = True
        location = option(cfg, "script_location")
        if not location:
            # Flask-Migrate's migrations/alembic.ini names none: the scripts are in the ini's own folder
            cfg.set_main_option("script_location", str(self.ini.parent).replace("%", "%%"))
        elif ":" not in location and not os.path.isabs(location) and (self.ini.parent / location).is_dir():
            # Alembic reads a relative one ("migrations") from the working folder; the project's is beside its ini
            cfg.set_main_option("script_location", str((self.ini.parent / location).resolve()).replace("%", "%%"))
        return cfg

    @cached_property
    def toml_file(self) -> str | None:
        """The ``pyproject.toml`` beside alembic.ini when it has a ``[tool.alembic]`` table
        (``alembic init -t pyproject``)."""
        toml = self.ini.parent / "pyproject.toml"
        try:
            return str(toml) if "[tool.alembic]" in toml.read_text(encoding="utf-8") else None
        except OSError:
            return None

    # -- what env.py needs and may reach ---------------------------------------
    @cached_property
    def env_text(self) -> str:
        try:
            return (Path(self.script.dir) / "env.py").read_text(encoding="utf-8")
        except OSError:
            return ""

    @property
    def env_is_async(self) -> bool:
        """Whether env.py builds an asyncio engine (Alembic's ``async`` template and its kind)."""
        return bool(_ASYNC_ENV.search(self.env_text))

    @cached_property
    def url_variables(self) -> tuple[str, ...]:
        """The project's own URL variables: ``[tool.dbops] url-variables`` in the nearest pyproject.toml."""
        for folder in (self.ini.parent, *self.ini.parent.parents):
            toml = folder / "pyproject.toml"
            if not toml.is_file():
                continue
            try:
                table = tomllib.loads(toml.read_text(encoding="utf-8")).get("tool", {}).get("dbops", {})
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise UsageError(f"{toml} cannot be read: {reason(exc)}", hint="fix the TOML syntax") from None
            names = table.get("url-variables", [])
            if not isinstance(names, list) or not all(isinstance(n, str) and n.isidentifier() for n in names):
                raise UsageError(f"{toml}: [tool.dbops] url-variables must be a list of variable names",
                                 hint='e.g. url-variables = ["APP_DB_URL"]')
            return tuple(names)
        return ()

    @cached_property
    def import_dirs(self) -> tuple[Path, ...]:
        """Where the project's own modules come from: the working folder, alembic.ini's and prepend_sys_path's."""
        dirs = [Path.cwd(), self.ini.parent]
        try:
            extra = prepend_sys_paths(self.config())
        except Exception:  # an unreadable option: Alembic names it when it loads the scripts
            extra = []
        dirs += [Path(p) if os.path.isabs(p) else Path.cwd() / p for p in extra]
        return tuple(dict.fromkeys(d.resolve() for d in dirs))

    @cached_property
    def module_names(self) -> dict[str, Path]:
        """The project's top-level modules and packages (``app``, ``settings`` ...) in its import folders."""
        return project_names(self.import_dirs)

    @contextmanager
    def fence(self, url: URL | None, *, step: str, own: Connection | None = None, offline: bool = False,
              read_only: bool = False, extra: Sequence[URL] = (),
              session: tuple[tuple[str, str], ...] | None = None) -> Iterator[Fence]:
        """Run env.py in here: it reaches ``url`` (and ``extra``) only, or nothing when ``offline``.

        See :mod:`.fence`.  Its variables name ``url`` either way (an offline env.py builds its URL from them).
        ``session``: ``own``'s session settings read once by a caller that runs env.py many times on it.
        """
        allowed = () if offline or url is None else (url, *extra)
        variables = target_variables(url, names=self.url_variables, async_driver=self.env_is_async)
        flask = self.ini.parent if _FLASK_ENV.search(self.env_text) else None
        with fenced(allowed, step=step, read_only=read_only, own=own, variables=variables,
                    modules=self.module_names, flask_root=_flask_root(flask), session=session) as fence:
            yield fence

    @cached_property
    def script(self) -> ScriptDirectory:
        try:
            script = ScriptDirectory.from_config(self.config())
            script.revision_map.heads  # noqa: B018 - loads every revision file now, where a broken one is named
        except CommandError as exc:
            said = str(exc).split("  Please use the 'init' command")[0]  # Alembic's advice names its own init
            raise UsageError(
                f"cannot read the migration scripts of {self.ini}: {said}",
                hint="check script_location in that ini (relative to its folder); a project without migrations "
                     "yet starts with `alembic init migrations` (or `flask db init`)",
            ) from None
        except Exception as exc:  # a revision file that does not compile or fails on import
            where = failing_file(exc)
            raise MigrationError(
                f"the migration file {where} cannot be loaded: {reason(exc, typed=True, unwrap=False)}",
                hint="fix the file (python -m py_compile FILE shows the error); nothing was run",
            ) from None
        return script

    def heads(self) -> tuple[str, ...]:
        return tuple(sorted(self.script.get_heads()))

    def single_head(self) -> str:
        heads = self.heads()
        if len(heads) > 1:
            raise MultipleHeads(list(heads))
        if not heads:
            raise MigrationError(f"{self.ini}: the script directory has no revisions yet")
        return heads[0]

    def revision(self, rev: str) -> Script:
        """A revision from an id, a unique prefix, ``head`` or a branch label; UsageError otherwise."""
        try:
            script = self.script.get_revision(rev)
        except CommandError as exc:
            raise UsageError(
                f"unknown revision {rev!r}: {exc}",
                hint="pass a revision id (or unique prefix) shown by `alembic history`",
            ) from None
        if script is None:
            raise UsageError(f"unknown revision {rev!r}", hint="pass a revision id shown by `alembic history`")
        return script

    def pending(self, current: Sequence[str]) -> list[Script]:
        """Revisions between ``current`` and the heads, oldest first."""
        try:
            revs = list(self.script.iterate_revisions(self.heads(), tuple(current) or "base"))
        except CommandError as exc:
            raise MigrationError(
                f"the database's revision {', '.join(current)} is not in the migration scripts ({exc})",
                hint="the database was migrated from another branch or the file was deleted; "
                "restore the file, or stamp the database to a known revision",
            ) from None
        return list(reversed(revs))

    # -- running against a connection ----------------------------------------
    @staticmethod
    def current(conn: Connection) -> tuple[str, ...]:
        return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Around every run of env.py: failures while loading it (model import errors) become clean errors."""
        try:
            yield
        except ImportError as exc:
            where = failing_file(exc)  # a missing package: the file whose import statement failed
            path = getattr(exc, "path", None) or (where if where != "(unknown)" else None) \
                or getattr(exc, "name", None) or "env.py"
            raise ModelImportError(str(path), str(exc)) from exc
        except CommandError as exc:
            if "does not provide a MetaData" in str(exc):
                raise MigrationError(str(exc), hint="set target_metadata in env.py to your models' MetaData "
                                     "(Base.metadata; docs/env-py.md): dbops compares the models with it") from exc
            raise MigrationError(str(exc)) from exc

    def upgrade(self, conn: Connection, target: str = "head") -> None:
        _own_transactions(conn)
        with self.guard(), self.fence(conn.engine.url, own=conn, step=f"an upgrade to {target}"):
            command.upgrade(self.config(connection=conn), target)

    def downgrade(self, conn: Connection, target: str) -> None:
        _own_transactions(conn)
        with self.guard(), self.fence(conn.engine.url, own=conn, step=f"a downgrade to {target}"):
            command.downgrade(self.config(connection=conn), target)

    def merge(self, heads: Sequence[str], message: str) -> Script:
        """``alembic merge -m MESSAGE HEAD...``: a merge revision joining ``heads`` (its file is written; env.py
        does not run)."""
        with self.guard(), redirect_stdout(io.StringIO()):
            script = command.merge(self.config(), revisions=list(heads), message=message)
        self.__dict__.pop("script", None)  # the scripts changed on disk
        return script

    def load_env(self, url: URL) -> None:
        """Run env.py offline on an empty range (no revision runs, nothing connects): the models import.

        Raises ModelImportError (an import failed) or MigrationError naming the file that failed.
        """
        head = self.single_head()
        try:
            with self.guard(), self.fence(url, offline=True, step="loading the models (offline, no database)"):
                command.upgrade(self.config(url=url, output_buffer=io.StringIO()), f"{head}:{head}", sql=True)
        except (ModelImportError, MigrationError):
            raise
        except Exception as exc:  # a model module that imports but fails (NameError, a mapper error, ...)
            raise MigrationError(
                f"env.py could not load the models ({failing_file(exc)}): {reason(exc, typed=True, unwrap=False)}",
                hint="fix the models module; nothing was changed",
            ) from None

    def upgrade_sql(self, url: URL, start: str | None, end: str = "head", *, output: io.StringIO | None = None) -> str:
        """The SQL an upgrade would run (``alembic upgrade start:end --sql``), without connecting.

        ``output``: the buffer alembic writes to (the dry run's records which operation wrote each statement).
        """
        out = io.StringIO() if output is None else output
        target = f"{start}:{end}" if start else end
        with self.guard(), self.fence(url, offline=True, step="offline SQL (--sql, no database)"):
            command.upgrade(self.config(url=url, output_buffer=out), target, sql=True)
        return out.getvalue()

    def diffs(self, conn: Connection) -> list:
        """Autogenerate's diffs between the models and the database (empty: in sync); commits nothing.

        ``alembic check``'s comparison, so the project's own env.py (models, compare
        options, include_object hooks) decides what counts.
        """
        return self._compare(conn, upgrade=False)

    def _compare(self, conn: Connection, *, upgrade: bool) -> list:
        """One read-only env.py run: (with ``upgrade``) the pending revisions, then the comparison at the heads.

        One run, so an env.py that opens its own connection compares on the connection that ran the
        upgrade (whose transaction is never committed: the fence is read-only).
        """
        script = self.script
        heads = set(script.get_heads())
        config = self.config(connection=conn)
        revision_context = RevisionContext(config, script, dict(CHECK_ARGS))

        def compare_at_heads(ctx, step, heads: set, run_args) -> None:  # after each step: at the heads, compare
            if heads == set(script.get_heads()):
                compare.run_autogenerate(revision_context, tuple(heads), ctx)

        def fn(rev, context):
            if upgrade and set(context.get_current_heads()) != heads:
                context.on_version_apply_callbacks = (*context.on_version_apply_callbacks, compare_at_heads)
                return script._upgrade_revs("heads", rev)  # what `alembic upgrade heads` runs
            compare.run_autogenerate(revision_context, rev, context)
            return []

        step = "a comparison of models and database" + (" (pending revisions applied, then rolled back)"
                                                         if upgrade else "")
        with self.guard(), self.fence(conn.engine.url, own=conn, read_only=True, step=step), \
                EnvironmentContext(config, script, fn=fn, as_sql=False, template_args=revision_context.template_args,
                                   revision_context=revision_context):
            script.run_env()
        if not revision_context.generated_revisions:
            raise MigrationError("env.py ran no migration context: the models were not compared",
                                 hint="env.py must call context.run_migrations() (Alembic's templates do)")
        generated = revision_context.generated_revisions[-1]
        return [diff for ops in generated.upgrade_ops_list for diff in ops.as_diffs()]

    def state(self, conn: Connection, *, with_diffs: bool = True) -> State:
        """Current revision, heads, pending revisions and (at head) model/DB drift; changes nothing.

        With pending revisions, drift is computed by upgrading inside a
        transaction that is rolled back (read-only: see :mod:`.fence`).
        """
        current = self.current(conn)
        heads = self.heads()
        pending = self.pending(current)
        state = State(current=current, heads=heads, pending=pending)
        if not with_diffs or len(heads) > 1:
            return state
        if conn.in_transaction():
            conn.commit()
        trans = conn.begin()
        try:
            state.diffs = self._compare(conn, upgrade=bool(pending))
        except ReadOnlyViolation as exc:  # a pending revision needs an autocommit block: not run read-only
            state.diff_error = exc.message
        except (MigrationError, sa.exc.SQLAlchemyError) as exc:
            state.diff_error = reason(exc)
        finally:
            trans.rollback()
        return state

    def autogenerate(self, conn: Connection, message: str, *,
                     rewriters: Sequence[Callable] = ()) -> Script | None:
        """Write a new revision from the model diffs; None (and no file) when there is nothing to write.

        ``alembic revision --autogenerate`` with dbops' comparison (:mod:`.compare`).  ``rewriters``:
        ``process_revision_directives`` hooks (an alembic ``Rewriter`` is one), run in order on the
        directives before the empty-revision check; env.py's own hook runs first, as in Alembic.
        """
        written: list[bool] = []

        def skip_empty(context, revision, directives) -> None:
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
            else:
                written.append(True)

        def directives_chain(context, revision, directives) -> None:
            for hook in (*rewriters, skip_empty):
                if directives:
                    hook(context, revision, directives)

        config, script = self.config(connection=conn), self.script
        revision_context = RevisionContext(config, script, {**CHECK_ARGS, "message": message},
                                           process_revision_directives=directives_chain)

        def fn(rev, context):  # what `alembic revision --autogenerate` runs, with dbops' comparison
            compare.run_autogenerate(revision_context, rev, context)
            return []

        with self.guard(), redirect_stdout(io.StringIO()), \
                self.fence(conn.engine.url, own=conn, read_only=True, step="autogenerate (writes a file only)"), \
                EnvironmentContext(config, script, fn=fn, as_sql=False, template_args=revision_context.template_args,
                                   revision_context=revision_context):
            script.run_env()
        with self.guard(), redirect_stdout(io.StringIO()):  # Alembic's "Generating …/x.py ... done": sync says it
            result = [s for s in revision_context.generate_scripts() if s is not None]
        if not written or not result:
            return None
        result = result[0]
        # the scripts changed on disk: forget the cached directory
        self.__dict__.pop("script", None)
        return result


def describe_diff(diff) -> str:
    """One line for an autogenerate diff tuple, e.g. ``add column users.phone``."""
    if isinstance(diff, list):  # column modifications come grouped
        parts = [describe_diff(d) for d in diff]
        return "; ".join(parts)
    own = compare.describe(diff)  # enum types, alembic_utils entities
    if own is not None:
        return own
    kind = diff[0]
    if kind in ("add_table", "remove_table"):
        return f"{'add' if kind == 'add_table' else 'drop'} table {diff[1].name}"
    if kind in ("add_column", "remove_column"):
        return f"{'add' if kind == 'add_column' else 'drop'} column {diff[2]}.{diff[3].name}"
    if kind in ("add_index", "remove_index"):
        idx = diff[1]
        return f"{'add' if kind == 'add_index' else 'drop'} index {idx.name} on {idx.table.name}"
    if kind in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        con = diff[1]
        verb = "add" if kind.startswith("add") else "drop"
        return f"{verb} constraint {con.name or type(con).__name__} on {con.table.name}"
    if kind.startswith("modify_"):
        _, _schema, table, column, _info, old, new = diff
        what = {"modify_default": "server default"}.get(kind) or kind.removeprefix("modify_").replace("_", " ")
        return f"alter {table}.{column} {what}: {_shown(old)} -> {_shown(new)}"
    return str(kind).replace("_", " ")


def _shown(value) -> str:
    """A compared value as a person reads it: a default's SQL, an identity's options, a type."""
    arg = getattr(value, "arg", value)  # a server default's clause
    if isinstance(arg, sa.TextClause):
        return arg.text
    if isinstance(arg, sa.Identity):
        options = ("always", "start", "increment", "minvalue", "maxvalue", "cycle", "cache")
        return "identity(" + ", ".join(f"{k}={getattr(arg, k)}" for k in options
                                       if getattr(arg, k, None) not in (None, False)) + ")"
    return str(arg)


def message_for(diffs: list) -> str:
    """A revision message derived from the diffs, e.g. ``add users.phone``."""
    words = []
    for diff in diffs:
        items = diff if isinstance(diff, list) else [diff]
        for d in items:
            kind = d[0]
            if (own := compare.words(d)) is not None:
                words.append(own)
            elif kind in ("add_column", "remove_column"):
                words.append(f"{'add' if kind == 'add_column' else 'drop'} {d[2]}.{d[3].name}")
            elif kind in ("add_table", "remove_table"):
                words.append(f"{'add' if kind == 'add_table' else 'drop'} table {d[1].name}")
            elif kind.startswith("modify_"):
                words.append(f"alter {d[2]}.{d[3]}")
            elif kind in ("add_index", "remove_index"):
                words.append(f"{'add' if kind == 'add_index' else 'drop'} index {d[1].name}")
            elif kind in ("add_constraint", "remove_constraint") and d[1].name:
                words.append(f"{'add' if kind == 'add_constraint' else 'drop'} {d[1].name}")
            else:
                words.append(kind.replace("_", " "))
    unique = list(dict.fromkeys(words))
    if not unique:
        return "schema change"
    if len(unique) > 3:
        return ", ".join(unique[:3]) + f" and {len(unique) - 3} more"
    return ", ".join(unique)



def _own_transactions(conn: Connection) -> None:
    """Before env.py migrates on ``conn``: end what the caller left open (a snapshot's reads, a SET), committed.

    env.py then begins its own transactions (one per revision with ``transaction_per_migration``), so a
    revision's ``autocommit_block()`` (``ALTER TYPE … ADD VALUE``, ``CREATE INDEX CONCURRENTLY``) can commit
    them; inside a transaction Alembic does not own it cannot.  Every caller commits right after anyway.
    """
    # a caller's `with engine.begin()` block owns its transaction (a library caller, the tests): it stays, and
    # env.py runs inside it as before (private: SQLAlchemy keeps no public "managed by a with block" flag)
    if conn.in_transaction() and getattr(conn, "_trans_context_manager", None) is None:
        conn.commit()


def _flask_root(folder: Path | None) -> Path | None:
    """Where Flask looks for the app of a Flask-Migrate project (``migrations/`` sits in the app's folder)."""
    if folder is None:
        return None
    return Path.cwd() if (Path.cwd() / "app.py").is_file() or (Path.cwd() / "wsgi.py").is_file() \
        or os.environ.get("FLASK_APP") else folder.parent
