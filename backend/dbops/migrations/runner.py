"""Running single migration steps through the project's own env.py, each as its own run.

Every step (one revision up, or down) is one run of env.py in a new
:class:`~alembic.runtime.environment.EnvironmentContext`: a new
``MigrationContext``, so SQLAlchemy's per-context DDL memo (which remembers the
enum types it created) starts empty, exactly as in a separate ``alembic
upgrade`` / ``alembic downgrade`` process.  The runner keeps one
:class:`~alembic.script.ScriptDirectory` for the whole run (the revision
files are read once) and hands env.py exactly the step to run (Alembic's own
``RevisionStep``, which keeps ``alembic_version`` right for branches and
merges), the way ``command.upgrade`` does.

env.py gets the database in all three usual ways: our connection in
``config.attributes["connection"]``, the ``sqlalchemy.url`` option and the
``DATABASE_URL`` environment variable.  For an async env.py (it builds an
async engine) the URLs name ``postgresql+asyncpg``.  Nothing here reads the
schema on env.py's connection: the stairway reads it on its own psycopg2
connection after each step, so whatever driver env.py uses is fine.
"""

from __future__ import annotations

import gc
import importlib.util
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path
from types import CodeType

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import RevisionStep
from alembic.script import Script, ScriptDirectory
from sqlalchemy.engine import URL, Connection

from . import Project, compare
from .fence import quiet_logging, session_settings


def env_is_async(project: Project) -> bool:
    """Whether the project's env.py builds an asyncio engine (Alembic's ``async`` template and its kind)."""
    return project.env_is_async


def env_url(project: Project, url: URL) -> URL:
    """The URL env.py is offered: ours (psycopg2), or the asyncpg one for an async env.py."""
    return url.set(drivername="postgresql+asyncpg") if project.env_is_async else url


class StepRunner:
    """Upgrade or downgrade revisions on the database at ``url``; ``conn`` is offered to env.py."""

    def __init__(self, project: Project, url: URL, conn: Connection, *, sections: dict[str, URL] | None = None):
        self.project = project
        self.url = url
        self.conn = conn
        self.script = project.script
        self.config = project.config(connection=conn, url=env_url(project, url))
        self.sections = tuple((sections or {}).values())
        #: dbops' timeouts on ``conn``, which env.py's own connections get too: read once for every step, as
        #: dbops set them (a revision's own ``SET lock_timeout`` on ``conn`` does not become env.py's)
        began = not conn.in_transaction()
        self.session = session_settings(conn)
        if began:
            conn.rollback()
        # a multi-database project: each engine's section gets the URL of its own throwaway database
        for name, section_url in (sections or {}).items():
            rendered = env_url(project, section_url).render_as_string(hide_password=False).replace("%", "%%")
            self.config.set_section_option(name, "sqlalchemy.url", rendered)

    def step(self, script: Script, *, upgrade: bool, gate: Callable[[], None] | None = None) -> None:
        """One step in one env.py run: exactly what ``alembic upgrade <rev>`` / ``downgrade <rev>-1`` does.

        ``gate`` is called once, when Alembic asks for the steps to run:
        after env.py connected, configured its context and read the current
        heads, before any revision's operation.  The stairway waits there for
        the snapshot of the previous step (read meanwhile on its own
        connection), and may stop the step by raising.
        """
        self.run_plan([(script, upgrade)], gate=gate)

    def run(self, scripts: Sequence[Script], *, upgrade: bool) -> None:
        """Apply (or revert) exactly these revisions, in this order, in one env.py run (``alembic upgrade X``)."""
        self.run_plan([(s, upgrade) for s in scripts])

    def run_plan(self, plan: Sequence[tuple[Script, bool]], *, gate: Callable[[], None] | None = None) -> None:
        """Run ``(revision, is_upgrade)`` steps in one env.py run (one migration context).

        ``gate``: see :meth:`step`.
        """
        steps = [RevisionStep(self.script.revision_map, s, up) for s, up in plan]
        if not steps:
            return
        if self.conn.in_transaction():
            self.conn.commit()
        last, upgrade = plan[-1]
        destination = last.revision if upgrade else (last.down_revision or "base")

        pending = [gate] if gate is not None else []

        def fn(_rev, _context):
            while pending:  # once per run, at the first call (a multidb env.py calls this once per engine)
                pending.pop()()
            return list(steps)

        self._run_env(fn, destination if isinstance(destination, str) else destination[0])

    def check_models(self) -> tuple[list, object]:
        """What ``alembic check`` finds, and the ``target_metadata`` env.py configures: one env.py run.

        Exactly ``alembic.command.check`` (autogenerate's ``RevisionContext``
        in an ``EnvironmentContext``), on the run's own ScriptDirectory
        instead of a new one that would load every revision file again.
        Returns (autogenerate's diffs, the metadata); raises what
        ``command.check`` raises when env.py gives no metadata or the
        database is not at the heads.
        """
        from alembic.autogenerate import RevisionContext

        args = {"message": None, "autogenerate": True, "sql": False, "head": "head", "splice": False,
                "branch_label": None, "version_path": None, "rev_id": None, "depends_on": None}
        revision_context = RevisionContext(self.config, self.script, args)
        seen: list = []

        def fn(rev, context):
            seen.append(context.opts.get("target_metadata"))
            compare.run_autogenerate(revision_context, rev, context)  # dbops' comparison, as sync and status
            return []

        # unguarded, as command.check runs: its CommandError / ImportError reach the caller as they are
        self._run_env(fn, None, guarded=False, template_args=revision_context.template_args,
                      revision_context=revision_context)
        generated = revision_context.generated_revisions[-1]
        diffs = [diff for ops in generated.upgrade_ops_list for diff in ops.as_diffs()]
        return diffs, seen[0] if seen else None

    def _run_env(self, fn, destination, *, guarded: bool = True, **kwargs) -> None:
        fence = self.project.fence(self.url, own=self.conn, extra=self.sections, session=self.session,
                                   step="migrations on a throwaway database")
        with self.project.guard() if guarded else nullcontext(), fence:
            with EnvironmentContext(
                self.config,
                self.script,
                fn=fn,
                as_sql=False,
                starting_rev=None,
                destination_rev=destination,
                tag=None,
                **kwargs,
            ):
                run_env_py(self.script)
        if self.conn.in_transaction():
            self.conn.commit()


