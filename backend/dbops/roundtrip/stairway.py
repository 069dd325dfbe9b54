"""The per-revision stairway: up, snapshot, down, compare, up again, compare.

For each selected revision, in an order where every revision follows its
parents (so branches and merges are walked, each edge once):

1. snapshot *before* (the schema with the revision's parents applied),
2. upgrade that one revision, snapshot *after upgrade*,
3. downgrade that one revision, snapshot: must equal *before*,
4. upgrade again, snapshot: must equal *after upgrade*.

Irreversible revisions (see :mod:`.irreversible`) are only upgraded.  When a
step raises, the database is rebuilt (dropped, created, set up, upgraded
through the revisions done so far, without checks) and the walk goes on, so
one run reports every broken revision, not only the first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic.script import Script
from sqlalchemy.engine import Connection

from .. import postgres, schema
from ..console import Progress
from ..errors import DbopsError
from ..migrations import Project
from . import irreversible
from .database import ThrowawayDatabase
from .report import FAILED, OK, SKIPPED, UP_ONLY, RevisionResult
from .runner import StepRunner

SetupHook = Callable[[Connection], None]


def first_line(exc: BaseException) -> str:
    """A one-line reason for a failed step, without the SQLAlchemy boilerplate."""
    if isinstance(exc, DbopsError):
        text = exc.message
    else:
        text = str(getattr(exc, "orig", None) or exc).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(getattr(exc, 'orig', None) or exc).__name__}: {line}" if line else type(exc).__name__


class Stairway:
    """One walk over ``selected`` on the throwaway database ``db``."""

    def __init__(
        self,
        project: Project,
        db: ThrowawayDatabase,
        order: Sequence[Script],
        selected: Sequence[Script],
        *,
        setup_sql: str | None = None,
        setup: SetupHook | None = None,
        progress: Progress | None = None,
    ):
        self.project = project
        self.db = db
        self.order = list(order)
        self.selected = list(selected)
        chosen = {s.revision for s in self.selected}
        #: revisions applied without checks first (--last / --from)
        self.prepared = [s for s in self.order if s.revision not in chosen]
        self.setup_sql = setup_sql
        self.setup = setup
        self.progress = progress
        self.engine: sa.Engine | None = None
        self.conn: Connection | None = None
        self.runner: StepRunner | None = None
        #: revisions applied so far, in order
        self.applied: list[Script] = []
        #: False once the walk stopped early (the database is not at the heads)
        self.completed = False

    # -- the database ---------------------------------------------------------------
    def _connect(self) -> None:
        self.engine = postgres.make_engine(self.db.url)
        self.conn = self.engine.connect()
        self.runner = StepRunner(self.project, self.db.url, self.conn)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.rollback()
                self.conn.close()
            finally:
                self.conn = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def _set_up(self) -> None:
        """Run --setup-sql / the setup hook: what must exist before the base revision."""
        assert self.conn is not None
        if self.setup_sql:
            self.conn.exec_driver_sql(self.setup_sql)
            self.conn.commit()
        if self.setup:
            self.setup(self.conn)
            if self.conn.in_transaction():
                self.conn.commit()

    def prepare(self) -> None:
        """Connect, set up, and apply the unselected older revisions in one go (no checks)."""
        self._connect()
        self._set_up()
        if self.prepared:
            self._say(f"applying {len(self.prepared)} older revisions without checks")
            self.runner.run(self.prepared, upgrade=True)
        self.applied = list(self.prepared)

    def rebuild(self, applied: Sequence[Script]) -> None:
        """Start over on an empty database and apply ``applied`` without checks."""
        self.close()
        self.db.recreate()
        self._connect()
        self._set_up()
        self.runner.run(list(applied), upgrade=True)
        self.applied = list(applied)

    def snapshot(self) -> schema.Snapshot:
        assert self.conn is not None
        snap = schema.snapshot(self.conn)
        self.conn.commit()  # hold no catalog locks while env.py may use its own connection
        return snap

    def _say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.update(text, force=True)

    # -- the walk -------------------------------------------------------------------
    def walk(self) -> list[RevisionResult]:
        results = [RevisionResult(s.revision, (s.doc or "").strip()) for s in self.selected]
        self.prepare()
        before = self.snapshot()
        total = len(self.selected)
        for i, (script, result) in enumerate(zip(self.selected, results), start=1):
            label = f"[{i}/{total}] {script.revision} {result.message[:40]}"
            if self.progress is not None:
                self.progress.update(f"{label}: upgrade")
            try:
                before = self._one(script, result, before, label)
            except _Stop:
                return results
        self.completed = True
        return results

    def _one(self, script: Script, result: RevisionResult, before: schema.Snapshot, label: str) -> schema.Snapshot:
        t0 = time.perf_counter()
        try:
            self.runner.upgrade(script)
        except Exception as exc:
            result.result = FAILED
            result.problems.append(f"upgrade failed: {first_line(exc)}")
            result.problems.append("the walk stops here: later revisions need this one")
            raise _Stop from None
        result.up_ms = (time.perf_counter() - t0) * 1000
        self.applied.append(script)

        irr = irreversible.check(script)
        if irr is not None:
            result.result = UP_ONLY
            if not irr.marked:
                result.result = FAILED
                result.problems.append(
                    f"irreversible: {irr.reason}; implement downgrade(), or mark the revision "
                    "irreversible (`irreversible = True` or `# dbops: irreversible` in the file)"
                )
            return self.snapshot()

        after_up = self.snapshot()
        if self.progress is not None:
            self.progress.update(f"{label}: downgrade")
        t0 = time.perf_counter()
        try:
            self.runner.downgrade(script)
        except Exception as exc:
            result.result = FAILED
            result.problems.append(f"downgrade failed: {first_line(exc)}")
            return self._recover(script)
        result.down_ms = (time.perf_counter() - t0) * 1000
        self.applied.pop()
        after_down = self.snapshot()
        back = schema.diff(before, after_down, before="before upgrade", after="after downgrade")
        if back:
            result.problems.append("the downgrade did not restore the schema:")
            result.problems.extend("  " + line for line in back)

        if self.progress is not None:
            self.progress.update(f"{label}: upgrade again")
        try:
            self.runner.upgrade(script)
        except Exception as exc:
            result.result = FAILED
            result.problems.append(f"upgrade after the downgrade failed: {first_line(exc)}")
            return self._recover(script)
        self.applied.append(script)
        again = self.snapshot()
        redo = schema.diff(after_up, again, before="after upgrade", after="after downgrade and upgrade")
        if redo:
            result.problems.append("upgrading again after the downgrade gave a different schema:")
            result.problems.extend("  " + line for line in redo)
        result.result = FAILED if result.problems else OK
        return again

    def _recover(self, script: Script) -> schema.Snapshot:
        """After a failed step: rebuild the database through ``script`` (its upgrade worked once), or stop."""
        target = [s for s in self.applied if s is not script] + [script]
        try:
            self.rebuild(target)
        except Exception as exc:
            raise _Stop from exc
        return self.snapshot()


class _Stop(Exception):
    """The walk cannot go on (an upgrade failed, or the database could not be rebuilt)."""
