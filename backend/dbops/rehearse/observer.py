"""The second connection of the tracer: it samples the migration backend's locks while a statement runs."""

from __future__ import annotations

import logging
import threading
import time

import psycopg2
from sqlalchemy.engine import URL

log = logging.getLogger(__name__)

#: how often the observer connection samples ``pg_locks`` while a statement runs (seconds)
SAMPLE_INTERVAL_S = 0.01

_OBSERVE_SQL = "SELECT relation::bigint, mode FROM pg_locks WHERE pid = %s AND locktype = 'relation' AND granted"


class LockObserver:
    """A second connection that samples the migration backend's locks while a statement runs.

    Locks a transaction takes stay until it commits, so the sample after each
    statement sees them; an autocommit statement's locks end with it, and only
    this observer sees them.  The main thread only writes two numbers per
    statement (no lock, no wake-up): the observer thread looks every
    :data:`SAMPLE_INTERVAL_S` and samples when a statement has run that long.
    """

    def __init__(self, url: URL):
        self.url = url
        self._conn = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: (statement number, its start on perf_counter), or None between statements: replaced whole, never mutated
        self._current: tuple[int, float] | None = None
        self._generation = 0
        #: statement number -> the locks seen while it ran
        self._seen: dict[int, set[tuple[int, str]]] = {}
        self.pid: int | None = None

    def start(self, pid: int) -> None:
        self.pid = pid
        u = self.url
        try:
            self._conn = psycopg2.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                                          dbname=u.database, application_name="dbops rehearse observer",
                                          connect_timeout=10, **{k: v for k, v in u.query.items()
                                                                 if isinstance(v, str)})
            self._conn.autocommit = True
        except Exception as exc:
            log.warning("rehearsal: the lock observer could not connect: %s", exc)
            self._conn = None
            return
        self._thread = threading.Thread(target=self._loop, name="dbops-rehearse-observer", daemon=True)
        self._thread.start()

    def begin(self) -> None:
        self._generation += 1
        self._current = (self._generation, time.perf_counter())

    def end(self) -> set[tuple[int, str]]:
        current, self._current = self._current, None
        return self._seen.pop(current[0], set()) if current else set()

    def _loop(self) -> None:
        cur = self._conn.cursor()
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            current = self._current
            if current is None or time.perf_counter() - current[1] < SAMPLE_INTERVAL_S:
                continue
            try:
                cur.execute(_OBSERVE_SQL, (self.pid,))
                rows = cur.fetchall()
            except Exception as exc:
                log.warning("rehearsal: the lock observer stopped: %s", exc)
                return
            if self._current is current:  # still the same statement: its locks
                self._seen.setdefault(current[0], set()).update((int(oid), mode) for oid, mode in rows)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:
                log.debug("rehearsal: closing the observer: %s", exc)
