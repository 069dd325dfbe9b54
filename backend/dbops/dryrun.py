"""The dry run: the SQL each revision would run (``alembic upgrade prev:rev --sql``), linted by Squawk.

The guide's "dry run" step.  Every revision is rendered offline on its own
(no database), so each Squawk finding names its revision.  Used by the
deploy's dry-run step, by ``inv lint`` and by ``inv sync`` for the revision
it has just generated.  Nothing here prints: results are returned, and the
callers show them through their UI.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from . import postgres, squawk
from .errors import LintFailed
from .migrations import Project
from .settings import Settings
from .squawk import Finding
from .ui import SILENT, UI

#: the URL offline SQL is rendered for: never connected to
OFFLINE_URL = URL.create("postgresql+psycopg2", username="offline", host="localhost", database="offline")


@dataclass
class DryRun:
    """Each revision's SQL and Squawk's findings on it."""

    sql: dict[str, str]
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]


def revision_sql(project: Project, revision: str, *, url: URL = OFFLINE_URL) -> str:
    """The SQL one revision runs on upgrade (from its parent), without a database."""
    script = project.revision(revision)
    down = script.down_revision
    start = down if isinstance(down, str) else None
    if isinstance(down, (tuple, list)) and down:
        start = down[0]
    return project.upgrade_sql(url, start, revision)


def lint_revisions(project: Project, revisions: Iterable[str], *, pg_version: str | None = None) -> DryRun:
    """Each revision's SQL and its findings, oldest first as given."""
    result = DryRun({}, [])
    for rev in revisions:
        sql = revision_sql(project, rev)
        result.sql[rev] = sql
        result.findings += squawk.lint_sql(sql, revision=rev, pg_version=pg_version)
    return result


def render_sql(project: Project, sqls: dict[str, str]) -> str:
    """The dry-run SQL with a banner at every revision boundary."""
    parts = []
    for rev, sql in sqls.items():
        script = project.revision(rev)
        parts.append(f"-- ==== revision {rev}: {script.doc} ({Path(script.path).name}) ====")
        parts.append(sql.strip())
    return "\n\n".join(parts) + "\n"


def lint_pending(settings: Settings, revisions: list[str] | None = None, *, ui: UI = SILENT) -> list[Finding]:
    """``inv lint``: lint the given revisions, or those pending on the environment's database.

    Shows the SQL and the findings; raises LintFailed on error-level findings.
    """
    from .servers import environment_url

    project = Project(settings.alembic_ini)
    if not revisions:
        url = environment_url(settings)
        with postgres.connect(url, name="dbops lint", timeout=settings.connect_timeout_s,
                              hint=settings.connect_hint) as conn:
            revisions = [s.revision for s in project.pending(project.current(conn))]
        if not revisions:
            ui.ok("nothing pending: no SQL to lint")
            return []
    else:
        revisions = [project.revision(r).revision for r in revisions]
    run = lint_revisions(project, revisions)
    ui.say(render_sql(project, run.sql))
    ui.say(squawk.render_findings(run.findings))
    if run.errors:
        raise LintFailed(run.findings, hint="rewrite the statements the safer way shown above before deploying")
    return run.findings


def lint_revision_file(path: str | Path, ini: str | Path, *, ui: UI = SILENT) -> list[Finding]:
    """Squawk's findings for a freshly generated revision file (``inv sync`` calls this), shown through ``ui``."""
    path = Path(path).resolve()
    project = Project(ini)
    script = next((s for s in project.script.walk_revisions() if Path(s.path).resolve() == path), None)
    if script is None:
        ui.warn(f"lint: {path} is not a revision of {project.ini}; not linted")
        return []
    findings = lint_revisions(project, [script.revision]).findings
    if findings:
        ui.say(squawk.render_findings(findings))
    else:
        ui.ok(f"squawk: no findings in {script.revision}")
    return findings
