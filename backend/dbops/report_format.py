"""Reports for reviews: ``--format text|json|markdown`` and GitHub Actions annotations, as strings.

Nothing here prints: each function returns text the task shows through its
UI.  Shared by ``inv lint``, ``inv test-rollback`` and ``inv rehearse``.

The building blocks (for any report):

- :func:`check_format` — ``fmt`` is one of :data:`FORMATS`, else a UsageError.
- :func:`to_json` — a report's dict as JSON (indented, ``default=str``).
- :func:`markdown_table` — a GitHub-flavoured table; cells escaped (``|``, newlines) and code spans safe.
- :class:`Annotation` and :func:`annotations` — GitHub workflow commands,
  ``::error file={name},line={line},title={title}::{message}`` (also ``warning`` and ``notice``), one per
  line, escaped as GitHub's toolkit does: ``%`` ``\\r`` ``\\n`` in the message as ``%25`` ``%0D``
  ``%0A``; in properties also ``:`` ``,`` as ``%3A`` ``%2C``.  ``file`` is relative to the repository
  root (:func:`repo_path`).  The runner reads them from the step's output; print them under
  ``GITHUB_ACTIONS=true`` only (``settings.github_actions``).

The reports: :func:`lint_report` / :func:`lint_annotations` (a :class:`dbops.dryrun.DryRun`),
:func:`rollback_report` / :func:`rollback_annotations` (a :class:`dbops.roundtrip.report.RoundTripReport`),
:func:`rehearse_report` / :func:`rehearse_annotations` (a :class:`dbops.rehearse.RehearsalReport`).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .units import duration, millis, truncate

FORMATS = ("text", "json", "markdown")
LEVELS = ("error", "warning", "notice")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", hint=f"use --format with one of: {', '.join(FORMATS)}")
    return fmt


def to_json(data: object) -> str:
    return json.dumps(data, indent=2, default=str)


# -- GitHub workflow commands ----------------------------------------------------------------------------------

def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


@dataclass(frozen=True)
class Annotation:
    level: str  # error | warning | notice
    file: str
    line: int | None
    title: str
    message: str

    def command(self) -> str:
        if self.level not in LEVELS:
            raise ValueError(f"annotation level {self.level!r}")
        props = [f"file={escape_property(self.file)}"]
        if self.line:
            props.append(f"line={int(self.line)}")
        if self.title:
            props.append(f"title={escape_property(self.title)}")
        return f"::{self.level} {','.join(props)}::{escape_data(self.message)}"


def annotations(items: Iterable[Annotation]) -> str:
    """The workflow commands, one a line ("" for none)."""
    return "\n".join(a.command() for a in items)


def repo_path(path: str | Path, root: str | Path | None) -> str:
    """``path`` relative to the repository root (what GitHub's ``file=`` wants), else as given."""
    path = Path(path).resolve()
    if root is not None:
        try:
            return path.relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


# -- markdown ------------------------------------------------------------------------------------------------

def md_cell(text: object) -> str:
    return " ".join(str("" if text is None else text).split()).replace("|", "\\|")


class Code(str):
    """A cell already made safe for markdown (a code span)."""


def md_code(text: object, width: int = 120) -> Code:
    flat = truncate(str(text or ""), width).replace("`", "'").replace("|", "\\|")
    return Code(f"`{flat}`" if flat else "")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) if isinstance(c, Code) else md_cell(c) for c in row) + " |"
              for row in rows]
    return "\n".join(lines)


# -- inv lint ------------------------------------------------------------------------------------------------

_LEVEL_MARK = {"error": "✘ error", "warning": "! warning", "style": "· style"}


def lint_report(run, fmt: str = "text") -> str:
    """A :class:`dbops.dryrun.DryRun` as text (the SQL, then the findings), json or markdown."""
    from . import dryrun, squawk

    check_format(fmt)
    if fmt == "json":
        return to_json(run.as_dict())
    if fmt == "markdown":
        return _lint_markdown(run)
    if not run.revisions:
        return "nothing pending: no SQL to lint"
    parts = [dryrun.sql_text(run.revisions).rstrip()]
    parts += [f"! {line}" for line in run.notices]
    parts.append(squawk.render_findings(run.findings))
    for a in run.unused_allows:
        parts.append(f"note: {Path(a.path).name} line {a.line}: `# dbops: allow {a.rule}` matched no finding "
                     "(remove it)")
    return "\n".join(parts)


