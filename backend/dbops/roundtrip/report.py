"""What a round-trip run found: per revision results, the separate checks; as text, JSON, markdown, annotations.

:meth:`RoundTripReport.render` is the text ``inv test-rollback`` prints;
:func:`formatted` the report in any ``--format``; :func:`annotations` the
GitHub workflow commands on the failed revisions' files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import formats
from ..annotations import Annotation, function_line, repo_path
from ..annotations import annotations as workflow_commands
from ..formats import markdown_table, md_cell, md_code, text_table
from ..units import millis, truncate

OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"
UP_ONLY = "up only"
#: an unmarked empty downgrade whose upgrade left the schema unchanged (a backfill): a note, not a failure
DATA_ONLY = "data only"

#: names of the checks, in report order
STAIRWAY = "round trip"
SINGLE_HEAD = "single head"
DOWNGRADES = "downgrades implemented"
MODELS = "models match database"


@dataclass
class RevisionResult:
    revision: str
    message: str
    up_ms: float | None = None
    down_ms: float | None = None
    #: the second upgrade (after the downgrade)
    again_ms: float | None = None
    #: ok | failed | up only (irreversible) | data only | skipped (not reached)
    result: str = SKIPPED
    problems: list[str] = field(default_factory=list)
    #: notes and warnings that do not fail the run (data only, a likely no-op upgrade)
    notes: list[str] = field(default_factory=list)

    @property
    def migration_ms(self) -> float:
        """Time spent in this revision's own migration steps (upgrade, downgrade, upgrade again)."""
        return (self.up_ms or 0) + (self.down_ms or 0) + (self.again_ms or 0)


@dataclass
class CheckResult:
    name: str
    status: str
    message: str
    details: list[str] = field(default_factory=list)
    hint: str | None = None


@dataclass
class RoundTripReport:
    """What one ``inv test-rollback`` run found (deploy keeps its own :class:`~dbops.deploy.report.DeployReport`)."""

    config: str
    server: str
    database: str
    revisions: list[RevisionResult] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    #: revisions applied without checks before the stairway (--last / --from)
    prepared: int = 0
    seconds: float = 0.0
    #: rebuilds after failures, and the revisions they replayed (from a checkpoint)
    rebuilds: int = 0
    replayed: int = 0
    #: wrong downgrades whose leftovers were dropped (no rebuild needed)
    repairs: int = 0
    #: revisions whose upgrade failed on its own but passed in one upgrade from the base (a fresh install):
    #: the revisions after each were tested on a database built that way
    one_shot: list[str] = field(default_factory=list)
    #: ``--since``: the ref and its commit; how the chain at that commit was applied ("restored" from the
    #: cache, "kept" in it after being built, None: nothing cached)
    since: str | None = None
    base_cached: str | None = None
    #: ``DBOPS_ROLLBACK_SNAPSHOTS=tracked``: why snapshots were read whole instead (None: tracked, or full asked)
    snapshot_note: str | None = None

    @property
    def ok(self) -> bool:
        return all(c.status != FAILED for c in self.checks)

    @property
    def migration_seconds(self) -> float:
        """Summed time of the migration steps the stairway ran (upgrades, downgrades, upgrades again)."""
        return sum(r.migration_ms for r in self.revisions) / 1000

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == FAILED]

    def check(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)

    def revision(self, rev: str) -> RevisionResult | None:
        return next((r for r in self.revisions if r.revision == rev), None)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def write_json(self, path: Path) -> str | None:
        """The report as JSON at ``path``; None, or why it could not be written (the run goes on)."""
        return formats.write_report_json(Path(path), self.to_dict())

    # -- for humans ---------------------------------------------------------------
    def render(self) -> str:
        lines = [f"round trip of {self.config} on {self.database}"]
        if self.since is not None:
            how = {"restored": ", restored from the cache", "kept": ", built and kept in the cache"}
            lines.append(f"(only the revisions new or changed since {self.since} and after them; the "
                         f"{self.prepared} older revisions applied first without checks"
                         f"{how.get(self.base_cached or '', '')})")
        elif self.prepared:
            lines.append(f"({self.prepared} older revisions applied first without checks)")
        rows = [
            (
                r.revision,
                truncate(r.message, 40),
                millis(r.up_ms),
                millis(r.down_ms),
                r.result,
            )
            for r in self.revisions
        ]
        lines.append(text_table(("revision", "message", "up ms", "down ms", "result"), rows))
        for r in self.revisions:
            if r.problems or r.notes:
                lines.append("")
                lines.append(f"revision {r.revision} ({truncate(r.message, 40)}):")
                lines.extend("    " + p for p in r.problems)
                lines.extend("    note: " + n if not n.startswith("warning:") else "    " + n for n in r.notes)
        lines.append("")
        lines.append("checks:")
        for c in self.checks:
            mark = {OK: "✔", FAILED: "✘", SKIPPED: "-"}.get(c.status, "?")
            lines.append(f"  {mark} {c.name}: {c.message}")
            lines.extend("      " + d for d in c.details)
            if c.hint and c.status == FAILED:
                lines.append(f"      hint: {c.hint}")
        passed = sum(1 for c in self.checks if c.status == OK)
        if self.snapshot_note:
            lines.append(f"note: {self.snapshot_note}")
        up = sum((r.up_ms or 0) + (r.again_ms or 0) for r in self.revisions) / 1000
        down = sum(r.down_ms or 0 for r in self.revisions) / 1000
        lines.append("")
        lines.append(
            f"summary: {passed} of {len(self.checks)} checks passed, "
            f"{len(self.failed_checks)} failed; {len(self.revisions)} revisions in {self.seconds:.2f} s "
            f"(upgrades {up:.2f} s, downgrades {down:.2f} s)"
            + (f"; {self.rebuilds} rebuild(s) after failures replayed {self.replayed} revision(s)"
               if self.rebuilds else "")
            + (f"; leftovers of {self.repairs} downgrade(s) dropped" if self.repairs else "")
        )
        return "\n".join(lines)


