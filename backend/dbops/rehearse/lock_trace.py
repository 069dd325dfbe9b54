"""The tracer: every statement the migration connection runs, with the locks, scans and rewrites it caused.

Hooked on the migration connection's engine through SQLAlchemy's
``before_cursor_execute`` / ``after_cursor_execute`` events, so it sees the SQL
the cursor really ran (``op.execute``, ``op.get_bind().execute(...)`` in a
data migration, Alembic's own ``alembic_version`` updates), rendered with its
parameters by the driver (``cursor.mogrify``).

**env.py's own connection is followed.**  Most env.py files build an engine of
their own from their settings instead of using the connection dbops hands
them; dbops' fence points those settings at the copy.  With ``follow`` (the
copy's URL), the events are heard on every engine, and a statement on a
connection to the copy, run on the thread that runs the upgrade, is traced
like one on dbops' connection: the lock sample and the schema snapshot run on
that statement's own connection (its backend, its transaction), and the
observer watches that backend.  What still escapes (a raw DBAPI cursor, a
connection to another database) is caught by the rehearsal: a revision that
does something but left no statement is an error.

For each statement it records:

- where it came from: the frame of the Python stack that is in a revision
  file (file, line) - Alembic's version updates are named by the revision
  they write;
- its duration (wall time of the cursor's execute);
- the relation locks of the migration backend after it (``pg_locks`` where
  ``pid`` is the backend's, read on the same connection inside the still open
  transaction, where locks stay until commit) against those it held before,
  and - from a second "observer" connection (:mod:`.observer`) polling ``pg_locks`` while the
  statement runs - locks that an autocommit statement (``CREATE INDEX
  CONCURRENTLY``) holds only while it runs;
- rewrites: a table or index whose ``relfilenode`` changed;
- scans: this transaction's sequential scans (``pg_stat_get_xact_numscans``)
  of a table under a lock that blocks writes grew (a validating scan: ``SET
  NOT NULL``, a foreign key or CHECK added without ``NOT VALID``, an index
  build).  The after-statement sample is one light ``pg_locks`` query; file
  nodes and scan counts are read only under blocking locks.

The connection's ``commit`` / ``rollback`` events end a transaction: every
lock taken in it is then held from the start of the statement that took it
until that moment.  The tracer's own queries run on raw DBAPI cursors (no
events) and their time is subtracted from durations and hold times.
"""

from __future__ import annotations

import linecache
import logging
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from ..postgres import schema_snapshot
from .observer import LockObserver

log = logging.getLogger(__name__)

_VERSION_WRITE = re.compile(
    r"^\s*(?:UPDATE\s+alembic_version\s+SET\s+version_num\s*=\s*'(?P<up>[^']+)'"
    r"|INSERT\s+INTO\s+alembic_version\s*\(version_num\)\s*VALUES\s*\('(?P<ins>[^']+)'\))",
    re.IGNORECASE,
)
_VERSION_DELETE = re.compile(r"^\s*DELETE\s+FROM\s+alembic_version\b", re.IGNORECASE)

#: lock modes that block the application's writes or reads (findings.BLOCKS); under them a rewrite or scan matters
_BLOCKING = "('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')"

#: the backend's relation locks right after a statement (one light query: pg_locks only); under a blocking lock
#: also the relation's file node (a rewrite changes it) and this transaction's sequential scans of it
_LOCKS_SQL = f"""
SELECT l.relation::bigint, l.mode,
       CASE WHEN l.mode IN {_BLOCKING} THEN pg_relation_filenode(l.relation)::bigint END,
       CASE WHEN l.mode IN {_BLOCKING} THEN pg_stat_get_xact_numscans(l.relation) END
FROM pg_locks l
WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted AND l.relation >= 16384
"""

#: every user table and index before the run: oid, name, kind, file node, owning table, rows, total size
BASELINE_SQL = """
SELECT c.oid::bigint, n.nspname, c.relname, c.relkind, c.relfilenode::bigint, coalesce(i.indrelid, c.oid)::bigint,
       c.reltuples::bigint, CASE WHEN c.relkind IN ('r', 'p', 'm') THEN pg_total_relation_size(c.oid) END
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
WHERE c.relkind IN ('r', 'p', 'm', 'i', 'I', 'S', 'v', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
  AND n.nspname NOT LIKE 'pg\\_temp%'
"""

_NAMES_SQL = """
SELECT c.oid::bigint, n.nspname, c.relname, c.relkind, coalesce(i.indrelid, c.oid)::bigint,
       pg_relation_filenode(c.oid)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_index i ON i.indexrelid = c.oid
WHERE c.oid::bigint = ANY (%s::bigint[]) AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
"""


def qualified(schema: str, name: str) -> str:
    return name if schema == "public" else f"{schema}.{name}"


