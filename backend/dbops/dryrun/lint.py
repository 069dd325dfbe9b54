"""Squawk on each revision's SQL: :func:`lint_revisions` (the deploy, the rehearsal), ``inv lint``
(:func:`lint_pending`) and ``inv sync``'s check of the revision it has just generated (:func:`lint_revision_file`).

**The rehearsal's hook.**  Whoever ran the revisions for real (``inv
rehearse``) passes the statements it captured from the cursor::

    run = dryrun.lint_revisions(project, ["a1", "b2"], captured={"b2": ["UPDATE users SET ...", ...]})
    run.revisions[1].source        # "captured": b2 was linted from the captured SQL
    run.revisions[1].offline_error # still says why offline SQL failed (or None)
    run.findings                   # squawk's findings, each with .file and .line

A revision in ``captured`` is linted from those statements *instead of* its
offline SQL; the others from their offline SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from .. import postgres, squawk
from ..errors import LintFailed, NothingCaptured, UsageError
from ..findings import Finding
from ..formats import check_format, show_report
from ..migrations import Project
from ..servers import environment_url
from ..settings import Settings
from ..ui import SILENT, UI
from .model import OFFLINE, DryRun
from .offline import render_sql
from .report import findings_text, lint_annotations, lint_report
from .source import source_line_for


def lint_revisions(project: Project, revisions: Iterable[str], *, pg_version: str | None = None,
                   captured: dict[str, Sequence[str]] | None = None,
                   config: str | Path | bool | None = True) -> DryRun:
    """Each revision's SQL (:func:`~dbops.dryrun.offline.render_sql`) and its findings, oldest first as given.

    ``captured``: revision -> statements a rehearsal captured, linted instead of the offline SQL.
    ``config``: the ``.squawk.toml`` to honour; ``True`` (the default) finds the project's beside
    alembic.ini, ``None``/``False`` uses none.  Each revision file's ``# dbops: allow <rule>: <why>``
    comments accept its findings of that rule (read first: a malformed one raises BadAllowComment
    before anything is linted).
    """
    revisions = [project.revision(r).revision for r in revisions]
    if config is True:
        config = squawk.project_config(project.ini.parent)
    allows = {rev: squawk.allows_in(project.revision(rev).path) for rev in revisions}
    run = DryRun(render_sql(project, revisions, captured=captured))
    for rev in run.revisions:
        if not rev.sql:
            continue
        found = squawk.lint_sql(rev.sql, revision=rev.revision, pg_version=pg_version, config=config or None)
        used = set()
        for f in found:
            f.file = rev.path
            f.line = rev.source_line(f.sql_line) if rev.source == OFFLINE else None
            if f.line is None:
                f.line = source_line_for(rev.path, f.statement)
            allow = next((a for a in allows[rev.revision] if a.rule == f.kind), None)
            if allow is not None:
                f.accepted = allow.reason
                used.add(allow)
        run.findings += found
        run.unused_allows += [a for a in allows[rev.revision] if a not in used]
    return run


def revision_id(project: Project, ref: str) -> str:
    """A revision from an id (a prefix, ``head``) or from the path of its file (what a CI diff lists)."""
    if ref.endswith(".py") and Path(ref).is_file():
        path = Path(ref).resolve()
        script = next((s for s in project.script.walk_revisions() if Path(s.path).resolve() == path), None)
        if script is None:
            raise UsageError(f"{ref} is not a revision file of {project.ini}",
                             hint=f"pass a file under {project.script.dir} or a revision id")
        return script.revision
    return project.revision(ref).revision


def pending_revisions(settings: Settings, project: Project) -> list[str]:
    """The revisions pending on the environment's database."""
    url = environment_url(settings)
    with postgres.connect(url, name="dbops lint", timeout=settings.connect_timeout_s,
                          hint=settings.connect_hint) as conn:
        return [s.revision for s in project.pending(project.current(conn))]


def lint_pending(settings: Settings, revisions: list[str] | None = None, *, fmt: str = "text",
                 captured: dict[str, Sequence[str]] | None = None, ui: UI = SILENT) -> DryRun:
    """``inv lint``: lint the given revisions, or those pending on the environment's database.

    Shows the report in ``fmt`` (text: the SQL, the findings; json; markdown: a table per revision) and,
    under GitHub Actions (``settings.github_actions``, text and markdown only), an annotation per finding
    on the revision file.  Raises LintFailed on error-level findings.
    """
    check_format(fmt)
    project = Project(settings.alembic_ini)
    revisions = [revision_id(project, r) for r in revisions] if revisions else pending_revisions(settings, project)
    run = lint_revisions(project, revisions, captured=captured,
                         config=squawk.project_config(settings.root) or True)
    show_report(ui, lint_report(run, fmt), lambda: lint_annotations(run, root=settings.root), fmt=fmt,
                github_actions=settings.github_actions)
    if run.errors:
        raise LintFailed(run.findings, hint="rewrite the statements the safer way shown above before deploying, "
                         "or accept one with `# dbops: allow <rule>: <why>` in the revision file")
    return run


def lint_revision_file(path: str | Path, ini: str | Path, *, ui: UI = SILENT) -> list[Finding]:
    """Squawk's findings for a freshly generated revision file (``inv sync`` calls this), shown through ``ui``.

    Advice only: a revision of which nothing was captured is a warning here (``inv lint`` and the deploy stop).
    """
    path = Path(path).resolve()
    project = Project(ini)
    script = next((s for s in project.script.walk_revisions() if Path(s.path).resolve() == path), None)
    if script is None:
        ui.warn(f"lint: {path} is not a revision of {project.ini}; not linted")
        return []
    try:
        run = lint_revisions(project, [script.revision])
    except NothingCaptured as exc:  # this lint only advises; inv lint and the deploy stop on it
        ui.warn(f"lint: {exc.message}; {exc.hint}")
        return []
    for line in run.notices:
        ui.warn(line)
    if run.findings:
        ui.say(findings_text(run))
    elif not run.notices:
        ui.ok(f"squawk: no findings in {script.revision}")
    return run.findings
