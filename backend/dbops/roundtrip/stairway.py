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

from .. import postgres
from ..migrations import Project
from ..postgres import catalog
from ..redact import reason
from ..ui import Progress
from . import irreversible
from .database import ThrowawayDatabase
from .report import FAILED, OK, UP_ONLY, RevisionResult
from .runner import StepRunner

SetupHook = Callable[[Connection], None]


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
        self.progress = progress or Progress()
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
            self.progress.update(f"applying {len(self.prepared)} older revisions without checks", force=True)
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

    def snapshot(self) -> catalog.SnapshotText:
        assert self.conn is not None
        snap = catalog.snapshot_text(self.conn)
        self.conn.commit()  # hold no catalog locks while env.py may use its own connection
        return snap

    # -- the walk -------------------------------------------------------------------
    def walk(self) -> list[RevisionResult]:
        """Walk every selected revision; one env.py run per stretch without failures."""
        results = [RevisionResult(s.revision, (s.doc or "").strip()) for s in self.selected]
        self.prepare()
        before = self.snapshot()
        i = 0
        try:
            while i < len(self.selected):
                i, before = self._stretch(i, results, before)
        except _Stop:
            return results
        self.completed = True
        return results

    def _plan(self, start: int) -> list[tuple[Script, bool, int, str]]:
        plan = []
        for j in range(start, len(self.selected)):
            script = self.selected[j]
            if irreversible.check(script) is not None:
                plan.append((script, True, j, "up only"))
            else:
                plan += [(script, True, j, "up"), (script, False, j, "down"), (script, True, j, "again")]
        return plan

    def _stretch(
        self, start: int, results: list[RevisionResult], before: catalog.SnapshotText
    ) -> tuple[int, catalog.SnapshotText]:
        """Run the steps of ``selected[start:]`` in one env.py run, checking after each step.

        Returns where to go on and the snapshot there: the end, or (after a
        failed step and a rebuild) the revision after the failing one.
        """
        plan = self._plan(start)
        total = len(self.selected)
        state = {"k": 0, "t": time.perf_counter(), "before": before, "after_up": None}

        def on_step(conn: Connection) -> None:
            elapsed = (time.perf_counter() - state["t"]) * 1000
            script, _up, j, phase = plan[state["k"]]
            result = results[j]
            # the fast path: one text per snapshot, compared as a string; only a
            # difference expands both sides into the detailed snapshots diff() shows
            snap = catalog.snapshot_text(conn)
            if phase == "up only":
                result.up_ms = elapsed
                irr = irreversible.check(script)
                result.result = UP_ONLY
                if irr is not None and not irr.marked:
                    result.result = FAILED
                    result.problems.append(
                        f"irreversible: {irr.reason}; implement downgrade(), or mark the revision "
                        "irreversible (`irreversible = True` or `# dbops: irreversible` in the file)"
                    )
                state["before"] = snap
            elif phase == "up":
                result.up_ms = elapsed
                state["after_up"] = snap
            elif phase == "down":
                result.down_ms = elapsed
                back = catalog.diff(state["before"], snap, before="before upgrade", after="after downgrade")
                if back:
                    result.problems.append("the downgrade did not restore the schema:")
                    result.problems.extend("  " + line for line in back)
            else:
                redo = catalog.diff(
                    state["after_up"], snap, before="after upgrade", after="after downgrade and upgrade"
                )
                if redo:
                    result.problems.append("upgrading again after the downgrade gave a different schema:")
                    result.problems.extend("  " + line for line in redo)
                result.result = FAILED if result.problems else OK
                state["before"] = snap
            self.progress.update(f"[{j + 1}/{total}] {script.revision} {result.message[:40]}: {phase}")
            state["k"] += 1
            state["t"] = time.perf_counter()

        try:
            self.runner.run_plan([(s, up) for s, up, _j, _p in plan], on_step)
        except Exception as exc:
            script, _up, j, phase = plan[min(state["k"], len(plan) - 1)]
            result = results[j]
            result.result = FAILED
            what = {"up": "upgrade", "up only": "upgrade", "down": "downgrade"}.get(
                phase, "upgrade after the downgrade"
            )
            result.problems.append(f"{what} failed: {reason(exc, typed=True)}")
            if phase in ("up", "up only"):
                result.problems.append("the walk stops here: later revisions need this one")
                raise _Stop from None
            try:
                self.rebuild(self.prepared + self.selected[: j + 1])
            except Exception as again:
                result.problems.append(
                    f"the walk stops here: could not rebuild the database ({reason(again, typed=True)})"
                )
                raise _Stop from None
            return j + 1, self.snapshot()
        return len(self.selected), state["before"]


class _Stop(Exception):
    """The walk cannot go on (an upgrade failed, or the database could not be rebuilt)."""
