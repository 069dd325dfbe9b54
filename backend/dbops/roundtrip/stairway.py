"""The per-revision stairway: up, snapshot, down, compare, up again, compare.

For each selected revision, in an order where every revision follows its
parents (so branches and merges are walked, each edge once):

1. snapshot *before* (the schema with the revision's parents applied),
2. upgrade that one revision, snapshot *after upgrade*,
3. downgrade that one revision, snapshot: must equal *before*,
4. upgrade again, snapshot: must equal *after upgrade*.

Each step is its own env.py run (:class:`.runner.StepRunner`), so it behaves
exactly as a separate ``alembic upgrade`` / ``alembic downgrade`` process
would (a fresh migration context: no DDL memo carried over).  Every snapshot
is read on the stairway's own psycopg2 connection, whatever env.py uses; a
snapshot that cannot be read is the tester's failure (:class:`RoundTripToolError`),
never the revision's.

Snapshots are computed by the server while the next step starts (the
query goes out on a connection of ours in psycopg2's asynchronous mode,
:class:`~dbops.postgres.schema_snapshot.SnapshotReader`): env.py runs, configures
its context and reads the current heads meanwhile, and the step waits for
the snapshot (and, when the snapshot decides what comes next, its
comparison) at the point Alembic asks for the steps to run, before any
operation of the revision.  The time waited there is not counted as the
step's.  When the comparison says the step should not run (a downgrade left
the schema changed; an upgrade again gave another schema), the step stops
there, its transaction rolls back, and the walk goes the failure's way.

Irreversible revisions (see :mod:`.irreversible`) are only upgraded; one
whose upgrade left the schema unchanged (a backfill) is *data only*, a note.
When a step raises (or upgrading again gives another schema), the database is
rebuilt and the walk goes on, so one run reports every broken revision: the
rebuild starts from the latest *checkpoint* (``CREATE DATABASE … TEMPLATE``
of the database as it was at the previous failure) and replays only the
revisions since, and then becomes the next checkpoint: all rebuilds of a run
together replay each revision at most once, so a failure costs a constant.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from alembic.script import Script
from sqlalchemy.engine import Connection

from .. import postgres
from ..errors import DbopsError, MigrationError, ModelImportError, RoundTripToolError, ToolFailed, UsageError
from ..migrations import Project, _failing_file
from ..postgres import clients, schema_snapshot
from ..redact import reason
from ..settings import Settings
from ..ui import Progress
from . import irreversible, repair
from ..servers.throwaway import ThrowawayDatabase, clone
from .report import DATA_ONLY, FAILED, OK, UP_ONLY, RevisionResult
from ..migrations.runner import StepRunner

log = logging.getLogger(__name__)

SetupHook = Callable[[Connection], None]

#: the first bytes of a pg_dump custom-format archive (restored with pg_restore)
_CUSTOM_DUMP = b"PGDMP"

NOOP_WARNING = (
    "warning: upgrade() calls {ops} but left the schema unchanged: on PostgreSQL it is likely a no-op "
    "(for example a batch alter to an Enum with a new value never runs ALTER TYPE … ADD VALUE)"
)
DATA_ONLY_NOTE = "data only: no schema to undo (the upgrade left the schema unchanged, the downgrade is empty)"


class Stairway:
    """One walk over ``selected`` on the throwaway database ``db``.

    ``overlap`` (class attribute): read each snapshot while the next step
    starts; False reads it before (``bench/roundtrip`` times both).

    ``settings`` gives ``rollback_checkpoint_after`` (a rebuild that replayed
    this many revisions leaves a checkpoint) and ``rollback_setup_timeout_s``
    (the limit of ``--setup-sql`` in psql / pg_restore).
    """

    overlap = True

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
    ):
        self.checkpoint_after = settings.rollback_checkpoint_after
        self.setup_timeout_s = settings.rollback_setup_timeout_s
        self.project = project
        self.db = db
        self.order = list(order)
        self.selected = list(selected)
        chosen = {s.revision for s in self.selected}
        #: revisions applied without checks first (--last / --from)
        self.prepared = [s for s in self.order if s.revision not in chosen]
        self.setup_sql = Path(setup_sql) if setup_sql is not None else None
        self.setup = setup
        self.progress = progress or Progress()
        self.engine: sa.Engine | None = None
        self.conn: Connection | None = None
        #: the snapshots' own connection (asynchronous: the server reads while a step starts)
        self.reader: schema_snapshot.SnapshotReader | None = None
        #: the snapshot being read, if any (one at a time on ``reader``)
        self._pending: _Reading | None = None
        self.runner: StepRunner | None = None
        #: revisions applied so far, in order
        self.applied: list[Script] = []
        #: the checkpoint database and how many of ``applied`` it holds (None: none yet)
        self.checkpoint: tuple[str, int] | None = None
        #: rebuilds done, and revisions they replayed (the cost of failures)
        self.rebuilds = 0
        self.replayed = 0
        #: wrong downgrades whose leftovers were dropped instead of rebuilding
        self.repairs = 0
        #: False once the walk stopped early (the database is not at the heads)
        self.completed = False
        #: a multi-database project (``databases = engine1, engine2``, Alembic's multidb template):
        #: one throwaway database per engine, named after ours, snapshotted together
        self.engines: dict[str, ThrowawayDatabase] = {
            name: ThrowawayDatabase(db.server_url, f"{db.name}_{name}"[:63]) for name in engine_names(project)
        }
        self.snap_conns: dict[str, Connection] = {}
        #: the previous revision's last check, done when the next step asks for its steps
        self._check: _Check | None = None

    # -- the database ---------------------------------------------------------------
    @property
    def multidb(self) -> bool:
        return bool(self.engines)

    def _connect(self) -> None:
        try:
            self.engine = postgres.make_engine(self.db.url)
            self.conn = self.engine.connect()
            for name, edb in self.engines.items():
                self.snap_conns[name] = postgres.make_engine(edb.url, autocommit=True).connect()
        except sa.exc.SQLAlchemyError as exc:
            raise RoundTripToolError("cannot connect to the throwaway database", reason(exc, self.db.url)) from None
        if not self.multidb:
            try:  # the snapshots' own connection, autocommit: one round trip per snapshot, no locks held
                self.reader = schema_snapshot.SnapshotReader(self.db.url)
            except Exception as exc:
                raise RoundTripToolError("cannot connect to the throwaway database",
                                         reason(exc, self.db.url)) from None
        self.runner = StepRunner(self.project, self.db.url, self.conn,
                                 sections={name: edb.url for name, edb in self.engines.items()})

    def close(self) -> None:
        # a snapshot still being read is wanted by no one now (the walk resolves every reading it
        # needs before it rebuilds): closing the connection ends its query, with no wait for the server
        self._pending = None
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        for conn in self.snap_conns.values():
            try:
                conn.close()
                conn.engine.dispose()
            except sa.exc.SQLAlchemyError:
                pass
        self.snap_conns = {}
        if self.conn is not None:
            try:
                try:
                    self.conn.rollback()
                except sa.exc.SQLAlchemyError:
                    pass
                self.conn.close()
            finally:
                self.conn = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def drop_checkpoint(self) -> None:
        """Drop the checkpoint and per-engine databases; never hides the run's own outcome behind a cleanup failure."""
        names = [edb.name for edb in self.engines.values()]
        if self.checkpoint is not None:
            names.append(self.checkpoint[0])
            self.checkpoint = None
        for name in names:
            try:
                postgres.drop_database(self.db.server_url, name)
            except Exception as exc:
                log.warning("could not drop the throwaway database %s: %s", name, reason(exc))

    def _set_up(self) -> None:
        """Run --setup-sql (as psql runs it; a custom-format dump through pg_restore) and the setup hook."""
        assert self.conn is not None
        if self.setup_sql is not None:
            run_setup_sql(self.setup_sql, self.db.url, timeout=self.setup_timeout_s)
        if self.setup:
            self.setup(self.conn)
            if self.conn.in_transaction():
                self.conn.commit()

    def prepare(self) -> None:
        """Connect, set up, and apply the unselected older revisions in one go (no checks)."""
        self._create_engine_databases()
        self._connect()
        self._set_up()
        if self.prepared:
            self.progress.update(f"applying {len(self.prepared)} older revisions without checks", force=True)
            try:
                self.runner.run(self.prepared, upgrade=True)
            except Exception as exc:  # a revision of the project failed: not one under test
                if isinstance(exc, (RoundTripToolError, ModelImportError)):
                    raise
                _raise_if_setup_error(exc, self.project)
                raise MigrationError(
                    f"applying the {len(self.prepared)} revisions before the tested ones (up to "
                    f"{self.prepared[-1].revision}) failed: {reason(exc, typed=True)}",
                    hint="run without --last / --from to test those revisions too",
                ) from None
        self.applied = list(self.prepared)

    def _create_engine_databases(self, *, again: bool = False) -> None:
        try:
            for edb in self.engines.values():
                edb.recreate() if again else edb.create()
        except DbopsError as exc:
            raise RoundTripToolError("cannot create the per-engine throwaway databases", exc.message) from None
        except sa.exc.SQLAlchemyError as exc:
            raise RoundTripToolError("cannot create the per-engine throwaway databases", reason(exc)) from None

    def rebuild(self, applied: Sequence[Script]) -> None:
        """The database with exactly ``applied`` applied, cleanly: from the checkpoint, then a new checkpoint.

        Raises RoundTripToolError when a database operation of ours fails; the
        migrations' own errors (replaying a revision) pass through.
        """
        applied = list(applied)
        self.close()
        self.rebuilds += 1
        base = self.checkpoint
        if self.multidb:
            self._create_engine_databases(again=True)  # multidb: no checkpoints, every rebuild from scratch
        usable = base is not None and [s.revision for s in applied[: base[1]]] == [
            s.revision for s in self.applied[: base[1]]
        ]
        began = time.perf_counter()
        try:
            if usable:
                clone(self.db.server_url, base[0], self.db.name)
            else:
                self.db.recreate()
        except DbopsError as exc:
            raise RoundTripToolError("cannot rebuild the throwaway database", exc.message) from None
        except sa.exc.SQLAlchemyError as exc:
            raise RoundTripToolError("cannot rebuild the throwaway database", reason(exc)) from None
        create_ms = (time.perf_counter() - began) * 1000
        self._connect()
        began = time.perf_counter()
        if usable:
            todo = applied[base[1]:]
        else:
            self._set_up()
            todo = applied
        self.replayed += len(todo)
        self.runner.run(todo, upgrade=True)
        replay_ms = (time.perf_counter() - began) * 1000
        self.applied = applied
        # a new checkpoint costs about one database creation: worth it once replaying costs more (or
        # replays checkpoint_after revisions), so no rebuild replays more than about that much
        if not self.multidb and (len(todo) >= self.checkpoint_after or replay_ms > create_ms):
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Keep a copy of the database as it is now (``CREATE DATABASE … TEMPLATE``) to rebuild from."""
        name = f"{self.db.name}_ckpt"
        self.close()
        try:
            clone(self.db.server_url, self.db.name, name)
        except DbopsError as exc:
            raise RoundTripToolError("cannot make a checkpoint of the throwaway database", exc.message) from None
        except sa.exc.SQLAlchemyError as exc:
            raise RoundTripToolError("cannot make a checkpoint of the throwaway database", reason(exc)) from None
        self.checkpoint = (name, len(self.applied))
        self._connect()

    def snapshot(self, revision: str | None = None) -> schema_snapshot.SnapshotText:
        """The schema now, read on our own connection; a failure here is the tester's, never the revision's."""
        return self._later(revision).result()

    def _later(self, revision: str | None) -> _Reading:
        """Start reading the schema as it is now; its :class:`_Reading` (see :meth:`_step`'s gate).

        ``overlap`` False (and a multidb project, read on several connections)
        read it here and now.  Any failure is the tester's (RoundTripToolError).
        """
        if self._pending is not None:
            self._pending.result()  # one query out at a time
        try:
            if self.multidb:
                now = _combined({name: schema_snapshot.snapshot_text(conn) for name, conn in self.snap_conns.items()})
                return _Reading(lambda: now)
            assert self.reader is not None
            self.reader.start()
        except Exception as exc:
            raise _snapshot_failed(exc, revision) from None
        reader = self.reader
        reading = _Reading(lambda: self._finish(reader, revision))
        self._pending = reading
        if not self.overlap:
            reading.result()
        return reading

    def _finish(self, reader: schema_snapshot.SnapshotReader, revision: str | None) -> schema_snapshot.SnapshotText:
        self._pending = None
        if reader is not self.reader:
            raise RoundTripToolError("the schema snapshot failed", "its connection was closed while it was read",
                                     revision=revision)
        try:
            return reader.result()
        except Exception as exc:
            raise _snapshot_failed(exc, revision) from None

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
            return results
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
        irr = irreversible.check(script)
        self._progress(j, script, "up")
        while True:
            try:
                result.up_ms = self._step(script, True, gate=self._check_last if self._check else None)
                break
            except _Held as held:  # the previous revision failed its last check: rebuild, then upgrade this one
                before = self._failed(held.result, None)
            except (ModelImportError, RoundTripToolError):
                raise  # the project's setup or the tester, not this revision: stop the run
            except Exception as exc:
                result.result = FAILED
                result.problems.append(f"upgrade failed: {reason(exc, typed=True)}")
                result.problems.append("the walk stops here: later revisions need this one")
                raise _Stop from None
        self.applied.append(script)
        reading = self._later(rev)
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
        except (ModelImportError, RoundTripToolError):
            raise
        except Exception as exc:
            # its transaction rolled back: the database is usually still exactly as the upgrade left it,
            # which the next step's gate checks (else the database is rebuilt there)
            after = reading.result()
            self._note_noop(script, result, before, after)
            result.result = FAILED
            result.problems.append(f"downgrade failed: {reason(exc, typed=True)}")
            self._check = _Check(result, self._later(rev), after)
            return after
        after = reading.result()
        self._note_noop(script, result, before, after)
        reading = self._later(rev)

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
                result.problems.extend(
                    "  " + line for line in schema_snapshot.diff(before, back, before="before upgrade", after="after downgrade"))
                # upgrading again is only meaningful from the schema before: drop what it left behind (the
                # step's gate checks the schema is then exactly before), or rebuild with the revision applied
                if not self._drop_leftovers(before, back):
                    return self._failed(result, None)
                repaired = True
                reading = self._later(rev)
            except (ModelImportError, RoundTripToolError):
                raise
            except Exception as exc:
                return self._failed(result, f"upgrade after the downgrade failed: {reason(exc, typed=True)}")
        self._check = _Check(result, self._later(rev), after,
                             "upgrading again after the downgrade gave a different schema:")
        return after

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
        except RoundTripToolError:
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
    if not _revision_files(tuple(s.path for s in project.script.walk_revisions())).intersection(files):
        raise ModelImportError(_failing_file(exc), f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}") from None


@lru_cache(maxsize=8)
def _revision_files(paths: tuple[str, ...]) -> frozenset[str]:
    """The revision files, resolved: once per chain, not once per failing step."""
    return frozenset(str(Path(p).resolve()) for p in paths)


def engine_names(project: Project) -> list[str]:
    """The engines of a multi-database project (``databases = engine1, engine2`` in alembic.ini), else []."""
    raw = project.config().get_main_option("databases") or ""
    return [name for name in re.split(r",\s*", raw.strip()) if name]


def _combined(texts: dict[str, schema_snapshot.SnapshotText]) -> schema_snapshot.SnapshotText:
    """One snapshot of several databases: each object's schema prefixed with its engine (``engine1:public``)."""
    rows = []
    for name, snap in texts.items():
        for kind, schema, obj, rel, attrs in json.loads(snap.text):
            rows.append(json.dumps([kind, f"{name}:{schema}", obj, rel, attrs], separators=(",", ":")))
    return schema_snapshot.SnapshotText("[" + ",".join(rows) + "]")


def run_setup_sql(path: Path, url, *, timeout: float) -> None:
    """Run a setup file on the database at ``url`` as psql runs it, or restore a custom-format dump.

    Plain SQL (``pg_dump --schema-only`` output included, with its psql
    meta-commands such as ``\\restrict``) goes through ``psql -X -v
    ON_ERROR_STOP=1 -f``; an archive of ``pg_dump -Fc`` through ``pg_restore``.
    A failure is the user's file's: UsageError with psql's own message;
    ``timeout`` (seconds) bounds the run.
    """
    with path.open("rb") as fh:
        custom = fh.read(len(_CUSTOM_DUMP)) == _CUSTOM_DUMP
    program = "pg_restore" if custom else "psql"
    try:
        exe = str(clients.find(program))
    except DbopsError as exc:
        raise RoundTripToolError(f"cannot run --setup-sql: no {program}", exc.message) from None
    target = clients.conninfo_args(url)
    if custom:
        argv = [exe, *target, "--no-owner", "--no-privileges", "--exit-on-error", "-d", clients.dbname_arg(url),
                str(path)]
    else:
        argv = [exe, "-X", "-q", "-v", "ON_ERROR_STOP=1", *target, "-d", clients.dbname_arg(url), "-f", str(path)]
    try:
        clients.run(argv, timeout=timeout, env=clients.libpq_env(url))
    except ToolFailed as exc:
        if exc.returncode is None:
            raise UsageError(
                f"--setup-sql {path} did not finish within {timeout:g} s in {program}",
                details=exc.stderr_tail or None,
                hint="raise DBOPS_ROLLBACK_SETUP_TIMEOUT (seconds) if the file is this slow on purpose",
            ) from None
        raise UsageError(
            f"--setup-sql {path} failed in {program} ({'custom-format dump' if custom else 'SQL'}) "
            "on the empty throwaway database",
            details=exc.stderr_tail or None,
            hint="fix the file: it must run without errors on an empty database, as psql runs it "
            "(plain SQL or the output of pg_dump --schema-only), or be a pg_dump custom-format archive",
        ) from None


class _Stop(Exception):
    """The walk cannot go on (an upgrade failed, or the database could not be rebuilt)."""


def _snapshot_failed(exc: Exception, revision: str | None) -> RoundTripToolError:
    return RoundTripToolError("the schema snapshot failed", reason(exc, typed=True), revision=revision)


class _Reading:
    """A snapshot on its way: ``result()`` waits for it once, then keeps its value (or its error)."""

    __slots__ = ("_error", "_get", "_value")

    def __init__(self, get: Callable[[], schema_snapshot.SnapshotText]):
        self._get: Callable[[], schema_snapshot.SnapshotText] | None = get
        self._value: schema_snapshot.SnapshotText | None = None
        self._error: BaseException | None = None

    def result(self) -> schema_snapshot.SnapshotText:
        if self._get is not None:
            get, self._get = self._get, None
            try:
                self._value = get()
            except BaseException as exc:
                self._error = exc
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


@dataclass
class _Check:
    """A revision's last check, done at the next step's gate: the schema being read must equal ``expected``.

    ``title`` heads the diff in the revision's problems (None: the problem is
    told already, as for a failed downgrade, and a difference only means the
    database is rebuilt).
    """

    result: RevisionResult
    reading: _Reading
    expected: schema_snapshot.SnapshotText
    title: str | None = None


class _Held(Exception):
    """A step stopped at its gate: the snapshot before it showed a failure (``result``: whose)."""

    def __init__(self, result: RevisionResult):
        super().__init__(result.revision)
        self.result = result
