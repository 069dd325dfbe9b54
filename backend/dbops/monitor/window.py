"""The monitoring window after a deploy (the seed's "10-30 minutes of monitoring"): its length, and the watch.

Every interval a :mod:`sample <.sample>` of the health URL and the database;
a live status line shows the latest one.  A bad sample (health not ok,
database unreachable) is tolerated when isolated: the watch fails with
:class:`MonitorFailed` after ``DBOPS_MONITOR_FAILURES`` bad samples in a row
(default 3), or when more than ``DBOPS_MONITOR_ERROR_BUDGET`` of the samples
(default 0.2, once 10 are taken) were bad.  A window never ends inside a bad
streak: it samples on until the streak ends or fails.  A database behind the
code's head (rolled back) or on a line it cannot place fails at once; one
ahead of it is healthy (the expand/contract contract, :mod:`dbops.lineage`).
Blocked queries and long transactions are warnings.  The deploy's monitor
step and ``inv monitor`` (:func:`monitor_only`) both watch through
:func:`watch`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from sqlalchemy.engine import URL

from ..errors import MonitorFailed
from ..migrations import Project
from ..redact import mask_url
from ..servers import environment_url
from ..settings import Settings
from ..ui import SILENT, UI
from . import sample
from .sample import Sample


@dataclass
class MonitorResult:
    seconds: float
    samples: int
    worst_blocked: int = 0
    longest_tx_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    last: Sample | None = None
    #: bad samples tolerated (isolated blips)
    bad_samples: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def window_seconds(settings: Settings, *, minutes: float | str | None = None,
                   seconds: float | str | None = None) -> float:
    """The window's length in seconds: ``seconds``, else ``minutes`` × 60, else DBOPS_MONITOR_MINUTES × 60."""
    if seconds is not None:
        return float(seconds)
    return float(minutes if minutes is not None else settings.monitor_minutes) * 60


def sample_interval(settings: Settings, seconds: float) -> float:
    """Seconds between samples: DBOPS_MONITOR_INTERVAL, but at least two samples in a short window."""
    return min(settings.monitor_interval_s, max(seconds / 2, 0.1))


def watch(settings: Settings, url: URL, project: Project, *, seconds: float, ui: UI = SILENT) -> MonitorResult:
    """Sample until ``seconds`` have passed; raise MonitorFailed at the first failure."""
    heads = list(project.heads())
    interval = sample_interval(settings, seconds)
    long_transaction_s = settings.long_transaction_s
    progress = ui.progress(every=max(interval, 5))
    result = MonitorResult(seconds=seconds, samples=0)
    samples: list[Sample] = []
    streak = 0
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        s = sample.take(settings, url, project, heads, elapsed=elapsed)
        samples.append(s)
        result.samples += 1
        result.last = s
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
        progress.update(s.line(seconds), force=s.problem is not None or result.samples == 1)
        streak = streak + 1 if s.problem else 0
        result.bad_samples += bool(s.problem)
        over_budget = result.samples >= 10 and result.bad_samples > settings.monitor_error_budget * result.samples
        if s.problem and (s.fatal or streak >= settings.monitor_failures or over_budget):
            progress.done()
            why = s.problem if s.fatal or streak == 1 else f"{s.problem} ({streak} bad samples in a row)"
            if over_budget and not s.fatal and streak < settings.monitor_failures:
                why = f"{s.problem} ({result.bad_samples} of {result.samples} samples bad, over the error budget)"
            raise MonitorFailed(why, samples)
        if s.problem:
            result.warnings.append(f"blip at {s.elapsed_s:.0f}s: {s.problem}")
        if elapsed >= seconds and not streak:
            break
        if streak:  # inside a bad streak: sample on (past the window's end, at the full interval)
            time.sleep(settings.monitor_interval_s if elapsed >= seconds else interval)
        else:
            time.sleep(max(0.0, min(interval, seconds - (time.monotonic() - start))))
    tolerated = f", {result.bad_samples} isolated blip(s) tolerated" if result.bad_samples else ", all healthy"
    progress.done(f"monitor: {result.samples} sample(s) over {seconds:g}s{tolerated}")
    return result


def monitor_only(settings: Settings, *, seconds: float, ui: UI = SILENT) -> MonitorResult:
    """``inv monitor``: watch the health URL and the database for ``seconds``; raises MonitorFailed."""
    project = Project(settings.alembic_ini)
    url = environment_url(settings, purpose="deploy to")
    ui.heading(f"monitor --env {settings.env}: {mask_url(url)} for {seconds:g}s")
    if not settings.health_url:
        ui.warn("HEALTH_URL is not set: watching the database only")
    return watch(settings, url, project, seconds=seconds, ui=ui)