@dataclass
class Relation:
    """A table or index as the tracer knows it (from the baseline, or first seen locked)."""

    oid: int
    name: str
    kind: str  # pg_class.relkind
    filenode: int | None
    #: the table an index belongs to (a table's own oid)
    table_oid: int
    #: existed before the rehearsal started (False: created by a pending revision)
    existing: bool


@dataclass
class Lock:
    """One relation lock a statement took (it was not held before the statement)."""

    relation: str
    table: str
    mode: str
    table_oid: int
    #: seconds from the start of the statement that took it until its transaction ended (None: still open)
    held_s: float | None = None
    #: seen only by the observer while the statement ran (an autocommit statement's lock)
    while_running: bool = False
    #: on a relation the pending revisions created: invisible to the application until it commits
    new: bool = False


@dataclass
class Statement:
    """One statement the migration connection ran, and what it did."""

    index: int
    revision: str | None
    sql: str
    #: the revision file and line of the operation (None: Alembic's own statement)
    file: str | None = None
    line: int | None = None
    code: str | None = None
    duration_s: float = 0.0
    autocommit: bool = False
    locks: list[Lock] = field(default_factory=list)
    #: tables and indexes whose relfilenode changed
    rewrites: list[str] = field(default_factory=list)
    #: tables sequentially scanned by the statement
    scans: list[str] = field(default_factory=list)
    #: executemany: how many parameter sets (the SQL shows the first)
    batch: int = 1
    error: str | None = None
    #: the tables (oids) the statement's locks, rewrites and scans concern
    table_oids: set[int] = field(default_factory=set)
    #: internal: when it started, on the tracer's clock (overhead excluded)
    started: float = 0.0

    @property
    def is_version_write(self) -> bool:
        """Alembic's own bookkeeping: the write of the revision to ``alembic_version``."""
        return bool(_VERSION_WRITE.match(self.sql) or _VERSION_DELETE.match(self.sql))


@dataclass
class Transaction:
    """The statements between a begin and its commit or rollback."""

    #: (relation oid, mode) -> (lock, the statement's start)
    locks: dict[tuple[int, str], tuple[Lock, float]] = field(default_factory=dict)
    #: seq_scan counters of this transaction so far, per relation oid
    scans: dict[int, int] = field(default_factory=dict)


