"""The per-revision stairway: up, snapshot, down, compare, up again, compare.

For each selected revision, in an order where every revision follows its
parents (so branches and merges are walked, each edge once):

1. snapshot *before* (the schema with the revision's parents applied),
2. upgrade that one revision, snapshot *after upgrade*,
3. downgrade that one revision, snapshot: must equal *before*,
4. upgrade again, snapshot: must equal *after upgrade*.

Each step is its own env.py run (:class:`~dbops.migrations.runner.StepRunner`), so it behaves
exactly as a separate ``alembic upgrade`` / ``alembic downgrade`` process
would (a fresh migration context: no DDL memo carried over).  The database,
its snapshots and its rebuilds are the :class:`.workbench.Workbench`'s.

Snapshots are computed by the server while the next step starts: env.py
runs, configures its context and reads the current heads meanwhile, and the
step waits for the snapshot (and, when the snapshot decides what comes next,
its comparison) at the point Alembic asks for the steps to run, before any
operation of the revision.  The time waited there is not counted as the
step's.  When the comparison says the step should not run (a downgrade left
the schema changed; an upgrade again gave another schema), the step stops
there, its transaction rolls back, and the walk goes the failure's way.

Irreversible revisions (see :mod:`.irreversible`) are only upgraded; one
whose upgrade left the schema unchanged (a backfill) is *data only*, a note.
When a step raises (or upgrading again gives another schema), the database is
rebuilt (from the latest checkpoint) and the walk goes on, so one run reports
every broken revision.  An upgrade that fails on its own is reported, then
reached as a fresh install reaches it (one ``alembic upgrade`` from the base,
one migration context): when that works the walk goes on from there, else it
stops naming the revisions not tested.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from alembic.script import Script

from ..errors import (
    DbopsError,
    ExtensionUnavailable,
    ForeignDatabase,
    MigrationError,
    ModelImportError,
    RoundTripToolError,
)
from ..migrations import Project, failing_file
from ..postgres import schema_snapshot
from ..postgres.extensions import missing_extension
from ..redact import reason
from ..servers.throwaway import ThrowawayDatabase
from ..settings import Settings
from ..ui import Progress
from . import irreversible, repair, since
from .report import DATA_ONLY, FAILED, OK, UP_ONLY, RevisionResult
from .workbench import Reading, SetupHook, Workbench

NOOP_WARNING = (
    "warning: upgrade() calls {ops} but left the schema unchanged: on PostgreSQL it is likely a no-op "
    "(for example a batch alter to an Enum with a new value never runs ALTER TYPE … ADD VALUE)"
)
DATA_ONLY_NOTE = "data only: no schema to undo (the upgrade left the schema unchanged, the downgrade is empty)"
log = logging.getLogger(__name__)

#: what stops the walk as it is: the project's setup, the tester, the throwaway server; never a revision's fault
NOT_THE_REVISIONS = (ModelImportError, RoundTripToolError, ExtensionUnavailable, ForeignDatabase)


class Stairway(Workbench):
    """One walk over ``selected`` on the throwaway database ``db`` (see :class:`.workbench.Workbench`)."""

    def __init__(
        self,
        settings: Settings,
        project: Project,
        db: ThrowawayDatabase,
        order: Sequence[Script],
        selected: Sequence[Script],
        *,
        setup_sql: Path | None = None,
        setup: SetupHook | None = None,
        progress: Progress | None = None,
        cache: bool = False,
    ):
        super().__init__(settings, project, db, setup_sql=setup_sql, setup=setup)
        #: ``--since``: keep the unselected revisions applied in an archive under ``settings.state_dir``
        self.cache = cache and not self.multidb and setup is None
        self.state_dir = settings.state_dir
        #: that archive (restored when it exists, else kept there)
        self.base_cache: Path | None = None
        #: how the unselected revisions were applied: "restored" from base_cache, "kept" in it, None (no cache)
        self.base_cached: str | None = None
        self.order = list(order)
        self.selected = list(selected)
        chosen = {s.revision for s in self.selected}
        #: revisions applied without checks first (--last / --from)
        self.prepared = [s for s in self.order if s.revision not in chosen]
        self.progress = progress or Progress()
        #: wrong downgrades whose leftovers were dropped instead of rebuilding
        self.repairs = 0
        #: False once the walk stopped early (the database is not at the heads)
        self.completed = False
        #: the previous revision's last check, done when the next step asks for its steps
        self._check: _Check | None = None
        #: revisions whose upgrade failed on its own but passed in one upgrade from the base (a fresh install)
        self.one_shot: list[str] = []

    def prepare(self) -> None:
        """Connect, set up, and apply the unselected older revisions in one go (no checks)."""
        self._create_engine_databases()
        self._connect()
        if self.cache and self.prepared:
            major = int(self.conn.exec_driver_sql("SHOW server_version_num").scalar()) // 10000
            self.conn.commit()
            self.base_cache = since.cache_path(self.state_dir, self.project, self.prepared, self.setup_sql, major)
        if self.base_cache is not None and self._restore_base():
            self.applied = list(self.prepared)
            return
        self._set_up()
        if self.prepared:
            self.progress.update(f"applying {len(self.prepared)} older revisions without checks", force=True)
            try:
                self.runner.run(self.prepared, upgrade=True)
            except Exception as exc:  # a revision of the project failed: not one under test
                if isinstance(exc, NOT_THE_REVISIONS):
                    raise
                _raise_if_setup_error(exc, self.project)
                _raise_if_extension_missing(exc, "revisions applied before the tested ones")
                raise MigrationError(
                    f"applying the {len(self.prepared)} revisions before the tested ones (up to "
                    f"{self.prepared[-1].revision}) failed: {reason(exc, typed=True)}",
                    hint="run without --last / --from / --since to test those revisions too",
                ) from None
        self.applied = list(self.prepared)
        if self.base_cache is not None:
            if self.conn.in_transaction():
                self.conn.commit()
            if since.save(self.db.url, self.base_cache, places=self.places):
                self.base_archive = (self.base_cache, [s.revision for s in self.prepared])
                self.base_cached = "kept"

    def _restore_base(self) -> bool:
        """Restore the cached archive of the unselected revisions; False when there is none (or it is unusable)."""
        assert self.base_cache is not None
        if not self.base_cache.is_file():
            return False
        self.progress.update(f"restoring the {len(self.prepared)} older revisions from {self.base_cache}", force=True)
        try:
            since.restore(self.base_cache, self.db.url, places=self.places)
        except RoundTripToolError as exc:  # a damaged archive costs a build, never the run
            log.warning("%s; building the base again", exc.message)
            self.close()
            try:
                self.db.recreate()
            except Exception as again:
                raise RoundTripToolError("cannot create the throwaway database again", reason(again)) from None
            self._connect()
            return False
        self.base_archive = (self.base_cache, [s.revision for s in self.prepared])
        self.base_cached = "restored"
        return True

    def _step(self, script: Script, upgrade: bool, gate: Callable[[], None] | None = None) -> float:
        """Run one step; its duration in ms.  Leaves our connection usable whatever env.py did with it.

        ``gate`` runs when Alembic asks for the steps (before any operation):
        it waits for the previous snapshot and may raise :class:`_Held` (the
        step must not run) or RoundTripToolError; those come out as they are,
        whatever env.py does with exceptions.  A step that fails before
        reaching the gate still has it run (the previous check comes first).
        The time waited at the gate is not the step's.
        """
        waited = 0.0
        reached = gate is None
        raised: list[BaseException] = []

        def at_gate() -> None:
            nonlocal waited, reached
            reached = True
            t0 = time.perf_counter()
            try:
                gate()
            except BaseException as exc:
                raised.append(exc)
                raise
            finally:
                waited = time.perf_counter() - t0

        began = time.perf_counter()
        try:
            self.runner.step(script, upgrade=upgrade, gate=None if gate is None else at_gate)
        except BaseException as exc:
            try:
                if self.conn is not None and self.conn.in_transaction():
                    self.conn.rollback()
            except sa.exc.SQLAlchemyError:
                pass
            if not reached:
                at_gate()
            if raised:
                raise raised[0] from None
            _raise_if_setup_error(exc, self.project)
            _raise_if_extension_missing(exc, f"revision {script.revision}")
            raise
        if not reached:
            at_gate()
        return (time.perf_counter() - began - waited) * 1000

    # -- the walk -------------------------------------------------------------------
    def walk(self) -> list[RevisionResult]:
        """Walk every selected revision, one env.py run per step."""
        results = [RevisionResult(s.revision, (s.doc or "").strip()) for s in self.selected]
        self.prepare()
        before = self.snapshot()
        try:
            for j, script in enumerate(self.selected):
                before = self._revision(j, script, results[j], before)
            try:
                self._check_last()
            except _Held as held:
                self._failed(held.result, None)  # rebuilt at the heads, for the models check
        except _Stop:
            self._settle()
            self.untrack()
            return results
        self.untrack()
        self.completed = True
        return results

    def _check_last(self) -> None:
        """The previous revision's last check: the schema it left is exactly the one expected.

        Sets its result; raises _Held (its problems recorded) when the schema
        differs, and the caller rebuilds the database.
        """
        if self._check is None:
            return
        check, self._check = self._check, None
        result = check.result
        now = check.reading.result()
        if now == check.expected:
            result.result = FAILED if result.problems else OK
            return
        if check.title is not None:
            result.problems.append(check.title)
            result.problems.extend("  " + line for line in schema_snapshot.diff(
                check.expected, now, before="after upgrade", after="after downgrade and upgrade"))
        result.result = FAILED
        raise _Held(result)

    def _settle(self) -> None:
        """The walk stopped: the pending last check still sets its revision's result (no rebuild)."""
        try:
            self._check_last()
        except _Held:
            pass

    def _progress(self, j: int, script: Script, phase: str) -> None:
        self.progress.update(f"[{j + 1}/{len(self.selected)}] {script.revision} {(script.doc or '')[:40]}: {phase}")

    def _revision(
        self, j: int, script: Script, result: RevisionResult, before: schema_snapshot.SnapshotText
    ) -> schema_snapshot.SnapshotText:
        """Round-trip one revision; the snapshot the next one starts from.

        Its last check (upgrading again reproduced the schema; after a failed
        downgrade, the schema is still the upgrade's) is left in ``_check``,
        done while the next step starts (:meth:`_check_last`).
        """
        rev = script.revision
        irr = irreversible.irreversible_downgrade(script)
        self._progress(j, script, "up")
        while True:
            try:
                result.up_ms = self._step(script, True, gate=self._check_last if self._check else None)
                break
            except _Held as held:  # the previous revision failed its last check: rebuild, then upgrade this one
                before = self._failed(held.result, None)
            except NOT_THE_REVISIONS:
                raise  # the project's setup or the tester, not this revision: stop the run
            except Exception as exc:
                result.result = FAILED
                result.problems.append(f"upgrade failed: {reason(exc, typed=True)}")
                return self._past_failed_upgrade(j, script, result)
        self.applied.append(script)
        reading = self.later(rev)
        if irr is not None:
            after = reading.result()
            self._note_noop(script, result, before, after)
            if irr.marked:
                result.result = UP_ONLY
            elif after.text == before.text:
                result.result = DATA_ONLY
                result.notes.append(DATA_ONLY_NOTE)
            else:
                result.result = FAILED
                result.problems.append(
                    f"irreversible: {irr.reason}; implement downgrade(), or mark the revision "
                    "irreversible (`irreversible = True` or `# dbops: irreversible` in the file)"
                )
            return after

        self._progress(j, script, "down")
        try:
            result.down_ms = self._step(script, False, gate=reading.result)
        except NOT_THE_REVISIONS:
            raise
        except Exception as exc:
            # its transaction rolled back: the database is usually still exactly as the upgrade left it,
            # which the next step's gate checks (else the database is rebuilt there)
            after = reading.result()
            self._note_noop(script, result, before, after)
            result.result = FAILED
            result.problems.append(f"downgrade failed: {reason(exc, typed=True)}")
            self._check = _Check(result, self.later(rev), after)
            return after
        after = reading.result()
        self._note_noop(script, result, before, after)
        reading = self.later(rev)

        def back_is_before() -> None:
            if reading.result() != before:
                raise _Held(result)

        self._progress(j, script, "again")
        repaired = False
        while True:
            try:
                result.again_ms = self._step(script, True, gate=back_is_before)
                break
            except _Held:  # the downgrade did not restore the schema (or dropping its leftovers did not)
                if repaired:
                    return self._failed(result, None)
                back = reading.result()
                result.problems.append("the downgrade did not restore the schema:")
                result.problems.extend("  " + line for line in schema_snapshot.diff(
                    before, back, before="before upgrade", after="after downgrade"))
                # upgrading again is only meaningful from the schema before: drop what it left behind (the
                # step's gate checks the schema is then exactly before), or rebuild with the revision applied
                if not self._drop_leftovers(before, back):
                    return self._failed(result, None)
                repaired = True
                reading = self.later(rev)
            except NOT_THE_REVISIONS:
                raise
            except Exception as exc:
                return self._failed(result, f"upgrade after the downgrade failed: {reason(exc, typed=True)}")
        self._check = _Check(result, self.later(rev), after,
                             "upgrading again after the downgrade gave a different schema:")
        return after

    def _past_failed_upgrade(self, j: int, script: Script, result: RevisionResult) -> schema_snapshot.SnapshotText:
        """An upgrade failed on its own: reach the revision as a fresh install would, or stop the walk.

        A fresh install runs one ``alembic upgrade`` from the base: every
        revision in one migration context, where SQLAlchemy's per-context DDL
        memo may carry an enum type from the revision that created it to a
        later ``sa.Enum(name=...)`` that creates it again.  When that one run
        reaches the revision, the walk goes on from there (the database is the
        new checkpoint); the snapshot there is returned.  Otherwise the walk
        stops, naming the revisions not tested.
        """
        self._progress(j, script, "one upgrade from the base")
        try:
            self.rebuild([*self.applied, script], fresh=True)
        except NOT_THE_REVISIONS:
            raise
        except Exception as exc:
            rest = [s.revision for s in self.selected[j + 1:]]
            result.problems.append(
                f"one `alembic upgrade {script.revision}` from the base (as a fresh install) fails too: "
                f"{reason(exc, typed=True)}"
            )
            result.problems.append(
                "the walk stops here: later revisions need this one"
                + (f"; not tested: {', '.join(rest)}" if rest else "")
            )
            raise _Stop from None
        self.one_shot.append(script.revision)  # rebuild() left it in ``applied``
        result.notes.append(
            f"reached by one `alembic upgrade {script.revision}` from the base (as a fresh install does): "
            + ("the revisions after it were tested on a database built that way"
               if j + 1 < len(self.selected) else "it is the last revision")
        )
        return self.snapshot(script.revision)

    @staticmethod
    def _note_noop(script: Script, result: RevisionResult, before: schema_snapshot.SnapshotText,
                   after: schema_snapshot.SnapshotText) -> None:
        """The warning for an upgrade with schema operations that left the schema unchanged."""
        if after.text == before.text:  # equal schemas give equal texts: no parsing on this path
            ops = irreversible.schema_operations(script)
            if ops:
                result.notes.append(NOOP_WARNING.format(ops=", ".join(ops)))

    def _drop_leftovers(self, before: schema_snapshot.SnapshotText, now: schema_snapshot.SnapshotText) -> bool:
        """Drop what a downgrade left beyond ``before``; False if it cannot (the caller checks the schema after)."""
        assert self.conn is not None
        if self.multidb:
            return False  # leftovers live in several databases: rebuild instead
        if self.conn.in_transaction():
            self.conn.commit()
        if not repair.drop_leftovers(self.conn, before, now):
            return False
        self.repairs += 1
        return True

    def _failed(self, result: RevisionResult, problem: str | None) -> schema_snapshot.SnapshotText:
        """After a failed step: the database rebuilt with the revision applied; the snapshot there."""
        result.result = FAILED
        if problem:
            result.problems.append(problem)
        try:
            self.rebuild(self.applied)
        except NOT_THE_REVISIONS:
            raise
        except Exception as again:
            result.problems.append(
                f"the walk stops here: could not rebuild the database ({reason(again, typed=True)})"
            )
            raise _Stop from None
        return self.snapshot(result.revision)


