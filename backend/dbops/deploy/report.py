"""The record of every deploy/rollback run: steps with timings, revisions, backup, findings, outcome.

Written as JSON under ``backups/`` (and beside the backup when the backup
layer can store it), summarised through the UI and sent to the webhook.
It holds masked URLs only.  Every part is a typed record; :meth:`DeployReport.to_dict`
is the JSON, key for key (the statuses are :class:`~enum.StrEnum` members:
in the JSON, and compared with a string, they are that string).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from .. import formats
from ..clock import iso
from ..findings import Finding
from ..health import HealthResult
from ..monitor import MonitorResult, Sample
from ..redact import reason


class StepStatus(StrEnum):
    """Where one step of a run stands."""

    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class Outcome(StrEnum):
    """How a run ended (``running`` until it does)."""

    RUNNING = "running"
    SUCCESS = "success"
    NOTHING_TO_DEPLOY = "nothing to deploy"
    NOTHING_TO_ROLL_BACK = "nothing to roll back"
    PLANNED = "planned"
    FAILED = "failed"
    ROLLED_BACK = "rolled back"


@dataclass
class Step:
    name: str
    status: StepStatus = StepStatus.RUNNING
    started_at: str = field(default_factory=iso)
    seconds: float = 0.0
    detail: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "status": str(self.status), "started_at": self.started_at,
                "seconds": self.seconds, "detail": self.detail}


@dataclass(frozen=True)
class PendingRevision:
    """A revision the run applies: its id, its docstring's first line, its file's name."""

    revision: str
    doc: str
    file: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BackupTaken:
    """The backup a run took before changing anything."""

    key: str
    sha256: str
    size: int
    revision: str | None
    manifest_key: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Rehearsal:
    """The rehearse step: whether it ran and why, on which backup; once it ran to its end, what it found."""

    ran: bool
    why: str
    backup: str | None = None
    #: the rehearsal's numbers (None: it did not run to its end)
    errors: int | None = None
    findings: int | None = None
    failure: str | None = None
    expected_upgrade_s: float | None = None
    #: the longest lock wait of each kind, as the rehearsal's own JSON gives it
    longest_wait_s: dict | None = None
    #: where its text report was saved
    text: str | None = None

    def to_dict(self) -> dict:
        out = {"ran": self.ran, "why": self.why, "backup": self.backup}
        if self.errors is not None:
            out.update(errors=self.errors, findings=self.findings, failure=self.failure,
                       expected_upgrade_s=self.expected_upgrade_s, longest_wait_s=self.longest_wait_s,
                       text=self.text)
        return out


@dataclass
class MonitorFailure:
    """The monitor step failed: every sample it took, the bad ones last."""

    samples: list[Sample]

    def to_dict(self) -> dict:
        return {"samples": [asdict(s) for s in self.samples]}


@dataclass(frozen=True)
class AutoRollback:
    """A deploy's ``--auto-rollback``: how it went, in a line, and where its own report is."""

    outcome: StepStatus  # ok | failed
    detail: str
    report: str | None

    def to_dict(self) -> dict:
        return {"outcome": str(self.outcome), "detail": self.detail, "report": self.report}


