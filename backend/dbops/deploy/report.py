"""The record of every deploy/rollback run: steps with timings, revisions, backup, findings, outcome.

Written as JSON under ``backups/`` (and beside the backup when the backup
layer can store it), summarised through the UI and sent to the webhook.
It holds masked URLs only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..clock import iso
from ..redact import reason


@dataclass
class Step:
    name: str
    status: str = "running"  # running | ok | failed | skipped
    started_at: str = field(default_factory=iso)
    seconds: float = 0.0
    detail: str = ""


@dataclass
class DeployReport:
    """What one ``inv deploy`` / ``inv rollback`` run did (the round-trip tester keeps its own report)."""

    command: str  # "inv deploy" | "inv rollback"
    env: str
    database: str  # masked URL
    started_at: str = field(default_factory=iso)
    finished_at: str | None = None
    outcome: str = "running"  # success | nothing to deploy | planned | failed | rolled back
    mode: str = "deploy"
    steps: list[Step] = field(default_factory=list)
    revision_before: list[str] = field(default_factory=list)
    revision_after: list[str] | None = None
    head: str | None = None
    pending: list[dict] = field(default_factory=list)
    backup: dict | None = None
    dry_run_sql: str | None = None  # where the SQL was saved
    lint: list[dict] = field(default_factory=list)
    #: the rehearsal step: whether it ran and why, its errors, the expected upgrade time, the longest waits
    rehearsal: dict | None = None
    upgrade_attempts: int = 0
    health: list[dict] = field(default_factory=list)
    monitor: dict | None = None
    failed_step: str | None = None
    error: str | None = None
    db_changed: bool | None = None
    recovery: list[str] = field(default_factory=list)
    rollback: dict | None = None
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
            st.status = "failed"
            st.detail = st.detail or reason(exc)
            self.failed_step = self.failed_step or name
            self.error = self.error or st.detail
            raise
        else:
            if st.status == "running":
                st.status = "ok"
        finally:
            st.seconds = round(time.monotonic() - t0, 3)

    # -- recovery -----------------------------------------------------------
    @property
    def backup_key(self) -> str | None:
        return (self.backup or {}).get("key")

    def recovery_hint(self) -> str:
        if self.recovery:
            return "recover with:\n" + "\n".join(f"    {c}" for c in self.recovery)
        return "nothing was changed; fix the cause above and run the command again"

    def finish(self, outcome: str) -> None:
        self.outcome = outcome
        self.finished_at = iso()

    # -- output -------------------------------------------------------------
    def as_dict(self) -> dict:
        return asdict(self)

    def write(self, directory: Path, stem: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{stem}.json"
        self.path = str(path)
        path.write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n")
        return path

    def summary(self) -> str:
        before = ", ".join(self.revision_before) or "(empty)"
        after = ", ".join(self.revision_after) if self.revision_after is not None else "(unknown)"
        lines = [
            f"{self.command} --env {self.env}: {self.outcome.upper()}",
            f"  database   {self.database}",
            f"  revision   {before} -> {after}" + (f" (head {self.head})" if self.head else ""),
        ]
        if self.backup:
            lines.append(f"  backup     {self.backup.get('key')} sha256={str(self.backup.get('sha256'))[:16]}…")
        for st in self.steps:
            lines.append(f"  {st.status:<8} {st.name:<10} {st.seconds:7.2f}s  {st.detail}".rstrip())
        errors = sum(1 for f in self.lint if f.get("level") == "error" and not f.get("accepted"))
        if self.lint:
            lines.append(f"  lint       {errors} error(s), {len(self.lint) - errors} warning(s)")
        if self.failed_step:
            lines.append(f"  failed at  {self.failed_step}: {self.error}")
            changed = "yes" if self.db_changed else "no" if self.db_changed is not None else "unknown"
            lines.append(f"  db changed {changed}")
        if self.rollback:
            lines.append(f"  rollback   {self.rollback.get('outcome')}: {self.rollback.get('detail', '')}".rstrip())
        for w in self.warnings:
            lines.append(f"  warning    {w}")
        if self.recovery:
            lines.append("  recover with:")
            lines += [f"    {c}" for c in self.recovery]
        if self.path:
            lines.append(f"  report     {self.path}")
        return "\n".join(lines)
