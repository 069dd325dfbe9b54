"""Deploy history in the database (``dbops.deploys``): what each run did, for ``inv rollback``.

A row is written before the upgrade starts and updated when the run ends, so
even a killed deploy leaves a trace of the revision it started from.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .checksums import DDL as CHECKSUM_DDL, SCHEMA

TABLE = f"{SCHEMA}.deploys"
DDL = [
    *CHECKSUM_DDL,
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        id              bigserial PRIMARY KEY,
        command         text NOT NULL,
        env             text NOT NULL,
        started_at      timestamptz NOT NULL DEFAULT now(),
        finished_at     timestamptz,
        outcome         text NOT NULL,
        revision_before text[] NOT NULL,
        revision_after  text[],
        backup_key      text,
        report          jsonb
    )""",
]


def _commit(conn: Connection) -> None:
    if conn.in_transaction():
        conn.commit()


def start(conn: Connection, command: str, env: str, before: list[str], backup_key: str | None) -> int:
    _commit(conn)
    with conn.begin():
        for stmt in DDL:
            conn.execute(sa.text(stmt))
        return conn.execute(
            sa.text(
                f"INSERT INTO {TABLE} (command, env, outcome, revision_before, backup_key) "
                "VALUES (:c, :e, 'running', :b, :k) RETURNING id"
            ),
            {"c": command, "e": env, "b": list(before), "k": backup_key},
        ).scalar_one()


def finish(conn: Connection, row_id: int, outcome: str, after: list[str] | None, report: dict) -> None:
    _commit(conn)
    with conn.begin():
        conn.execute(
            sa.text(
                f"UPDATE {TABLE} SET finished_at = now(), outcome = :o, revision_after = :a, "
                "report = CAST(:r AS jsonb) WHERE id = :id"
            ),
            {"o": outcome, "a": list(after) if after is not None else None, "r": json.dumps(report, default=str),
             "id": row_id},
        )


def last_deploy(conn: Connection, env: str) -> dict | None:
    """The latest deploy that started from a different revision than it ended (or may have ended) at."""
    if conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": TABLE}).scalar() is None:
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
    return dict(row) if row else None
