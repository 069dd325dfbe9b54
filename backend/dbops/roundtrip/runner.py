"""Running single migration steps through the project's own env.py, fast.

``alembic.command.upgrade`` re-reads every revision file on each call; a
stairway makes three calls per revision, so that cost is quadratic.  The
runner keeps one :class:`~alembic.script.ScriptDirectory` for the whole run
and hands env.py exactly the steps to run (Alembic's own ``RevisionStep``,
which also keeps ``alembic_version`` right for branches and merges) through
an :class:`~alembic.runtime.environment.EnvironmentContext`, the way
``command.upgrade`` itself does.

env.py gets the database in all three usual ways: our connection in
``config.attributes["connection"]``, the ``sqlalchemy.url`` option and the
``DATABASE_URL`` environment variable.  Nothing assumes env.py uses our
connection: after each step our connection commits and reads the catalog
afresh, so an env.py that opens its own engine and commits is seen too.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import RevisionStep
from alembic.script import Script
from sqlalchemy.engine import URL, Connection

from ..migrations import Project


class StepRunner:
    """Upgrade or downgrade one revision at a time on ``conn`` (the database at ``url``)."""

    def __init__(self, project: Project, url: URL, conn: Connection):
        self.project = project
        self.url = url
        self.conn = conn
        self.script = project.script
        self.config = project.config(connection=conn, url=url)

    def run(self, scripts: Sequence[Script], *, upgrade: bool) -> None:
        """Apply (or revert) exactly these revisions, in this order, in one env.py run."""
        self.run_plan([(s, upgrade) for s in scripts])

    def run_plan(self, plan: Sequence[tuple[Script, bool]], on_step: Callable | None = None) -> None:
        """Run ``(revision, is_upgrade)`` steps in one env.py run; ``on_step(connection)`` after each.

        ``on_step`` is called inside the step's transaction on the connection
        env.py configured (ours or its own), so it sees the step's DDL.
        """
        steps = [RevisionStep(self.script.revision_map, s, up) for s, up in plan]
        if not steps:
            return
        if self.conn.in_transaction():
            self.conn.commit()
        last, upgrade = plan[-1]
        destination = last.revision if upgrade else (last.down_revision or "base")

        def fn(_rev, context):
            if on_step is not None:
                hook = lambda ctx, **_kw: on_step(ctx.connection)  # noqa: E731
                context.on_version_apply_callbacks = tuple(context.on_version_apply_callbacks) + (hook,)
            return list(steps)
        with self.project.guard():
            with EnvironmentContext(
                self.config,
                self.script,
                fn=fn,
                as_sql=False,
                starting_rev=None,
                destination_rev=destination if isinstance(destination, str) else destination[0],
                tag=None,
            ):
                self.script.run_env()
        if self.conn.in_transaction():
            self.conn.commit()


@contextmanager
def foreign_env(project_dir: Path, url: URL) -> Iterator[None]:
    """What a foreign env.py may need, undone afterwards.

    ``DATABASE_URL`` points at the throwaway database; Alembic's INFO lines
    ("Running upgrade ...") are silenced even when env.py calls
    ``fileConfig``; ``sys.path`` and the modules imported from the project
    (its models) are restored, so several projects can be tested in one process.
    """
    saved_env = os.environ.get("DATABASE_URL")
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    saved_disable = logging.root.manager.disable
    os.environ["DATABASE_URL"] = url.render_as_string(hide_password=False)
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(saved_disable)
        if saved_env is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = saved_env
        sys.path[:] = saved_path
        root = str(project_dir.resolve())
        for name in set(sys.modules) - saved_modules:
            file = getattr(sys.modules.get(name), "__file__", None) or ""
            if file.startswith(root):
                del sys.modules[name]
