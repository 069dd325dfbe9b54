"""``inv lint``'s report: the SQL with its findings as text, JSON or markdown, and the GitHub annotations."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..annotations import Annotation, annotations, repo_path
from ..formats import formatted, markdown_table, md_cell, md_code
from ..squawk import render_findings, tally
from .model import CAPTURED, NONE, DryRun, RevisionSql


def sql_text(revisions: Sequence[RevisionSql]) -> str:
    """The dry-run SQL with a banner at every revision boundary (a revision without SQL says why)."""
    parts = []
    for r in revisions:
        via = " (captured in a rehearsal)" if r.source == CAPTURED else ""
        parts.append(f"-- ==== revision {r.revision}: {r.doc} ({r.name}){via} ====")
        if r.offline_error and r.source != CAPTURED:
            parts.append(f"-- no offline SQL: {r.offline_error}")
        elif r.sql:
            parts.append(r.sql.strip())
    return "\n\n".join(parts) + "\n"


def findings_text(run: DryRun) -> str:
    """Squawk's findings as text; with a revision that was not linted, never a bare "no findings"."""
    text = render_findings(run.findings)
    unlinted = [r.revision for r in run.revisions if r.source == NONE]
    if not unlinted:
        return text
    skipped = f"not linted: {', '.join(unlinted)} (no SQL to lint, see above)"
    if not run.findings:
        return f"squawk: no findings in the SQL that was linted; {skipped}"
    return f"{text}\nsquawk: {skipped}"


def lint_report(run: DryRun, fmt: str = "text") -> str:
    """A dry run as text (the SQL, then the findings), json or markdown."""
    return formatted(run, fmt, text=lambda: _text(run), markdown=lambda: _markdown(run))


def _text(run: DryRun) -> str:
    if not run.revisions:
        return "nothing pending: no SQL to lint"
    parts = [sql_text(run.revisions).rstrip()]
    parts += [f"! {line}" for line in run.notices]
    parts.append(findings_text(run))
    for a in run.unused_allows:
        parts.append(f"note: {Path(a.path).name} line {a.line}: `# dbops: allow {a.rule}` matched no finding "
                     "(remove it)")
    return "\n".join(parts)


def _markdown(run: DryRun) -> str:
    verdict = "❌ unsafe statements" if run.errors else "✅ no unsafe statements"
    errors, warnings, style, accepted = tally(run.findings)
    lines = [f"## dbops lint: {verdict}", "",
             f"{len(run.revisions)} revision(s): {errors} error(s), {warnings} warning(s), {style} style note(s), "
             f"{accepted} accepted."]
    if not run.revisions:
        lines[-1] = "Nothing pending: no SQL to lint."
    for rev in run.revisions:
        lines += ["", f"### `{rev.revision}` {md_cell(rev.doc)} ({md_code(rev.name)})"]
        if rev.notice:
            lines.append(f"> ⚠️ {md_cell(rev.notice)}")
        findings = [f for f in run.findings if f.revision == rev.revision]
        if not findings:
            lines.append("" if rev.notice else "No findings.")
            continue
        rows = []
        for f in findings:
            where = f"{rev.name}:{f.line}" if f.line else f"SQL line {f.sql_line}"
            safer = f"accepted: {f.accepted}" if f.accepted else f.safer
            rows.append((f.mark(), md_code(f.kind), where, md_code(f.statement), safer))
        lines += ["", markdown_table(("level", "rule", "where", "statement", "safer way"), rows)]
    if run.unused_allows:
        lines += ["", "Allow comments that matched no finding: "
                  + ", ".join(f"{md_code(Path(a.path).name)} line {a.line} ({md_code(a.rule)})"
                              for a in run.unused_allows)]
    return "\n".join(lines)


def lint_annotations(run: DryRun, *, root: str | Path | None = None) -> str:
    """One annotation per finding (error / warning; style and accepted ones as notices) and per revision
    without offline SQL (a warning), on the revision file at the line of the operation."""
    items = [Annotation("warning", repo_path(rev.path, root), rev.error_line, f"no offline SQL ({rev.revision})",
                        rev.notice) for rev in run.revisions if rev.notice]
    items += [f.annotation(root) for f in run.findings]
    return annotations(items)
