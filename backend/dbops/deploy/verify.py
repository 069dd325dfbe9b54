"""Verify after the upgrade: the database reports head (``alembic current --check-heads``) and the app is healthy."""

from __future__ import annotations

import io

from alembic import command
from alembic.util.exc import DatabaseNotAtHead
from sqlalchemy.engine import Connection

from .. import health
from ..errors import CheckFailed
from ..migrations import Project


def database_at_head(conn: Connection, project: Project) -> str:
    """``alembic current`` with the heads check, through alembic's own API; returns its output."""
    out = io.StringIO()
    try:
        with project.guard():
            command.current(project.config(connection=conn, stdout=out), check_heads=True)
    except Exception as exc:  # DatabaseNotAtHead arrives wrapped by Project.guard()
        if isinstance(exc, DatabaseNotAtHead) or isinstance(exc.__cause__, DatabaseNotAtHead):
            current = project.current(conn)
            raise CheckFailed(
                f"the database is at {', '.join(current) or '(empty)'}, not at head {', '.join(project.heads())}",
                hint="see the upgrade step above; `inv status`-style details: alembic current / alembic heads",
            ) from None
        raise
    finally:
        if conn.in_transaction():
            conn.rollback()
    return out.getvalue().strip()


def app_healthy(url: str, heads: list[str], *, within_s: float, timeout: float) -> health.HealthResult:
    return health.wait_healthy(url, expected_heads=heads, within_s=within_s, timeout=timeout)