class Tracer:
    """Attach to ``conn`` (the migration connection, on an engine of its own) while the upgrade runs.

    ``follow``: the copy's URL; connections env.py opens to it (same port and database) are traced too.
    """

    def __init__(self, conn: Connection, revision_files: dict[str, str], *, observer_url: URL | None = None,
                 follow: URL | None = None):
        self.conn = conn
        self.engine = conn.engine
        self._follow = (follow.port or 5432, follow.database) if follow is not None else None
        #: the thread that runs the upgrade (set on entry): only its connections are env.py's
        self._thread: int | None = None
        #: id(DBAPI connection) -> its backend's pid, for each connection seen
        self._pids: dict[int, int] = {}
        #: resolved revision file path -> revision id
        self.revision_files = revision_files
        self._frame_cache: dict[str, str | None] = {}
        self.statements: list[Statement] = []
        self.current_revision: str | None = None
        self.relations: dict[int, Relation] = {}
        #: locked relations that are none of ours (TOAST, temporary)
        self._ignored: set[int] = set()
        #: revision -> the schema snapshot right after its last statement
        self.snapshots: dict[str, schema_snapshot.SnapshotText] = {}
        self.before: schema_snapshot.SnapshotText | None = None
        self.overhead_s = 0.0
        #: id(DBAPI connection) -> its open transaction
        self._txs: dict[int, Transaction] = {}
        self._busy = False
        #: the statement running now, with the connection it runs on (SQLAlchemy's and the DBAPI's)
        self._pending: tuple[Statement, Connection, object] | None = None
        self._observer = LockObserver(observer_url) if observer_url is not None else None
        self.pid: int | None = None

    # -- clock: wall time minus the tracer's own work -------------------------
    def clock(self) -> float:
        return time.perf_counter() - self.overhead_s

    # -- lifecycle ------------------------------------------------------------
    def baseline(self) -> list[tuple]:
        """Read the relations that exist now (and the schema); returns the baseline rows (for table facts)."""
        rows = self._raw(BASELINE_SQL)
        for oid, schema, name, kind, filenode, table_oid, _rows, _size in rows:
            self.relations[oid] = Relation(oid, qualified(schema, name), kind, filenode, table_oid, True)
        self.pid = self._raw("SELECT pg_backend_pid()")[0][0]
        self._pids[id(self._dbapi())] = self.pid
        self.before = schema_snapshot.snapshot_text(self.conn)
        if self.conn.in_transaction():
            self.conn.commit()
        return rows

    def _events(self) -> list[tuple[object, str, object]]:
        target = sa.engine.Engine if self._follow is not None else self.engine  # every engine: env.py's too
        return [(target, "before_cursor_execute", self._before), (target, "after_cursor_execute", self._after),
                (target, "handle_error", self._error), (target, "commit", self._commit),
                (target, "rollback", self._rollback)]

    def __enter__(self) -> Self:
        self._thread = threading.get_ident()
        for target, name, fn in self._events():
            sa.event.listen(target, name, fn)
        if self._observer is not None:
            self._observer.start(self.pid)
        return self

    def __exit__(self, *exc) -> None:
        for target, name, fn in self._events():
            sa.event.remove(target, name, fn)
        if self._observer is not None:
            self._observer.stop()
        for key in list(self._txs):
            self._end_transaction(key)

    def _traced(self, conn) -> bool:
        """A statement on ``conn`` is the migration's: dbops' connection, or (following) env.py's to the copy."""
        try:
            dbapi = conn.connection.dbapi_connection
        except Exception:  # closed or invalidated: nothing to trace on it
            return False
        if conn is self.conn or dbapi is self._dbapi():
            return True
        if self._follow is None or threading.get_ident() != self._thread:
            return False
        url = conn.engine.url
        return (url.port or 5432, url.database) == self._follow

    def _pid(self, dbapi) -> int | None:
        """The backend pid of a connection (from the driver, else asked once); the observer watches it."""
        key = id(dbapi)
        if key not in self._pids:
            pid = getattr(getattr(dbapi, "info", None), "backend_pid", None)  # psycopg2, psycopg 3
            if pid is None:
                try:
                    pid = self._raw("SELECT pg_backend_pid()", dbapi=dbapi)[0][0]
                except Exception as exc:
                    log.warning("rehearsal trace: the backend of env.py's connection is unknown: %s", exc)
            self._pids[key] = pid
        return self._pids[key]

    # -- the events -----------------------------------------------------------
    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self._busy or not self._traced(conn):
            return
        t0 = time.perf_counter()
        try:
            dbapi = conn.connection.dbapi_connection
            pid = self._pid(dbapi)
            if self._observer is not None and pid is not None:
                self._observer.pid = pid
            params = parameters[0] if executemany and parameters else parameters
            try:
                sql = cursor.mogrify(statement, params).decode(errors="replace")
            except Exception:
                sql = statement
            stmt = Statement(len(self.statements) + 1, None, sql.strip(),
                             batch=len(parameters) if executemany and parameters else 1)
            self._locate(stmt)
            stmt.autocommit = bool(getattr(dbapi, "autocommit", False))
            if not stmt.autocommit:
                self._txs.setdefault(id(dbapi), Transaction())
            self.statements.append(stmt)
            self._pending = (stmt, conn, dbapi)
        finally:
            self.overhead_s += time.perf_counter() - t0
        stmt.started = self.clock()
        if self._observer is not None:
            self._observer.begin()

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if self._busy or self._pending is None:
            return
        self._finish(*self._pending)

    def _error(self, context) -> None:
        if self._pending is None or self._busy:
            return
        stmt = self._pending[0]
        lines = str(getattr(context, "original_exception", "") or "").strip().splitlines()
        stmt.error = lines[0] if lines else "failed"
        self._finish(*self._pending, failed=True)

    def _commit(self, conn) -> None:
        if not self._busy and self._traced(conn):
            self._end_transaction(id(conn.connection.dbapi_connection))

    def _rollback(self, conn) -> None:
        if not self._busy and self._traced(conn):
            self._end_transaction(id(conn.connection.dbapi_connection))

    # -- the work -------------------------------------------------------------
    def _finish(self, stmt: Statement, conn: Connection, dbapi, *, failed: bool = False) -> None:
        stmt.duration_s = max(self.clock() - stmt.started, 0.0)
        self._pending = None
        seen = self._observer.end() if self._observer is not None else set()
        t0 = time.perf_counter()
        self._busy = True
        try:
            if not failed:
                self._sample(stmt, seen, dbapi)
                if stmt.is_version_write and stmt.revision and not stmt.autocommit:
                    self.snapshots[stmt.revision] = schema_snapshot.snapshot_text(conn)
        except Exception as exc:
            log.warning("rehearsal trace: could not sample after statement %d: %s", stmt.index, exc)
        finally:
            self._busy = False
            self.overhead_s += time.perf_counter() - t0
        if stmt.autocommit:  # its locks ended with it
            for lock in stmt.locks:
                lock.held_s = stmt.duration_s

    def _sample(self, stmt: Statement, seen_running: set[tuple[int, str]], dbapi) -> None:
        """The locks, rewrites and scans after ``stmt``, read on its own connection (``dbapi``: its backend)."""
        tx = self._txs.setdefault(id(dbapi), Transaction()) if not stmt.autocommit else Transaction()
        rows = self._raw(_LOCKS_SQL, dbapi=dbapi)
        self._resolve({oid for oid, *_ in rows} | {oid for oid, _ in seen_running}, dbapi)
        now_held = set()
        for oid, mode, filenode, scans in rows:
            rel = self.relations.get(oid)
            if rel is None:  # a TOAST table, a temporary one
                continue
            now_held.add((oid, mode))
            if filenode is not None:
                if rel.existing and rel.filenode and filenode != rel.filenode and rel.name not in stmt.rewrites:
                    stmt.rewrites.append(rel.name)
                    stmt.table_oids.add(rel.table_oid)
                rel.filenode = filenode
            if scans is not None and rel.kind in ("r", "p", "m") and scans > tx.scans.get(oid, 0):
                if rel.existing and rel.name not in stmt.scans:
                    stmt.scans.append(rel.name)
                    stmt.table_oids.add(oid)
                tx.scans[oid] = scans
            if (oid, mode) not in tx.locks:
                lock = Lock(rel.name, self._table_name(rel), _mode(mode), rel.table_oid, new=not rel.existing)
                tx.locks[(oid, mode)] = (lock, stmt.started)
                stmt.locks.append(lock)
                stmt.table_oids.add(rel.table_oid)
        for oid, mode in sorted(seen_running - now_held):
            rel = self.relations.get(oid)
            if rel is not None and (oid, mode) not in tx.locks:
                stmt.locks.append(Lock(rel.name, self._table_name(rel), _mode(mode), rel.table_oid,
                                       while_running=True, new=not rel.existing))
                stmt.table_oids.add(rel.table_oid)

    def _resolve(self, oids: set[int], dbapi) -> None:
        """Name the relations first seen locked (created by the run); system and TOAST ones are left out for good."""
        unknown = [oid for oid in oids if oid not in self.relations and oid not in self._ignored]
        if not unknown:
            return
        for oid, schema, name, kind, table_oid, filenode in self._raw(_NAMES_SQL, (unknown,), dbapi=dbapi):
            self.relations[oid] = Relation(oid, qualified(schema, name), kind, filenode, table_oid, False)
        self._ignored.update(oid for oid in unknown if oid not in self.relations)

    def _end_transaction(self, key: int) -> None:
        tx = self._txs.pop(key, None)
        if tx is None:
            return
        end = self.clock()
        for lock, started in tx.locks.values():
            lock.held_s = max(end - started, 0.0)

    def _table_name(self, rel: Relation) -> str:
        table = self.relations.get(rel.table_oid)
        return table.name if table is not None else rel.name

    def _locate(self, stmt: Statement) -> None:
        """The revision file frame on the stack (file, line, code); or the revision an alembic_version write names."""
        m = _VERSION_WRITE.match(stmt.sql)
        if m:
            stmt.revision = m.group("up") or m.group("ins")
            self.current_revision = stmt.revision
            return
        frame = sys._getframe(2)
        while frame is not None:
            filename = frame.f_code.co_filename
            rev = self._frame_cache.get(filename, False)
            if rev is False:
                try:
                    rev = self.revision_files.get(str(Path(filename).resolve()))
                except OSError:
                    rev = None
                self._frame_cache[filename] = rev
            if rev is not None:
                stmt.revision, stmt.file, stmt.line = rev, filename, frame.f_lineno
                stmt.code = _source_line(filename, frame.f_lineno)
                self.current_revision = rev
                return
            frame = frame.f_back
        stmt.revision = self.current_revision

    def _dbapi(self):
        return self.conn.connection.dbapi_connection

    def _raw(self, sql: str, params: tuple | None = None, *, dbapi=None) -> list[tuple]:
        """A query on a DBAPI cursor of the migration connection (``dbapi``: the statement's own; default dbops'):
        no SQLAlchemy events, same transaction."""
        cur = (dbapi or self._dbapi()).cursor()
        try:
            cur.execute(sql, params)
            return cur.fetchall()
        finally:
            cur.close()


_MODES = {
    "AccessShareLock": "ACCESS SHARE",
    "RowShareLock": "ROW SHARE",
    "RowExclusiveLock": "ROW EXCLUSIVE",
    "ShareUpdateExclusiveLock": "SHARE UPDATE EXCLUSIVE",
    "ShareLock": "SHARE",
    "ShareRowExclusiveLock": "SHARE ROW EXCLUSIVE",
    "ExclusiveLock": "EXCLUSIVE",
    "AccessExclusiveLock": "ACCESS EXCLUSIVE",
}


def _mode(mode: str) -> str:
    return _MODES.get(mode, mode)


def _source_line(filename: str, lineno: int) -> str | None:
    line = linecache.getline(filename, lineno).strip()
    return line or None
