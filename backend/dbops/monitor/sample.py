"""One sample of the monitoring window: the health URL and the database, read once.

The health URL must answer 200 with the schema at head; the database must
answer and be at head, and it tells how many connections it has, how many
queries wait on locks and how long the longest transaction has been open.
A sample's ``problem`` says what is wrong (None: healthy).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import URL

from .. import health, postgres
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
    #: the problem is no blip: the database left head (a migration ran or was rolled back)
    fatal: bool = False

    def line(self, total: float) -> str:
        """The live status line: ``[monitor 10/60s] health ok | db a1 conns 3 blocked 0 longest-tx 0s``."""
        health_part = "health " + ("ok" if self.health_ok else "FAIL" if self.health_ok is False else "-")
        db = (
            f"db {','.join(self.revision or []) or '?'} conns {self.connections} blocked {self.blocked} "
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


def database(url: URL, project: Project, timeout: int) -> tuple[list[str], int, int, float]:
    """(revision, connections, queries blocked by locks, longest open transaction in seconds), on a new connection."""
    engine = postgres.make_engine(url, connect_timeout=timeout)
    try:
        with engine.connect() as conn:
            conns, blocked, longest = conn.execute(DB_SAMPLE).one()
            revision = list(project.current(conn))
            return revision, int(conns), int(blocked), float(longest)
    finally:
        engine.dispose()


def take(settings: Settings, url: URL, project: Project, heads: list[str], *, elapsed: float) -> Sample:
    """One sample ``elapsed`` seconds into the window: the health URL (when set), then the database."""
    s = Sample(round(elapsed, 1), None, None, None, None, None, None)
    if settings.health_url:
        h = health.check(settings.health_url, expected_heads=heads, timeout=settings.health_timeout_s)
        s.health, s.health_ok = h.reason, h.ok
        if not h.ok:
            s.problem = f"health {h.url}: {h.reason}"
    try:
        s.revision, s.connections, s.blocked, s.longest_tx_s = database(url, project, settings.connect_timeout_s)
        if sorted(s.revision) != sorted(heads):
            s.fatal = True
            s.problem = s.problem or f"database is at {', '.join(s.revision) or '(empty)'}, not head {', '.join(heads)}"
    except sa.exc.SQLAlchemyError as exc:
        s.problem = s.problem or f"database unreachable: {reason(exc, url)}"
    return s