def _summary(run) -> str:
    errors = len(run.errors)
    accepted = len(run.accepted)
    style = sum(f.level == "style" and not f.accepted for f in run.findings)
    warnings = len(run.findings) - errors - accepted - style
    return f"{errors} error(s), {warnings} warning(s), {style} style note(s), {accepted} accepted"


def _lint_markdown(run) -> str:
    verdict = "❌ unsafe statements" if run.errors else "✅ no unsafe statements"
    lines = [f"## dbops lint: {verdict}", "", f"{len(run.revisions)} revision(s): {_summary(run)}."]
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
            level = "✔ accepted" if f.accepted else _LEVEL_MARK.get(f.level, f.level)
            where = f"{rev.name}:{f.source_line}" if f.source_line else f"SQL line {f.line}"
            safer = f"accepted: {f.accepted}" if f.accepted else f.alternative
            rows.append((level, md_code(f.rule), where, md_code(f.statement), safer))
        lines += ["", markdown_table(("level", "rule", "where", "statement", "safer way"), rows)]
    if run.unused_allows:
        lines += ["", "Allow comments that matched no finding: "
                  + ", ".join(f"{md_code(Path(a.path).name)} line {a.line} ({md_code(a.rule)})"
                              for a in run.unused_allows)]
    return "\n".join(lines)


def lint_annotations(run, *, root: str | Path | None = None) -> str:
    """One annotation per finding (error / warning; style and accepted ones as notices) and per revision
    without offline SQL (a warning), on the revision file at the line of the operation."""
    items = []
    for rev in run.revisions:
        if rev.notice:
            items.append(Annotation("warning", repo_path(rev.path, root), rev.error_line,
                                    f"no offline SQL ({rev.revision})", rev.notice))
    for f in run.findings:
        level = "notice" if f.accepted or f.level == "style" else ("error" if f.level == "error" else "warning")
        text = f.message + "\n" + "statement: " + " ".join(f.statement.split())
        text += f"\naccepted: {f.accepted}" if f.accepted else (f"\nsafer: {f.alternative}" if f.alternative else "")
        items.append(Annotation(level, repo_path(f.path, root) if f.path else f"{f.revision}.sql",
                                f.source_line or f.line, f"squawk {f.rule} ({f.revision})", text))
    return annotations(items)


# -- inv test-rollback ---------------------------------------------------------------------------------------

def rollback_report(report, fmt: str = "text") -> str:
    """A :class:`dbops.roundtrip.report.RoundTripReport` as text, json or markdown."""
    check_format(fmt)
    if fmt == "json":
        return to_json(report.to_dict())
    if fmt == "text":
        return report.render()
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


