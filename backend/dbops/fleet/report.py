"""The fleet report: every target this process ran, what it did not start and why, the recovery commands."""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .. import formats
from ..clock import iso
from .manifest import TargetRecord
from .targets import Target

#: how a failed target's restore command is introduced: it is for a target that must go back, not the usual fix
RESTORE_LABEL = " (if it must go back to before the rollout, its backup)"


def restore_command(env: str, target: Target, key: str | None) -> str | None:
    """The command that puts ``key`` (a backup of the target's database) back in place of the target's database
    (``fleet.restore``: the URL comes from the fleet's configuration and the environment, never the command
    line).  None for a schema target: the backup is of the whole database, restoring it would roll back every
    schema in it."""
    if not key or target.schema is not None:
        return None
    return (f"dbops fleet.restore --env {env} --target {target.name} --backup {shlex.quote(key)} "
            f"--yes-i-know {target.database}")


@dataclass
class NotRun:
    name: str
    group: str
    why: str

    def to_dict(self) -> dict:
        return {"name": self.name, "group": self.group, "why": self.why}


@dataclass
class FleetReport:
    env: str
    run: str
    #: "i/N" for a shard, None for the whole fleet
    shard: str | None = None
    #: 0 for the run, 1, 2 ... for each --resume
    epoch: int = 0
    #: the backup policy, as it was applied
    backup: str = ""
    #: the dry run and lint, done once
    lint: str = ""
    #: the rehearsal on a copy of the (first) canary target: ran, why, target, backup, findings
    rehearsal: dict = field(default_factory=dict)
    records: list[TargetRecord] = field(default_factory=list)
    not_run: list[NotRun] = field(default_factory=list)
    #: why the rollout stopped early (a canary failed, --max-failures reached), else None
    stopped: str | None = None
    started_at: str = field(default_factory=iso)
    finished_at: str | None = None
    seconds: float = 0.0
    workers: int = 0
    path: str | None = None

    @property
    def failed(self) -> list[TargetRecord]:
        return [r for r in self.records if r.failed]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.stopped

    def counts(self) -> dict[str, int]:
        c = Counter(r.outcome for r in self.records)
        if self.not_run:
            c["not run"] = len(self.not_run)
        return dict(sorted(c.items()))

    def resume_command(self) -> str:
        return f"dbops fleet.deploy --env {self.env} --resume {self.run}"

    def recovery(self) -> list[str]:
        """Each failed target's own command (after fixing its cause), then the command that finishes the rest."""
        lines = []
        for r in self.failed:
            lines += [f"{r.name}{RESTORE_LABEL if cmd.startswith('dbops fleet.restore ') else ''}: {cmd}"
                      for cmd in r.recovery]
        if self.not_run:
            lines.append(f"the {len(self.not_run)} target(s) not run: {self.resume_command()}")
        return lines

    def to_dict(self) -> dict:
        return {"env": self.env, "run": self.run, "shard": self.shard, "epoch": self.epoch, "backup": self.backup,
                "rehearsal": self.rehearsal, "lint": self.lint, "counts": self.counts(), "stopped": self.stopped,
                "ok": self.ok,
                "started_at": self.started_at, "finished_at": self.finished_at, "seconds": round(self.seconds, 3),
                "workers": self.workers, "records": [r.to_dict() for r in self.records],
                "not_run": [n.to_dict() for n in self.not_run], "recovery": self.recovery()}

    def write(self, directory: Path) -> str | None:
        """The report as JSON under ``directory``; None when it cannot be written (the manifest has a copy)."""
        shard = f"_shard{self.shard.replace('/', 'of')}" if self.shard else ""
        name = f"fleet_{self.env}_{self.run}{shard}_e{self.epoch}.json"
        why_not = formats.write_report_json(directory / name, self.to_dict())
        return None if why_not else str(directory / name)

    def rehearsal_line(self) -> str:
        rh = self.rehearsal
        if not rh:
            return "nothing to do"
        if not rh.get("ran"):
            return f"skipped: {rh.get('why')}"
        return (f"on a copy of {rh['target']} ({rh['backup']}): {rh['errors']} error(s), "
                f"{len(rh['findings'])} finding(s); {rh['why']}")

    def summary(self) -> str:
        counts = ", ".join(f"{n} {k}" for k, n in self.counts().items()) or "nothing to do"
        head = f"fleet deploy --env {self.env} run {self.run}" + (f" shard {self.shard}" if self.shard else "")
        return f"{head}: {counts} in {self.seconds:.1f}s ({self.workers} worker(s))"

    def rows(self) -> list[list[str]]:
        rows = [[r.name, r.group, r.outcome, r.step or "", f"{r.seconds:.2f}s",
                 ", ".join(r.revision_after or []) if r.revision_after is not None else "?", r.error or ""]
                for r in self.records]
        rows += [[n.name, n.group, "not run", "", "", "", n.why] for n in self.not_run]
        return rows

    HEADERS = ("target", "group", "outcome", "failed step", "time", "revision", "reason")

    def text(self) -> str:
        lines = [self.summary(), f"backup: {self.backup}", f"rehearsal: {self.rehearsal_line()}",
                 f"dry run + lint: {self.lint}"]
        if self.stopped:
            lines.append(f"stopped: {self.stopped}")
        lines.append(formats.text_table(self.HEADERS, self.rows()))
        if self.recovery():
            lines += ["", "to recover:"] + [f"  {line}" for line in self.recovery()]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"### {self.summary()}", "", f"- backup: {self.backup}", f"- rehearsal: {self.rehearsal_line()}",
                 f"- dry run + lint: {self.lint}"]
        if self.stopped:
            lines.append(f"- **stopped:** {self.stopped}")
        lines += ["", formats.markdown_table(self.HEADERS, self.rows())]
        if self.recovery():
            lines += ["", "To recover:", "", *(f"- {formats.md_code(line)}" for line in self.recovery())]
        return "\n".join(lines)

    def notification(self) -> str:
        icon = "✅" if self.ok else "🚨"
        text = f"{icon} {self.summary()}"
        if self.stopped:
            text += f"\nstopped: {self.stopped}"
        if self.failed:
            text += "\nfailed: " + ", ".join(r.name for r in self.failed[:20])
        return text