def formatted(report: RoundTripReport, fmt: str = "text") -> str:
    """The report as text, json or markdown."""
    return formats.formatted(report, fmt, text=report.render, markdown=lambda: markdown(report))


def markdown(report: RoundTripReport) -> str:
    """The report as a pull-request comment."""
    verdict = "✅ every check passed" if report.ok else "❌ round-trip checks failed"
    lines = [f"## dbops test-rollback: {verdict}", "",
             markdown_table(("revision", "message", "up ms", "down ms", "result"),
                            [(md_code(r.revision), r.message, millis(r.up_ms), millis(r.down_ms), r.result)
                             for r in report.revisions])]
    for r in report.revisions:
        if r.problems or r.notes:
            lines += ["", f"**{md_cell(r.revision)}**: " + "; ".join(md_cell(p) for p in r.problems + r.notes)]
    lines += ["", markdown_table(("check", "status", "message"),
                                 [(c.name, c.status, c.message + ("; " + "; ".join(c.details) if c.details else ""))
                                  for c in report.checks])]
    return "\n".join(lines)


def annotations(report: RoundTripReport, paths: dict[str, str], *, root: str | Path | None = None) -> str:
    """An error per failed revision (at its ``def downgrade``, or ``def upgrade`` when the upgrade failed),
    a warning per revision note; ``paths``: revision -> its file."""
    items = []
    for r in report.revisions:
        path = paths.get(r.revision)
        if not path:
            continue
        failed_up = r.result == FAILED and r.up_ms is None
        if r.problems and r.result == FAILED:
            items.append(Annotation("error", repo_path(path, root),
                                    function_line(path, "upgrade" if failed_up else "downgrade"),
                                    f"round trip failed ({r.revision})", "\n".join(r.problems)))
        for note in r.notes:
            items.append(Annotation("warning", repo_path(path, root), function_line(path, "downgrade"),
                                    f"round trip note ({r.revision})", note))
    return workflow_commands(items)
