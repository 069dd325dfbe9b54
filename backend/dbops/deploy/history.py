"""Deploy history in the database (``dbops.deploys``): what each run did, for ``inv rollback``.

A row is written before the upgrade starts and updated when the run ends, so
even a killed deploy leaves a trace of the revision it started from.  Its
``running`` row then stays behind: the next run (which holds the deploy lock,
so the killed one no longer does) marks it ``abandoned``, with the evidence
(the lock was free; on the same host, the process is gone) in its report.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..postgres import bookkeeping

TABLE = bookkeeping.DEPLOYS


@dataclass(frozen=True)
class DeployRow:
    """One run's row in ``dbops.deploys``, as :func:`last_deploy` reads it."""

    id: int
    revision_before: list[str]
    revision_after: list[str] | None
    backup_key: str | None
    outcome: str
    started_at: dt.datetime


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_stale(conn: Connection, env: str) -> list[int]:
    """Mark ``running`` rows of ``env`` left by killed runs ``abandoned``; returns their ids.

    Called by a run that holds the deploy lock: a run still holding it could not
    have let us in, so every other ``running`` row is a dead run's (our own
    process's rows, an auto-rollback's parent deploy, are left alone).
    """
    host, me = socket.gethostname(), os.getpid()
    rows = conn.execute(sa.text(f"SELECT id, pid, host FROM {TABLE} WHERE env = :e AND outcome = 'running'"),
                        {"e": env}).all()
    stale = []
    for row_id, pid, row_host in rows:
        if row_host == host and pid == me:
            continue
        if row_host == host and pid is not None and _alive(pid):
            evidence = f"the deploy lock was free; pid {pid} on {host} still runs, but holds no deploy lock"
        elif row_host == host and pid is not None:
            evidence = f"the deploy lock was free and pid {pid} on {host} is gone"
        else:
            evidence = f"the deploy lock was free (the run was on {row_host or 'an unknown host'}, pid {pid or '?'})"
        conn.execute(
            sa.text(f"UPDATE {TABLE} SET outcome = 'abandoned', finished_at = now(), "
                    "report = coalesce(report, '{}'::jsonb) || jsonb_build_object('abandoned', CAST(:ev AS text)) "
                    "WHERE id = :id"),
            {"ev": f"marked by pid {me} on {host}: {evidence}", "id": row_id},
        )
        stale.append(row_id)
    return stale


def _commit(conn: Connection) -> None:
    if conn.in_transaction():
        conn.commit()


def start(conn: Connection, command: str, env: str, before: list[str], backup_key: str | None) -> int:
    _commit(conn)
    with conn.begin():
        bookkeeping.create(conn, bookkeeping.CHECKSUMS, TABLE)
        mark_stale(conn, env)
        return conn.execute(
            sa.text(
                f"INSERT INTO {TABLE} (command, env, outcome, revision_before, backup_key, pid, host) "
                "VALUES (:c, :e, 'running', :b, :k, :pid, :host) RETURNING id"
            ),
            {"c": command, "e": env, "b": list(before), "k": backup_key, "pid": os.getpid(),
             "host": socket.gethostname()},
        ).scalar_one()


def finish(conn: Connection, row_id: int, outcome: str, after: list[str] | None, report: dict) -> None:
    _commit(conn)
    with conn.begin():
        conn.execute(
            sa.text(
                f"UPDATE {TABLE} SET finished_at = now(), outcome = :o, revision_after = :a, "
                "report = CAST(:r AS jsonb) WHERE id = :id"
            ),
            {"o": str(outcome), "a": list(after) if after is not None else None, "r": json.dumps(report, default=str),
             "id": row_id},
        )


def last_deploy(conn: Connection, env: str) -> DeployRow | None:
    """The latest deploy that started from a different revision than it ended (or may have ended) at."""
    if not bookkeeping.exists(conn, TABLE):
        return None
    row = conn.execute(
        sa.text(
            f"SELECT id, revision_before, revision_after, backup_key, outcome, started_at FROM {TABLE} "
            "WHERE command = 'deploy' AND env = :e "
            "AND (revision_after IS NULL OR revision_after <> revision_before) ORDER BY id DESC LIMIT 1"
        ),
        {"e": env},
    ).mappings().first()
    _commit(conn)
    return DeployRow(**row) if row else None
