"""Verify after the upgrade: the database is at the deploy's target head and the app answers 200.

The database side is read on dbops' own connection to the target
(``alembic_version`` through :meth:`Project.current
<dbops.migrations.Project.current>`), never through the project's env.py: an
env.py that builds its own engine from its settings would answer for whatever
database those settings name.  :func:`upgraded` right after the upgrade step
measures the revision there; :func:`database_at_head` checks it again at the
verify step.  The app side is the expand/contract health contract
(docs/production.md): 200 means the app's database is at or ahead of the head
the *app's* code expects, so an old release still serving (schema first) and
the new one (code first, once upgraded) both pass; the app's own head need not
be the deploy's.  When the app's body names its database's revision, it must
be the one just verified (otherwise HEALTH_URL is another environment's app).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from .. import health
from ..errors import CheckFailed, RevisionNotReached
from ..migrations import Project
from .report import DeployReport


def measured(conn: Connection) -> list[str]:
    """The target's revision(s), read on dbops' own connection (no transaction is left open)."""
    try:
        return list(Project.current(conn))
    finally:
        if conn.in_transaction():
            conn.rollback()


def upgraded(conn: Connection, r: DeployReport, heads: Sequence[str]) -> None:
    """After the upgrade step: the target's revision, measured, must be the heads; fills ``r.revision_after`` and
    ``r.db_changed`` from the measurement. Raises RevisionNotReached (did not move, or stopped short)."""
    r.revision_after = measured(conn)
    r.db_changed = sorted(r.revision_after) != sorted(r.revision_before)
    if sorted(r.revision_after) != sorted(heads):
        raise RevisionNotReached("upgrade", r.database, r.revision_before, r.revision_after, heads)


def database_at_head(conn: Connection, project: Project) -> list[str]:
    """The target's revision, read on dbops' own connection, is the scripts' head(s); returns it."""
    current, heads = measured(conn), project.heads()
    if sorted(current) != sorted(heads):
        raise CheckFailed(
            f"the database is at {', '.join(current) or '(empty)'}, not at head {', '.join(heads)} "
            "(read on dbops' own connection)",
            hint="the upgrade step above measured the head: something moved the database since (another "
            "deploy, a manual downgrade); find out what before deploying again",
        )
    return current


def app_healthy(url: str, heads: list[str], *, within_s: float, timeout: float) -> health.HealthResult:
    """The app answers 200 (retried up to ``within_s``), reporting its database at ``heads`` where it names it."""
    return health.wait_healthy(url, expected_heads=heads, within_s=within_s, timeout=timeout)