def _raise_if_setup_error(exc: BaseException, project: Project) -> None:
    """Raise ModelImportError when env.py failed while loading (its models), before any revision ran.

    A models module that raises (a missing package comes as ModelImportError
    from ``Project.guard`` already) fails every step the same way: it is the
    project's setup, never the fault of the revision the walk was at.
    """
    if isinstance(exc, ModelImportError):
        raise exc
    if not isinstance(exc, Exception) or isinstance(exc, (DbopsError, sa.exc.SQLAlchemyError)):
        return
    env_py = str((Path(project.script.dir) / "env.py").resolve())
    files, tb = [], exc.__traceback__
    while tb is not None:
        files.append(str(Path(tb.tb_frame.f_code.co_filename).resolve()))
        tb = tb.tb_next
    if env_py not in files:
        return
    if not _resolved_files(tuple(s.path for s in project.script.walk_revisions())).intersection(files):
        raise ModelImportError(failing_file(exc), reason(exc, typed=True, unwrap=False)) from None


def _raise_if_extension_missing(exc: BaseException, needed_by: str) -> None:
    """Raise ExtensionUnavailable when ``exc`` is an extension the throwaway server lacks (its CREATE EXTENSION
    failed there): the server's limit, never the revision's fault (:mod:`dbops.servers.throwaway` names the server
    and the ways out)."""
    missing = missing_extension(exc)
    if missing is not None:
        raise ExtensionUnavailable(missing.name, library=missing.library, needed_by=needed_by) from None


@lru_cache(maxsize=8)
def _resolved_files(paths: tuple[str, ...]) -> frozenset[str]:
    """The revision files, resolved: once per chain, not once per failing step."""
    return frozenset(str(Path(p).resolve()) for p in paths)


class _Stop(Exception):
    """The walk cannot go on (an upgrade failed, or the database could not be rebuilt)."""


@dataclass
class _Check:
    """A revision's last check, done at the next step's gate: the schema being read must equal ``expected``.

    ``title`` heads the diff in the revision's problems (None: the problem is
    told already, as for a failed downgrade, and a difference only means the
    database is rebuilt).
    """

    result: RevisionResult
    reading: Reading
    expected: schema_snapshot.SnapshotText
    title: str | None = None


class _Held(Exception):
    """A step stopped at its gate: the snapshot before it showed a failure (``result``: whose)."""

    def __init__(self, result: RevisionResult):
        super().__init__(result.revision)
        self.result = result
