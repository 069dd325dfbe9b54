"""Verify after the upgrade: the database is at the deploy's target head and the app answers 200.

The database side is read on dbops' own connection to the target
(``alembic_version`` through :meth:`Project.current
<dbops.migrations.Project.current>`), never through the project's env.py: an
env.py that builds its own engine from its settings would answer for whatever
database those settings name.  :func:`upgraded` right after the upgrade step
measures the revision there; :func:`database_at_head` checks it again at the
verify step.  The app side is HTTP 200 from ``HEALTH_URL``, with any body: a
plain health endpoint passes, the schema being dbops' own check.  When the
app's body names its database's revision, it must be the one just verified
(otherwise HEALTH_URL is another environment's app).  An app that speaks
dbops' health contract (docs/production.md, :mod:`dbops.integrations`)
answers 200 when its database is at or ahead of the head *its* code expects,
so an old release still serving (schema first) and the new one (code first,
once upgraded) both pass.  :func:`app_words` and :func:`rollback_words` say
what was (or will be) checked in the words of what the endpoint speaks.
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


def app_words(url: str, head: str | None, h: health.HealthResult | None) -> str:
    """The plan's words for the app check: the contract's only when the endpoint answered in its fields."""
    if h is not None and h.contract:
        return (f"{url} answers 200 under dbops' health contract: its database at or ahead of the head its code "
                f"expects (now: {_said(h)})")
    if h is not None and h.revision is not None:
        return f"{url} answers HTTP 200 with its database's revision, {head}, in its body (now: {_said(h)})"
    return f"{url} answers HTTP 200 (any body)" + (f" (now: {_said(h)})" if h is not None and not h.ok else "")


def rollback_words(target: str, h: health.HealthResult | None) -> str:
    """Rollback's closing words: what the app says now that the schema is at ``target`` (contract words only
    when its health body speaks the contract), and that the data is not restored."""
    words = f"a downgrade restores the schema, not data; redeploy the app release that matches {target}"
    if h is None:
        return words + " (the release now serving may need the newer schema)"
    if h.contract:
        return words + f": {h.url} answers {_said(h)}"
    if h.status is None:
        return words + f" ({h.url} does not answer: {h.reason})"
    return words + (f" (the release now serving may need the newer schema; {h.url} answers HTTP {h.status} "
                    "and does not report which schema it needs)")


def _said(h: health.HealthResult) -> str:
    """What the health URL answered, without the body's text (kept in the report)."""
    return h.reason.split("; body: ", 1)[0]
