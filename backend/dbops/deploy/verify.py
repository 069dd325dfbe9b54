"""Verify after the upgrade: the database is at the deploy's target head and the app answers 200.

The database side is ``alembic current --check-heads`` with the deploying
code.  The app side is the expand/contract health contract
(docs/production.md): 200 means the app's database is at or ahead of the head
the *app's* code expects, so an old release still serving (schema first) and
the new one (code first, once upgraded) both pass; the app's own head need not
be the deploy's.  When the app's body names its database's revision, it must
be the one just verified (otherwise HEALTH_URL is another environment's app).
"""

from __future__ import annotations

import io

from alembic.util.exc import DatabaseNotAtHead
from sqlalchemy.engine import Connection

from alembic import command

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
    """The app answers 200 (retried up to ``within_s``), reporting its database at ``heads`` where it names it."""
    return health.wait_healthy(url, expected_heads=heads, within_s=within_s, timeout=timeout)
