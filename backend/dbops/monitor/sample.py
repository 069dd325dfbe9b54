"""One sample of the monitoring window: the database and the health URL, read once.

The same expand/contract contract as the app's (docs/production.md): the
database must answer and be at or ahead of the monitoring code's head
(:func:`dbops.lineage.state`); behind (a rollback ran) or on a line the code
cannot place is fatal.  It tells how many connections it has, how many
queries wait on locks and how long the longest transaction has been open.
The health URL must answer 200, and where its body names the database's
revision, the one just read.  A sample's ``problem`` says what is wrong
(None: healthy).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import URL

from .. import health, lineage, postgres
from ..migrations import Project
from ..redact import reason
from ..settings import Settings


@dataclass
class Sample:
    elapsed_s: float
    health: str | None
    health_ok: bool | None
    revision: list[str] | None
    connections: int | None
    blocked: int | None
    longest_tx_s: float | None
    problem: str | None = None
    #: the problem is no blip: the database fell behind the code's head (rolled back) or left its line
    fatal: bool = False
    #: the database's schema against the code: "at head", "ahead", "behind", "unknown"
    schema: str | None = None

    def line(self, total: float) -> str:
        """The live status line: ``[monitor 10/60s] health ok | db a1 conns 3 blocked 0 longest-tx 0s``."""
        health_part = "health " + ("ok" if self.health_ok else "FAIL" if self.health_ok is False else "-")
        state = f" ({self.schema})" if self.schema not in (None, "at head") else ""
        db = (
            f"db {','.join(self.revision or []) or '?'}{state} conns {self.connections} blocked {self.blocked} "
            f"longest-tx {self.longest_tx_s or 0:.0f}s"
            if self.connections is not None
            else "db ?"
        )
        return (f"[monitor {self.elapsed_s:>5.0f}/{total:g}s] {health_part} | {db}"
                + (f" | {self.problem}" if self.problem else ""))


DB_SAMPLE = sa.text(
    """
    SELECT
      (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()),
      (SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND cardinality(pg_blocking_pids(pid)) > 0),
      (SELECT coalesce(max(extract(epoch FROM now() - xact_start)), 0) FROM pg_stat_activity
        WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid())
    """
)


def database(
    url: URL, project: Project, heads: list[str], timeout: int
) -> tuple[list[str], int, int, float, lineage.SchemaState]:
    """(revision, connections, queries blocked by locks, longest open transaction in seconds, schema against
    ``heads``), on a new connection."""
    engine = postgres.make_engine(url, connect_timeout=timeout)
    try:
        with engine.connect() as conn:
            conns, blocked, longest = conn.execute(DB_SAMPLE).one()
            revision = list(project.current(conn))
            return revision, int(conns), int(blocked), float(longest), lineage.state(conn, project, revision, heads)
    finally:
        engine.dispose()


def take(settings: Settings, url: URL, project: Project, heads: list[str], *, elapsed: float) -> Sample:
    """One sample ``elapsed`` seconds into the window: the database, then the health URL (when set).

    ``heads`` is the code's head (what the deploy applied); the database may be at it or ahead of it.
    """
    s = Sample(round(elapsed, 1), None, None, None, None, None, None)
    db_problem = None
    try:
        found: lineage.SchemaState
        s.revision, s.connections, s.blocked, s.longest_tx_s, found = database(
            url, project, heads, settings.connect_timeout_s)
        s.schema = found.state
        if not found.healthy:
            s.fatal = True
            db_problem = f"schema {found.state}: {found.detail}"
    except sa.exc.SQLAlchemyError as exc:
        db_problem = f"database unreachable: {reason(exc, url)}"
    if settings.health_url:
        h = health.check(settings.health_url, expected_heads=s.revision, timeout=settings.health_timeout_s)
        s.health, s.health_ok = h.reason, h.ok
        if not h.ok:
            s.problem = f"health {h.url}: {h.reason}"
    s.problem = s.problem or db_problem
    return s
