"""The throwaway database the stairway works on: its connections, schema snapshots, rebuilds from checkpoints.

Every snapshot is read on a connection of our own, whatever env.py uses;
a snapshot that cannot be read is the tester's failure
(:class:`~dbops.errors.RoundTripToolError`), never a revision's.  Snapshots
are computed by the server while the next step starts (the query goes out
in psycopg2's asynchronous mode, :class:`~dbops.postgres.schema_snapshot.SnapshotReader`):
:meth:`Workbench.later` starts one and hands back a :class:`Reading` that
waits for it when asked.  With ``DBOPS_ROLLBACK_SNAPSHOTS=tracked`` the reader
re-reads only what each step touched
(:class:`~dbops.postgres.schema_snapshot.TrackedReader`; the same texts), and
the walk takes its tracker out of the database before the models check.

A rebuild (after a step raised, or an upgrade again gave another schema)
starts from the latest *checkpoint* (``CREATE DATABASE … TEMPLATE`` of the
database as it was at the previous failure) and replays only the revisions
since, and then becomes the next checkpoint: all rebuilds of a run together
replay each revision at most once, so a failure costs a constant.

A multi-database project (``databases = engine1, engine2``, Alembic's
multidb template) gets one throwaway database per engine, named after ours,
snapshotted together (and rebuilt from scratch: no checkpoints).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic.script import Script
from sqlalchemy.engine import Connection

from .. import postgres
from ..errors import DbopsError, RoundTripToolError
from ..migrations import Project
from ..migrations.runner import StepRunner
from ..postgres import schema_snapshot
from ..redact import reason
from ..servers.throwaway import ThrowawayDatabase, clone
from ..settings import Settings
from . import since
from .setup_sql import run_setup_sql

log = logging.getLogger(__name__)

SetupHook = Callable[[Connection], None]


class Workbench:
    """The throwaway database ``db`` (and the per-engine ones of a multidb project), set up for a walk.

    ``overlap`` (class attribute): read each snapshot while the next step
    starts; False reads it before (``bench/roundtrip`` times both).

    ``settings`` gives ``rollback_checkpoint_after`` (a rebuild that replayed
    this many revisions leaves a checkpoint), ``rollback_setup_timeout_s``
    (the limit of ``--setup-sql`` in psql / pg_restore) and where psql /
    pg_restore are found.
    """

    overlap = True

    def __init__(self, settings: Settings, project: Project, db: ThrowawayDatabase, *,
                 setup_sql: Path | None = None, setup: SetupHook | None = None):
        self.checkpoint_after = settings.rollback_checkpoint_after
        #: ``DBOPS_ROLLBACK_SNAPSHOTS``: tracked (re-read only what each step touched, on a large enough
        #: schema: :class:`~dbops.postgres.schema_snapshot.TrackedReader`), full (every snapshot reads the
        #: whole catalog), verify (tracked at every size, each one checked against a whole one: tests)
        self.snapshots = settings.rollback_snapshots
        #: why tracked snapshots were not used (or stopped being used), said once in the report
        self.tracker_note: str | None = None
        self.setup_timeout_s = settings.rollback_setup_timeout_s
        self.places = settings.client_places
        self.project = project
        self.db = db
        self.setup_sql = Path(setup_sql) if setup_sql is not None else None
        self.setup = setup
        self.engine: sa.Engine | None = None
        self.conn: Connection | None = None
        #: the snapshots' own connection (asynchronous: the server reads while a step starts)
        self.reader: schema_snapshot.SnapshotReader | None = None
        #: the snapshot being read, if any (one at a time on ``reader``)
        self._pending: Reading | None = None
        self.runner: StepRunner | None = None
        #: revisions applied so far, in order
        self.applied: list[Script] = []
        #: the checkpoint database and how many of ``applied`` it holds (None: none yet)
        self.checkpoint: tuple[str, int] | None = None
        #: ``--since``: the cached archive of the chain at REF and the revisions it holds (rebuilds start there)
        self.base_archive: tuple[Path, list[str]] | None = None
        #: rebuilds done, and revisions they replayed (the cost of failures)
        self.rebuilds = 0
        self.replayed = 0
        #: a multi-database project: one throwaway database per engine, named after ours
        self.engines: dict[str, ThrowawayDatabase] = {
            name: ThrowawayDatabase(db.server_url, f"{db.name}_{name}"[:63]) for name in engine_names(project)
        }
        self.snap_conns: dict[str, Connection] = {}

    @property
    def multidb(self) -> bool:
        return bool(self.engines)

    # -- connections -------------------------------------------------------------------
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
                if self.snapshots == "full":
                    self.reader = schema_snapshot.SnapshotReader(self.db.url)
                else:
                    self.reader = schema_snapshot.TrackedReader(self.db.url, verify=self.snapshots == "verify")
                    self._tracker_lost()
            except Exception as exc:
                raise RoundTripToolError("cannot connect to the throwaway database",
                                         reason(exc, self.db.url)) from None
        self.runner = StepRunner(self.project, self.db.url, self.conn,
                                 sections={name: edb.url for name, edb in self.engines.items()})

    def _tracker_lost(self) -> None:
        """Keep the first reason the tracked reader reads whole snapshots (the report says it once)."""
        reader = self.reader
        if isinstance(reader, schema_snapshot.TrackedReader) and reader.lost and self.tracker_note is None:
            self.tracker_note = f"every snapshot read whole from here on: {reader.lost}"
            log.warning("%s", self.tracker_note)

    def untrack(self) -> None:
        """Take the snapshot tracker out of the database (before the models check sees it); no-op without one."""
        reader = self.reader
        if not isinstance(reader, schema_snapshot.TrackedReader) or not reader.installed:
            return
        if self._pending is not None:
            self._pending.result()
        try:
            reader.uninstall()
        except Exception as exc:
            raise RoundTripToolError("cannot take the schema tracker out of the throwaway database",
                                     reason(exc, typed=True)) from None

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
            run_setup_sql(self.setup_sql, self.db.url, timeout=self.setup_timeout_s, places=self.places)
        if self.setup:
            self.setup(self.conn)
            if self.conn.in_transaction():
                self.conn.commit()

    def _create_engine_databases(self, *, again: bool = False) -> None:
        try:
            for edb in self.engines.values():
                edb.recreate() if again else edb.create()
        except DbopsError as exc:
            raise RoundTripToolError("cannot create the per-engine throwaway databases", exc.message) from None
        except sa.exc.SQLAlchemyError as exc:
            raise RoundTripToolError("cannot create the per-engine throwaway databases", reason(exc)) from None

    # -- rebuilds --------------------------------------------------------------------
    def rebuild(self, applied: Sequence[Script], *, fresh: bool = False) -> None:
        """The database with exactly ``applied`` applied, cleanly: from the checkpoint, then a new checkpoint.

        ``fresh``: from nothing, as a fresh install builds it (one env.py run
        from the base, one migration context), never from the checkpoint; the
        result is always the new checkpoint, so later rebuilds never replay
        those revisions on their own again.
        Raises RoundTripToolError when a database operation of ours fails; the
        migrations' own errors (replaying a revision) pass through.
        """
        applied = list(applied)
        self.close()
        self.rebuilds += 1
        base = self.checkpoint
        if self.multidb:
            self._create_engine_databases(again=True)  # multidb: no checkpoints, every rebuild from scratch
        usable = not fresh and base is not None and [s.revision for s in applied[: base[1]]] == [
            s.revision for s in self.applied[: base[1]]
        ]
        archived = self.base_archive if not usable and not fresh and self.base_archive is not None and [
            s.revision for s in applied[: len(self.base_archive[1])]] == self.base_archive[1] else None
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
        elif archived is not None:
            since.restore(archived[0], self.db.url, places=self.places)
            todo = applied[len(archived[1]):]
        else:
            self._set_up()
            todo = applied
        self.replayed += len(todo)
        self.runner.run(todo, upgrade=True)
        replay_ms = (time.perf_counter() - began) * 1000
        self.applied = applied
        # a new checkpoint costs about one database creation: worth it once replaying costs more (or
        # replays checkpoint_after revisions), so no rebuild replays more than about that much
        if not self.multidb and (fresh or len(todo) >= self.checkpoint_after or replay_ms > create_ms):
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

    # -- snapshots -------------------------------------------------------------------
    def snapshot(self, revision: str | None = None) -> schema_snapshot.SnapshotText:
        """The schema now, read on our own connection; a failure here is the tester's, never the revision's."""
        return self.later(revision).result()

    def later(self, revision: str | None) -> Reading:
        """Start reading the schema as it is now; its :class:`Reading` (the stairway waits for it at a step's gate).

        ``overlap`` False (and a multidb project, read on several connections)
        read it here and now.  Any failure is the tester's (RoundTripToolError).
        """
        if self._pending is not None:
            self._pending.result()  # one query out at a time
        try:
            if self.multidb:
                now = _combined({name: schema_snapshot.snapshot_text(conn) for name, conn in self.snap_conns.items()})
                return Reading(lambda: now)
            assert self.reader is not None
            self.reader.start()
        except Exception as exc:
            raise _snapshot_failed(exc, revision) from None
        reader = self.reader
        reading = Reading(lambda: self._finish(reader, revision))
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
        finally:
            self._tracker_lost()


class Reading:
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


def _snapshot_failed(exc: Exception, revision: str | None) -> RoundTripToolError:
    return RoundTripToolError("the schema snapshot failed", reason(exc, typed=True), revision=revision)
