"""Watch the app and the database after a deploy (the seed's "10-30 minutes of monitoring").

Every ``interval`` seconds: the health URL (200, schema at head) and the
database (reachable, at head, connections, queries blocked by locks, the
longest open transaction).  A live status line shows the latest sample.  Any
failure (health not ok, database unreachable or no longer at head) ends the
watch with :class:`MonitorFailed`; blocked queries and long transactions are
reported as warnings.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import URL

from .. import health, postgres
from ..console import TerminalProgress as Progress  # TEMPORARY
from ..errors import MonitorFailed
from ..migrations import Project


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


@dataclass
class MonitorResult:
    seconds: float
    samples: int
    worst_blocked: int = 0
    longest_tx_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    last: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


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


def sample_db(url: URL, project: Project, timeout: int) -> tuple[list[str], int, int, float]:
    engine = postgres.make_engine(url, connect_timeout=timeout)
    try:
        with engine.connect() as conn:
            conns, blocked, longest = conn.execute(DB_SAMPLE).one()
            revision = list(project.current(conn))
            return revision, int(conns), int(blocked), float(longest)
    finally:
        engine.dispose()


def watch(
    url: URL,
    project: Project,
    *,
    seconds: float,
    interval: float,
    health_url: str | None,
    health_timeout: float = 5,
    long_transaction_s: float = 300,
    connect_timeout: int = 10,
    progress: Progress | None = None,
) -> MonitorResult:
    """Poll until ``seconds`` have passed; raise MonitorFailed at the first failure."""
    heads = list(project.heads())
    progress = progress or Progress(every=max(interval, 5))
    result = MonitorResult(seconds=seconds, samples=0)
    samples: list[Sample] = []
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        s = Sample(round(elapsed, 1), None, None, None, None, None, None)
        if health_url:
            h = health.check(health_url, expected_heads=heads, timeout=health_timeout)
            s.health, s.health_ok = h.reason, h.ok
            if not h.ok:
                s.problem = f"health {h.url}: {h.reason}"
        try:
            s.revision, s.connections, s.blocked, s.longest_tx_s = sample_db(url, project, connect_timeout)
            if sorted(s.revision) != sorted(heads):
                s.problem = s.problem or f"database is at {', '.join(s.revision) or '(empty)'}, not head {', '.join(heads)}"
        except sa.exc.SQLAlchemyError as exc:
            s.problem = s.problem or f"database unreachable: {postgres.unreachable(url, exc, None).reason}"
        samples.append(s)
        result.samples += 1
        result.last = asdict(s)
        if s.blocked:
            result.worst_blocked = max(result.worst_blocked, s.blocked)
        if s.longest_tx_s:
            result.longest_tx_s = max(result.longest_tx_s, s.longest_tx_s)
            if s.longest_tx_s > long_transaction_s:
                w = f"a transaction has been open {s.longest_tx_s:.0f}s (> {long_transaction_s:g}s)"
                if w.split(" open")[0] not in " ".join(result.warnings):
                    result.warnings.append(w)
        if s.blocked and not any("blocked" in w for w in result.warnings):
            result.warnings.append(f"{s.blocked} query(ies) waiting on locks at {s.elapsed_s:.0f}s")
        progress.update(_line(s, seconds), force=s.problem is not None or result.samples == 1)
        if s.problem:
            progress.done()
            raise MonitorFailed(s.problem, [asdict(x) for x in samples])
        if elapsed >= seconds:
            break
        time.sleep(max(0.0, min(interval, seconds - (time.monotonic() - start))))
    progress.done(f"monitor: {result.samples} sample(s) over {seconds:g}s, all healthy")
    return result


def _line(s: Sample, total: float) -> str:
    health_part = "health " + ("ok" if s.health_ok else "FAIL" if s.health_ok is False else "-")
    db = (
        f"db {','.join(s.revision or []) or '?'} conns {s.connections} blocked {s.blocked} "
        f"longest-tx {s.longest_tx_s or 0:.0f}s"
        if s.connections is not None
        else "db ?"
    )
    return f"[monitor {s.elapsed_s:>5.0f}/{total:g}s] {health_part} | {db}" + (f" | {s.problem}" if s.problem else "")
