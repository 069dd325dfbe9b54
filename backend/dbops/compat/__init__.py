"""``inv compat``: the code now serving, on the schema the pending revisions produce.

During a deploy the old code keeps serving on the new schema (the upgrade
runs first, the new code starts after).  :func:`check` compares the models
of the serving commit (:mod:`.old_code`: ``--ref``, or the revision the app
reports, mapped to the commit that added its file) with the schema a
throwaway database reaches when upgraded from empty through the pending
revisions (:mod:`.schema`).  A table or column the old code maps that is
dropped or renamed, a type narrowed, or a NOT NULL column without a default
the old code does not write is a :class:`~dbops.findings.Finding` naming the model,
the column, the revision and the expand/contract sequence that avoids it
(:mod:`.findings`).  :func:`run` shows the report and raises
:class:`~dbops.errors.CompatFailed` on findings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy.engine import URL

from .. import scratch
from ..errors import CompatFailed
from ..findings import Finding
from ..migrations import Project
from ..settings import Settings
from ..ui import SILENT, UI
from . import findings as findings_
from . import old_code, schema

__all__ = ["CompatReport", "Finding", "check", "render", "run"]


@dataclass
class CompatReport:
    commit: str
    described: str
    source: str
    #: the revision the serving code's schema is at (where the throwaway database starts)
    start: list[str]
    heads: list[str]
    #: the pending revisions compared, oldest first
    revisions: list[str]
    models: list[str]
    tables: int
    findings: list[Finding] = field(default_factory=list)
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict:
        return {"commit": self.commit, "source": self.source, "start": self.start, "heads": self.heads,
                "revisions": self.revisions, "models": self.models, "tables": self.tables,
                "findings": [f.to_dict() for f in self.findings], "notes": self.notes,
                "duration_s": round(self.duration_s, 3)}


def check(settings: Settings, *, ref: str | None = None, server_url: URL | None = None,
          project: Project | None = None, ui: UI = SILENT) -> CompatReport:
    """Compare the serving commit's models with the schema at the heads; the report (findings or none)."""
    started = time.monotonic()
    project = project or Project(settings.alembic_ini)
    heads = list(project.heads())
    notes: list[str] = []
    with scratch.temporary_directory("dbops-compat-", purpose="the serving commit's source tree") as tmp:
        ui.say("reading the serving code's models...")
        old = old_code.load(settings, project, ref=ref, workdir=tmp)
    known = [h for h in old.heads if _known(project, h)]
    if known != old.heads:
        notes.append(f"commit {old.commit[:12]}'s head(s) {', '.join(old.heads) or '(none)'} are not all in the "
                     "migration scripts: compared from an empty database")
    ui.say(f"upgrading a throwaway database to {', '.join(known) or 'base'}, then through the pending revisions...")
    steps = schema.build(project, known, server_url=server_url, places=settings.client_places)
    report = CompatReport(
        commit=old.commit, described=old.described, source=old.source, start=known, heads=heads,
        revisions=[s.revision for s in steps.pending], models=sorted({m for t in old.tables for m in t.models}),
        tables=len(old.tables), findings=findings_.compare(old, steps), notes=notes,
    )
    report.duration_s = time.monotonic() - started
    return report


def _known(project: Project, rev: str) -> bool:
    try:
        return project.script.get_revision(rev) is not None
    except Exception:
        return False


def render(report: CompatReport) -> str:
    """The report as text: what was compared, then each finding with its fix."""
    lines = [
        f"serving code: commit {report.described} ({report.source})",
        (f"new schema: {', '.join(report.heads)} after {len(report.revisions)} pending revision(s)"
         + (f" ({', '.join(report.revisions)})" if report.revisions else "")
         + f" from {', '.join(report.start) or 'base'}"),
        (f"compared {len(report.models)} model(s) ({', '.join(report.models) or 'none'}) over {report.tables} "
         f"table(s) in {report.duration_s:.1f}s"),
        *[f"note: {n}" for n in report.notes],
    ]
    if not report.findings:
        lines.append("compatible: the serving code's tables, columns and types are all still there, "
                     "and it can insert rows")
        return "\n".join(lines)
    lines.append(f"{len(report.findings)} finding(s): the serving code breaks on the new schema")
    for f in report.findings:
        where = f" [revision {f.revision}, {f.file}]" if f.revision else ""
        lines.append(f"  ✗ {f.message}{where}")
        lines.append(f"      fix: {f.safer}")
    return "\n".join(lines)


def gate(settings: Settings, project: Project, *, ref: str | None = None, allow_unsafe: bool = False,
         plan: bool = False, ui: UI = SILENT) -> tuple[str, list[str]]:
    """The deploy's ``compat`` step (``inv deploy --compat``): its detail line and warnings.

    Findings stop the deploy (CompatFailed, before the backup and the
    upgrade) unless ``allow_unsafe``; under ``plan`` they are shown and the
    plan says a deploy would stop.
    """
    report = check(settings, ref=ref, project=project, ui=ui)
    ui.say(render(report))
    detail = f"serving commit {report.commit[:12]}: {len(report.findings)} finding(s)"
    if not report.findings:
        return f"serving commit {report.commit[:12]}: compatible", []
    if not (allow_unsafe or plan):
        raise CompatFailed(report)
    warning = (f"{len(report.findings)} change(s) break the serving code (commit {report.commit[:12]}): "
               + ("a deploy stops here unless --allow-unsafe" if plan else "deployed anyway with --allow-unsafe"))
    ui.warn(warning)
    return detail, [warning]


def run(settings: Settings, *, ref: str | None = None, server_url: URL | None = None, ui: UI = SILENT) -> CompatReport:
    """``inv compat``: check, show the report; CompatFailed on findings."""
    report = check(settings, ref=ref, server_url=server_url, ui=ui)
    ui.say(render(report))
    if report.findings:
        raise CompatFailed(report)
    ui.ok("the serving code works on the new schema")
    return report