@dataclass
class DeployReport:
    """What one ``inv deploy`` / ``inv rollback`` run did (the round-trip tester keeps its own report)."""

    command: str  # "inv deploy" | "inv rollback"
    env: str
    database: str  # masked URL
    started_at: str = field(default_factory=iso)
    finished_at: str | None = None
    outcome: Outcome = Outcome.RUNNING
    mode: str = "deploy"  # deploy | plan | rollback
    steps: list[Step] = field(default_factory=list)
    revision_before: list[str] = field(default_factory=list)
    revision_after: list[str] | None = None
    head: str | None = None
    pending: list[PendingRevision] = field(default_factory=list)
    backup: BackupTaken | None = None
    dry_run_sql: str | None = None  # where the SQL was saved
    lint: list[Finding] = field(default_factory=list)
    #: the rehearsal step: whether it ran and why, its errors, the expected upgrade time, the longest waits
    rehearsal: Rehearsal | None = None
    upgrade_attempts: int = 0
    health: list[HealthResult] = field(default_factory=list)
    monitor: MonitorResult | MonitorFailure | None = None
    failed_step: str | None = None
    error: str | None = None
    #: whether the run changed the target, from its revision read on dbops' own connection before and after
    #: (never from what a step believed it did); None: not known
    db_changed: bool | None = None
    recovery: list[str] = field(default_factory=list)
    rollback: AutoRollback | None = None
    notify_error: str | None = None
    warnings: list[str] = field(default_factory=list)
    path: str | None = None

    # -- steps --------------------------------------------------------------
    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time a step; mark it failed (and the report with it) when the block raises."""
        st = Step(name)
        self.steps.append(st)
        t0 = time.monotonic()
        try:
            yield st
        except BaseException as exc:
            st.status = StepStatus.FAILED
            st.detail = st.detail or reason(exc)
            self.failed_step = self.failed_step or name
            self.error = self.error or st.detail
            raise
        else:
            if st.status == StepStatus.RUNNING:
                st.status = StepStatus.OK
        finally:
            st.seconds = round(time.monotonic() - t0, 3)

    # -- recovery -----------------------------------------------------------
    @property
    def backup_key(self) -> str | None:
        return self.backup.key if self.backup else None

    def recovery_hint(self) -> str:
        if self.recovery:
            return "recover with:\n" + "\n".join(f"    {c}" for c in self.recovery)
        if self.db_changed:
            return f"the database changed ({self._measured()}) and no recovery command applies; see the steps above"
        return f"fix the cause above and run the command again\n{self.unchanged_note()}"

    def unchanged_note(self) -> str:
        """The line under a failure's hint saying the target did not change, from what was measured on it."""
        if self.db_changed is None:
            return "(whether the database changed is unknown: its revision could not be read back)"
        if not self._migrated():  # no step ran a migration yet: nothing could change
            return "(nothing was changed by this run)"
        return f"(nothing was changed in the target database by this run: {self._measured()})"

    def changed_line(self) -> str:
        """The summary's "db changed" value: yes / no / unknown, with the revisions measured on the target."""
        if self.db_changed is None:
            return "unknown (its revision could not be read back)"
        if not self.db_changed and not self._migrated():
            return "no (the run stopped before any migration ran)"
        return f"{'yes' if self.db_changed else 'no'} ({self._measured()})"

    def _migrated(self) -> bool:
        return any(st.name in ("upgrade", "downgrade") for st in self.steps)

    def _measured(self) -> str:
        before = ", ".join(self.revision_before) or "(empty)"
        after = ", ".join(self.revision_after or []) or "(empty)"
        if before == after:
            return f"its revision, read on dbops' own connection, is {after} before and after"
        return f"its revision, read on dbops' own connection, went {before} -> {after}"

    def finish(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.finished_at = iso()

    # -- output -------------------------------------------------------------
    def to_dict(self) -> dict:
        """The report's JSON (the file under backups/, the copy beside the backup, the history row)."""
        return {
            "command": self.command,
            "env": self.env,
            "database": self.database,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "outcome": str(self.outcome),
            "mode": self.mode,
            "steps": [s.to_dict() for s in self.steps],
            "revision_before": list(self.revision_before),
            "revision_after": list(self.revision_after) if self.revision_after is not None else None,
            "head": self.head,
            "pending": [p.to_dict() for p in self.pending],
            "backup": self.backup.to_dict() if self.backup else None,
            "dry_run_sql": self.dry_run_sql,
            "lint": [f.to_dict() for f in self.lint],
            "rehearsal": self.rehearsal.to_dict() if self.rehearsal else None,
            "upgrade_attempts": self.upgrade_attempts,
            "health": [h.to_dict() for h in self.health],
            "monitor": self.monitor.to_dict() if self.monitor else None,
            "failed_step": self.failed_step,
            "error": self.error,
            "db_changed": self.db_changed,
            "recovery": list(self.recovery),
            "rollback": self.rollback.to_dict() if self.rollback else None,
            "notify_error": self.notify_error,
            "warnings": list(self.warnings),
            "path": self.path,
        }

    def to_json(self) -> str:
        return formats.to_json(self.to_dict()) + "\n"

    def write(self, directory: Path, stem: str) -> Path:
        path = directory / f"{stem}.json"
        self.path = str(path)
        return formats.write_json(path, self.to_dict())

    def summary(self) -> str:
        before = ", ".join(self.revision_before) or "(empty)"
        after = ", ".join(self.revision_after) if self.revision_after is not None else "(unknown)"
        lines = [
            f"{self.command} --env {self.env}: {self.outcome.upper()}",
            f"  database   {self.database}",
            f"  revision   {before} -> {after}" + (f" (head {self.head})" if self.head else ""),
        ]
        if self.backup:
            lines.append(f"  backup     {self.backup.key} sha256={str(self.backup.sha256)[:16]}…")
        for st in self.steps:
            lines.append(f"  {st.status:<8} {st.name:<10} {st.seconds:7.2f}s  {st.detail}".rstrip())
        errors = sum(1 for f in self.lint if f.is_error)
        if self.lint:
            lines.append(f"  lint       {errors} error(s), {len(self.lint) - errors} warning(s)")
        if self.failed_step:
            lines.append(f"  failed at  {self.failed_step}: {self.error}")
            lines.append(f"  db changed {self.changed_line()}")
        if self.rollback:
            lines.append(f"  rollback   {self.rollback.outcome}: {self.rollback.detail}".rstrip())
        for w in self.warnings:
            lines.append(f"  warning    {w}")
        if self.recovery:
            lines.append("  recover with:")
            lines += [f"    {c}" for c in self.recovery]
        if self.path:
            lines.append(f"  report     {self.path}")
        return "\n".join(lines)