def function_line(path: str | Path, name: str) -> int | None:
    """The line of ``def name`` in a Python file."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    return next((n.lineno for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name == name), None)


def rollback_annotations(report, paths: dict[str, str], *, root: str | Path | None = None) -> str:
    """An error per failed revision (at its ``def downgrade``, or ``def upgrade`` when the upgrade failed),
    a warning per revision note; ``paths``: revision -> its file."""
    items = []
    for r in report.revisions:
        path = paths.get(r.revision)
        if not path:
            continue
        failed_up = r.result == "failed" and r.up_ms is None
        if r.problems and r.result == "failed":
            items.append(Annotation("error", repo_path(path, root),
                                    function_line(path, "upgrade" if failed_up else "downgrade"),
                                    f"round trip failed ({r.revision})", "\n".join(r.problems)))
        for note in r.notes:
            items.append(Annotation("warning", repo_path(path, root), function_line(path, "downgrade"),
                                    f"round trip note ({r.revision})", note))
    return annotations(items)


# -- inv rehearse --------------------------------------------------------------------------------------------

_FINDING_MARK = {**_LEVEL_MARK, "accepted": "✔ accepted"}


def rehearse_report(report, fmt: str = "text") -> str:
    """A :class:`dbops.rehearse.RehearsalReport` as text, json or markdown (a table of statements per revision:
    duration, locks with what they block and their hold time, rewrites and scans, the tables' rows and size,
    the findings; then the findings with the safer way, and the totals)."""
    check_format(fmt)
    if fmt == "json":
        return to_json(report.as_dict())
    if fmt == "text":
        from .rehearse import render

        return render(report)
    from .rehearse.findings import describe_blocks

    timed = not report.schema_only
    errors = len(report.errors)
    verdict = f"❌ {errors} error-level finding(s)" if errors else "✅ no error-level findings"
    lines = [f"## dbops rehearse: {verdict}", "",
             (f"Rehearsal of {md_cell(report.env)} on {md_cell(report.server)} (PostgreSQL "
              f"{md_cell(report.server_version)}): backup {md_code(report.backup_key)} "
              f"({'verified' if report.backup_verified else 'not verified'}), restored in {report.restore_s:.1f} s.")]
    if report.schema_only:
        lines.append("**Schema only: durations and hold times are NOT measured.**")
    lines += [f"> ⚠️ {md_cell(w)}" for w in report.warnings]
    for rev in report.revisions:
        lines += ["", f"### {md_code(rev.revision)} {md_cell(rev.doc)} ({md_code(Path(rev.file).name)})"]
        if not rev.reached:
            lines.append("Not rehearsed: the upgrade stopped before it.")
            continue
        rows = []
        for s in rev.statements:
            if s.is_version_write:
                continue
            created = sum(lk.new for lk in s.locks)
            locks = "; ".join([f"{lk.mode} on {lk.relation}: {describe_blocks(lk.mode)}, "
                               + (f"held {duration(lk.held_s)}" if timed else "hold not timed")
                               for lk in s.locks if not lk.new]
                              + [f"{created} on relations this run created (invisible to the application)"]
                              * bool(created))
            changed = "; ".join([f"rewrote {', '.join(s.rewrites)}"] * bool(s.rewrites)
                                + [f"scanned {', '.join(s.scans)}"] * bool(s.scans))
            names = dict.fromkeys(lk.table for lk in s.locks)
            tables = "; ".join(f"{n} ({report.tables[n].describe()})" for n in names if n in report.tables)
            found = "; ".join(f"{_FINDING_MARK.get(f.level, f.level)} {f.kind}" for f in rev.findings
                              if (f.file, f.line, f.statement) == (s.file, s.line, s.sql))
            rows.append((s.index, s.line or "alembic", md_code(s.sql),
                         (duration(s.duration_s) if timed else "not timed") + (" (autocommit)" if s.autocommit else ""),
                         locks or "none", changed or "no", tables, (f"FAILED: {s.error}; " if s.error else "") + found))
        lines += ["", markdown_table(("#", "line", "statement", "duration", "locks: what they block, hold time",
                                      "rewrite / scan", "tables: rows, size", "findings"), rows)]
        if rev.findings:
            lines += ["", markdown_table(
                ("level", "finding", "where", "what was measured", "safer way"),
                [(_FINDING_MARK.get(f.level, f.level), md_code(f.kind),
                  f"{Path(f.file).name}:{f.line}" if f.file else "(alembic)", f.message, f.safer)
                 for f in rev.findings])]
        else:
            lines += ["", "No findings."]
        if rev.schema_diff:
            lines += ["", "Schema difference: " + "; ".join(md_code(d) for d in rev.schema_diff)]
    lines.append("")
    if not report.revisions:
        lines.append(f"Nothing to rehearse: the backup is at {md_cell(', '.join(report.revision_before) or '(empty)')}, "
                     "the head.")
        return "\n".join(lines)
    if report.failure:
        lines.append(f"- **The upgrade FAILED on the copy**: {md_cell(report.failure)}")
    lines.append(f"- Expected deploy duration: {duration(report.upgrade_s)} (measured on the copy)"
                 if timed and report.upgrade_s is not None else "- Expected deploy duration: not measured (--schema-only)")
    for what in ("reads", "writes"):
        worst = report.longest_wait.get(what)
        lines.append(f"- Longest wait of application {what}: " + (
            "none (no lock blocks them)" if worst is None else
            f"{duration(worst[0]) if timed else 'not measured'} (on {md_cell(worst[1])}, revision {md_code(worst[2])})"))
    lines.append(f"- {errors} error(s), {len(report.findings) - errors} other finding(s)")
    return "\n".join(lines)


def rehearse_annotations(report, *, root: str | Path | None = None) -> str:
    """One annotation per finding of the rehearsal (error / warning; style and accepted ones as notices), on the
    revision file at the line of the operation."""
    items = []
    for rev in report.revisions:
        for f in rev.findings:
            level = f.level if f.level in ("error", "warning") else "notice"
            text = f.message
            if f.statement:
                text += "\nstatement: " + " ".join(f.statement.split())
            if f.safer:
                text += f"\nsafer: {f.safer}"
            items.append(Annotation(level, repo_path(f.file or rev.file, root), f.line,
                                    f"rehearse {f.kind} ({f.revision or rev.revision})", text))
    return annotations(items)
