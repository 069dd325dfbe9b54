"""``alembic upgrade`` for production: session timeouts, one transaction per revision, bounded retries.

``lock_timeout`` makes a migration that queues behind a long transaction fail
fast (SQLSTATE 55P03) instead of blocking every query behind it; the upgrade
is then retried a bounded number of times with backoff.  env.py runs each
revision in its own transaction (``transaction_per_migration=True``), so a
failure or a killed process leaves the database at a revision boundary, and
``autocommit_block()`` works for CONCURRENTLY operations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from ..errors import UpgradeFailed
from ..migrations import Project
from ..redact import reason

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


def set_timeouts(conn: Connection, *, lock_timeout_ms: int, statement_timeout_ms: int) -> None:
    """Session-level timeouts (they outlive the per-revision transactions); leaves no transaction open."""
    if conn.in_transaction():
        conn.commit()
    conn.execute(sa.text(f"SET lock_timeout = {int(lock_timeout_ms)}"))
    conn.execute(sa.text(f"SET statement_timeout = {int(statement_timeout_ms)}"))
    conn.commit()


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
        exc = state.outcome.exception()
        msg = reason(exc)
        log.warning("upgrade attempt %d hit lock_timeout: %s", state.attempt_number, msg)
        if on_retry:
            on_retry(state.attempt_number, msg)

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=backoff, max=30),
        retry=retry_if_exception(lambda e: sqlstate(e) == LOCK_NOT_AVAILABLE),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        retrying(once)
    except sa.exc.DBAPIError as exc:
        if conn.in_transaction():
            conn.rollback()
        code = sqlstate(exc)
        if code == LOCK_NOT_AVAILABLE:
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
