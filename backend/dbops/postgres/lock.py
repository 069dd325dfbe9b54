"""One deploy at a time: a session advisory lock held on a dedicated connection.

The holder's connection carries an ``application_name`` naming the command,
environment, host and pid; a waiter reads it (with the backend's start time)
from ``pg_locks`` joined to ``pg_stat_activity`` to say who holds the lock and
since when.  The lock goes away with the holder's connection, so a killed
deploy never leaves it behind.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

from .. import postgres
from ..clock import show, stamp
from ..errors import LockBusy
from ..settings import Settings

log = logging.getLogger(__name__)

#: the two int4 halves of the advisory lock key: 'dbop' and 'depl' in ASCII
LOCK_KEY = (0x64626F70, 0x6465706C)


def holder_name(command: str, env: str) -> str:
    """``application_name`` of the lock holder (Postgres keeps 63 bytes)."""
    host = socket.gethostname()[:24]
    return f"dbops {command} {env} {host} pid={os.getpid()} {stamp()}"[:63]


@dataclass
class Holder:
    application_name: str
    pid: int
    since: str | None
    client: str | None

    def describe(self) -> str:
        where = f" from {self.client}" if self.client else ""
        return f"'{self.application_name}' (backend pid {self.pid}{where})"


def current_holder(conn: Connection) -> Holder | None:
    row = conn.execute(
        sa.text(
            """
            SELECT a.application_name, a.pid, a.backend_start, host(a.client_addr)
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted
              AND l.classid = :k1 AND l.objid = :k2 AND l.objsubid = 2
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """
        ),
        {"k1": LOCK_KEY[0], "k2": LOCK_KEY[1]},
    ).first()
    if row is None:
        return None
    return Holder(row[0] or "(no application_name)", row[1], show(row[2]) if row[2] else None, row[3])


class DeployLock:
    """``with DeployLock(url, name, wait_s):`` holds the lock for the block; raises LockBusy after ``wait_s``."""

    def __init__(self, url: URL, application_name: str, *, wait_s: float, connect_timeout: int = 10):
        self.url = url
        self.application_name = application_name
        self.wait_s = wait_s
        self.connect_timeout = connect_timeout
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self.waited_s = 0.0

    def _try(self) -> bool:
        assert self._conn is not None
        got = self._conn.execute(sa.text("SELECT pg_try_advisory_lock(:k1, :k2)"),
                                 {"k1": LOCK_KEY[0], "k2": LOCK_KEY[1]})
        return bool(got.scalar())

    def acquire(self) -> None:
        self._engine = postgres.make_engine(
            self.url,
            connect_timeout=self.connect_timeout,
            autocommit=True,
            connect_args={"connect_timeout": self.connect_timeout, "application_name": self.application_name},
        )
        try:
            self._conn = self._engine.connect()
        except sa.exc.OperationalError as exc:
            self._engine.dispose()
            raise postgres.unreachable(self.url, exc, None) from None
        start = time.monotonic()
        retrying = Retrying(
            stop=stop_after_delay(self.wait_s),
            wait=wait_exponential(multiplier=0.1, max=2),
            retry=retry_if_result(lambda got: not got),
            before_sleep=lambda state: log.info("deploy lock busy; waiting up to %.0fs", self.wait_s),
        )
        try:
            retrying(self._try)
        except RetryError:
            self.waited_s = time.monotonic() - start
            holder = current_holder(self._conn)
            self.release()
            raise LockBusy(
                holder.describe() if holder else "(holder has just finished)",
                holder.since if holder else None,
                self.waited_s,
            ) from None
        self.waited_s = time.monotonic() - start

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock_all()"))
            except sa.exc.SQLAlchemyError:  # the connection is gone: so is the lock
                pass
            self._conn.close()
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> DeployLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def hold(settings: Settings, url: URL, command: str) -> Iterator[DeployLock]:
    """The deploy lock for a block, held as ``command`` on ``settings.env``; LockBusy after DBOPS_DEPLOY_LOCK_WAIT.

    The one way deploy, rollback and accept-migration-change take the lock.
    """
    with DeployLock(url, holder_name(command, settings.env), wait_s=settings.deploy_lock_wait_s,
                    connect_timeout=settings.connect_timeout_s) as held:
        yield held
