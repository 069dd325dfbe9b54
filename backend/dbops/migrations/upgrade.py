"""``alembic upgrade`` for production: session timeouts, one transaction per revision, bounded retries.

``lock_timeout`` makes a migration that queues behind a long transaction fail
fast (SQLSTATE 55P03) instead of blocking every query behind it; the upgrade
is then retried a bounded number of times with backoff.  env.py runs each
revision in its own transaction (``transaction_per_migration=True``), so a
failure or a killed process leaves the database at a revision boundary, and
``autocommit_block()`` works for CONCURRENTLY operations.

A deploy that dies does not leave its statement running: the session sets
``client_connection_check_interval`` (PostgreSQL 14+), so the server notices
a vanished client within a second and ends the statement, freeing its locks.
Ctrl-C during a statement cancels it at once (the query runs under a psycopg2
wait callback that turns the interrupt into a cancel request); the upgrade
then fails as :class:`~dbops.errors.UpgradeInterrupted` (exit 130), and the deploy
reports the revision the database is really at, with the recovery commands.
"""

from __future__ import annotations

import contextlib
import logging
import select
from collections.abc import Callable, Iterator

import psycopg2.extensions
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from ..errors import UpgradeFailed, UpgradeInterrupted
from ..redact import reason
from . import Project

log = logging.getLogger(__name__)

LOCK_NOT_AVAILABLE = "55P03"
QUERY_CANCELED = "57014"


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error anywhere in the exception chain."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        code = getattr(getattr(exc, "orig", None), "pgcode", None) or getattr(exc, "pgcode", None)
        if code:
            return code
        exc = exc.__cause__ or exc.__context__
    return None


#: how often (ms) the server checks, while a statement runs, that the deploy's client is still there
CLIENT_CHECK_INTERVAL_MS = 1000


def set_timeouts(conn: Connection, *, lock_timeout_ms: int, statement_timeout_ms: int) -> None:
    """Session-level timeouts and the dead-client check (they outlive the per-revision transactions).

    Leaves no transaction open.
    """
    if conn.in_transaction():
        conn.commit()
    conn.execute(sa.text(f"SET lock_timeout = {int(lock_timeout_ms)}"))
    conn.execute(sa.text(f"SET statement_timeout = {int(statement_timeout_ms)}"))
    if (conn.dialect.server_version_info or (0,))[0] >= 14:
        conn.execute(sa.text(f"SET client_connection_check_interval = {CLIENT_CHECK_INTERVAL_MS}"))
    conn.commit()


class _Interrupts:
    """A psycopg2 wait callback: waits on the socket; Ctrl-C sends the server a cancel and is remembered."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, pgconn) -> None:
        while True:
            try:
                state = pgconn.poll()
                if state == psycopg2.extensions.POLL_OK:
                    return
                if state == psycopg2.extensions.POLL_READ:
                    select.select([pgconn.fileno()], [], [])
                elif state == psycopg2.extensions.POLL_WRITE:
                    select.select([], [pgconn.fileno()], [])
                else:
                    raise psycopg2.OperationalError(f"bad state from poll: {state}")
            except KeyboardInterrupt:
                self.seen = True
                pgconn.cancel()  # the statement ends now; its error arrives through poll()


@contextlib.contextmanager
def cancel_on_interrupt() -> Iterator[_Interrupts]:
    """Within the block, Ctrl-C cancels the running statement instead of waiting for it to end."""
    interrupts, previous = _Interrupts(), psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(interrupts)
    try:
        yield interrupts
    finally:
        psycopg2.extensions.set_wait_callback(previous)


def run(
    project: Project,
    conn: Connection,
    *,
    target: str = "head",
    attempts: int,
    lock_timeout_ms: int,
    statement_timeout_ms: int,
    on_retry: Callable[[int, str], None] | None = None,
) -> int:
    """Upgrade to ``target``; returns how many attempts it took. Raises UpgradeFailed (with SQLSTATE and attempts)."""
    set_timeouts(conn, lock_timeout_ms=lock_timeout_ms, statement_timeout_ms=statement_timeout_ms)
    backoff = min(max(lock_timeout_ms / 1000, 0.1), 2.0)
    count = 0

    def once() -> None:
        nonlocal count
        count += 1
        if conn.in_transaction():
            conn.rollback()
        project.upgrade(conn, target)
        if conn.in_transaction():
            conn.commit()

    def before_sleep(state) -> None:
        msg = reason(state.outcome.exception())
        if on_retry:  # the caller tells people (its UI); else it is a diagnostic
            on_retry(state.attempt_number, msg)
        else:
            log.warning("upgrade attempt %d hit lock_timeout: %s", state.attempt_number, msg)

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=backoff, max=30),
        retry=retry_if_exception(lambda e: sqlstate(e) == LOCK_NOT_AVAILABLE),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        with cancel_on_interrupt() as interrupts:
            try:
                retrying(once)
            except KeyboardInterrupt:  # between statements: the open transaction is rolled back below
                interrupts.seen = True
                raise sa.exc.DBAPIError("interrupted", None,
                                        psycopg2.extensions.QueryCanceledError("interrupted")) from None
    except sa.exc.DBAPIError as exc:
        if conn.in_transaction():
            conn.rollback()
        code = sqlstate(exc)
        if interrupts.seen:
            err = UpgradeInterrupted(sqlstate=code, attempts=count)
        elif code == LOCK_NOT_AVAILABLE:
            err = UpgradeFailed(
                f"the upgrade could not get its table lock within lock_timeout={lock_timeout_ms}ms, "
                f"{count} attempt(s) (SQLSTATE 55P03)",
                sqlstate=code, attempts=count,
                details=reason(exc),
                hint="a long transaction holds a lock on the table: find it with `inv monitor` or pg_stat_activity, "
                "let it finish (or end it), then deploy again; DBOPS_LOCK_TIMEOUT_MS / DBOPS_LOCK_RETRIES tune this",
            )
        elif code == QUERY_CANCELED:
            err = UpgradeFailed(
                f"a migration statement ran longer than statement_timeout={statement_timeout_ms}ms (SQLSTATE 57014)",
                sqlstate=code, attempts=count,
                details=reason(exc),
                hint="raise DBOPS_STATEMENT_TIMEOUT_MS for this deploy, or split the slow statement",
            )
        else:
            err = UpgradeFailed(f"the migration failed (SQLSTATE {code or '?'}): {reason(exc)}",
                                sqlstate=code, attempts=count)
        raise err from exc
    return count