def run_env_py(script: ScriptDirectory) -> None:
    """Run env.py from the top in a new module, as ``ScriptDirectory.run_env`` does; compiled once per version.

    Alembic imports env.py afresh for every command (a new ``env_py`` module,
    not kept in ``sys.modules``); so does this, but the compiled code is kept
    (the file's path, size and mtime are the key), as a ``__pycache__`` would
    keep it: a step no longer compiles env.py when bytecode is not written
    (``PYTHONDONTWRITEBYTECODE``, as in containers).  A sourceless ``env.pyc``
    goes through Alembic's own loader.
    """
    path = Path(script.dir) / "env.py"
    try:
        stat = path.stat()
    except OSError:
        script.run_env()
        return
    code = _env_code(str(path), stat.st_mtime_ns, stat.st_size)
    spec = importlib.util.spec_from_file_location("env_py", path)
    module = importlib.util.module_from_spec(spec)
    exec(code, module.__dict__)  # the project's own env.py, exactly what Alembic runs


@lru_cache(maxsize=32)
def _env_code(path: str, _mtime_ns: int, _size: int) -> CodeType:
    with open(path, "rb") as fh:
        return compile(fh.read(), path, "exec", dont_inherit=True)


@contextmanager
def frozen_gc() -> Iterator[None]:
    """The objects alive when a run starts (SQLAlchemy, Alembic, the revision modules) left out of GC passes.

    A step allocates thousands of short-lived objects; each full collection
    would walk the whole heap again (a tenth of a second on a long chain).
    ``gc.freeze`` parks what exists now in the permanent generation until the
    end of the run; objects made during it are collected as usual.  Left
    alone when someone else froze the heap already.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def foreign_env(project: Project, url: URL, *, modules_before: set[str] | None = None) -> Iterator[None]:
    """What a foreign env.py may need, undone afterwards.

    (Its variables and connections are the fence's, around each run: :meth:`Project.fence`.)
    Alembic's INFO lines ("Running upgrade ...") are silenced even
    when env.py calls ``fileConfig`` (:func:`.fence.quiet_logging`); ``sys.path`` and the modules imported
    from the project (its models) are restored, so several projects can be
    tested in one process.  ``modules_before``: the modules there were before
    the caller began loading the project (its revision files import modules
    too); default, those at entry.
    """
    project_dir = project.ini.parent
    saved_path = list(sys.path)
    saved_modules = set(sys.modules) if modules_before is None else set(modules_before)
    try:
        with quiet_logging():
            yield
    finally:
        sys.path[:] = saved_path
        root = str(project_dir.resolve())
        for name in set(sys.modules) - saved_modules:
            file = getattr(sys.modules.get(name), "__file__", None) or ""
            if file.startswith(root):
                del sys.modules[name]
