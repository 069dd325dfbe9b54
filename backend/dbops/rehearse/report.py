"""The rehearsal report for people: text (what ``inv rehearse`` prints), markdown, GitHub annotations.

:func:`render` is the text; :func:`markdown` a table of statements per
revision (a pull-request comment); :func:`annotations` one workflow command per
finding; :func:`show` prints one of them through the UI, :func:`write_json`
writes the JSON record (:meth:`~.model.RehearsalReport.to_dict`).
"""

from __future__ import annotations

from pathlib import Path

from .. import formats
from ..annotations import annotations as workflow_commands
from ..formats import markdown_table, md_cell, md_code, show_report
from ..settings import Settings
from ..ui import SILENT, UI
from ..units import duration, truncate
from .findings import describe_blocks
from .model import RehearsalReport

_SQL_WIDTH = 160


def render(r: RehearsalReport) -> str:
    """The report as text (what ``inv rehearse`` prints)."""
    timed = not r.schema_only
    lines = [f"rehearsal of {r.env} on {r.server} (PostgreSQL {r.server_version})",
             f"  backup {r.backup_key} ({'verified' if r.backup_verified else 'not verified'}), restored in "
             f"{r.restore_s:.1f}s"
             + (" - schema only: durations and hold times are NOT measured" if r.schema_only else ""),
             f"  revision {', '.join(r.revision_before) or '(empty)'} -> {', '.join(r.revision_after) or '(unknown)'}"]
    if r.thresholds:
        lines.append(f"  rules: a lock blocking reads or writes held >= {duration(r.thresholds.max_block_s)} "
                     f"is an error (DBOPS_REHEARSE_MAX_BLOCK_MS, default lock_timeout); a rewrite or validating scan "
                     f"of a table >= {r.thresholds.large_table_bytes / 1024 / 1024:g} MiB is an error "
                     "(DBOPS_REHEARSE_LARGE_TABLE_MB)")
    for w in r.warnings:
        lines.append(f"  warning: {w}")
    for rev in r.revisions:
        lines.append("")
        lines.append(f"== revision {rev.revision}: {rev.doc} ({rev.file})")
        if not rev.reached and not rev.findings:
            lines.append("  not rehearsed: the upgrade stopped before it")
            continue
        if not rev.reached:
            lines.append("  no statement of it ran on the copy")
        for s in rev.statements:
            if s.is_version_write:
                continue
            where = f"line {s.line}" if s.line else "alembic"
            dur = duration(s.duration_s) if timed else "not timed"
            lines.append(f"  #{s.index} [{where}, {dur}{', autocommit' if s.autocommit else ''}"
                         f"{f', x{s.batch}' if s.batch > 1 else ''}] {truncate(s.sql, _SQL_WIDTH)}")
            for lock in s.locks:
                held = f"held {duration(lock.held_s)}" if timed else "hold not timed"
                rel = lock.relation if lock.relation == lock.table else f"{lock.relation} (on {lock.table})"
                lines.append(f"      lock {lock.mode} on {rel}: {held}, {describe_blocks(lock.mode, new=lock.new)}"
                             + (" (seen while it ran)" if lock.while_running else ""))
            if s.rewrites:
                lines.append(f"      rewrote: {', '.join(s.rewrites)}")
            if s.scans:
                lines.append(f"      scanned: {', '.join(s.scans)}")
            if s.error:
                lines.append(f"      FAILED: {s.error}")
        if rev.schema_diff:
            lines.append("  schema difference:")
            lines += [f"    {d}" for d in rev.schema_diff]
        for f in rev.findings:
            lines.append(f"  [{f.level}] {f.where()}: {f.message}")
            lines.append(f"      statement: {truncate(f.statement, _SQL_WIDTH)}")
            if f.safer:
                lines.append(f"      safer:     {f.safer}")
        if not rev.findings:
            lines.append("  no findings")
    if r.tables:
        lines.append("")
        lines.append("tables touched: " + "; ".join(f"{name} ({t.describe()}, from {t.source})"
                                                    for name, t in sorted(r.tables.items())))
    lines.append("")
    if not r.revisions:
        lines.append(f"nothing to rehearse: the backup is at {', '.join(r.revision_before) or '(empty)'}, the head")
        return "\n".join(lines)
    if r.failure:
        lines.append(f"the upgrade FAILED on the copy: {r.failure}")
    if timed and r.upgrade_s is not None:
        lines.append(f"expected deploy duration: {duration(r.upgrade_s)} for the upgrade "
                     f"(measured on the copy; tracing added {duration(r.tracing_s)}, not counted)")
    else:
        lines.append("expected deploy duration: not measured (--schema-only)")
    for what in ("reads", "writes"):
        worst = r.longest_wait.get(what)
        if worst is None:
            lines.append(f"longest wait of application {what}: none (no lock blocks them)")
        elif timed:
            lines.append(f"longest wait of application {what}: {duration(worst[0])} (on {worst[1]}, "
                         f"revision {worst[2]}) - plus up to lock_timeout while the migration itself queues for a "
                         "busy table")
        else:
            lines.append(f"longest wait of application {what}: blocked on {worst[1]} (revision {worst[2]}), "
                         "for a time not measured (--schema-only)")
    errors = len(r.errors)
    lines.append(f"rehearsal: {errors} error(s), {len(r.findings) - errors} warning(s)")
    return "\n".join(lines)


def markdown(report: RehearsalReport) -> str:
    """A table of statements per revision: duration, locks with what they block and their hold time, rewrites and
    scans, the tables' rows and size, the findings; then the findings with the safer way, and the totals."""
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
        if not rev.reached and not rev.findings:
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
            found = "; ".join(f"{f.mark()} {f.kind}" for f in rev.findings
                              if (f.file, f.line, f.statement) == (s.file, s.line, s.sql))
            rows.append((s.index, s.line or "alembic", md_code(s.sql),
                         (duration(s.duration_s) if timed else "not timed") + (" (autocommit)" if s.autocommit else ""),
                         locks or "none", changed or "no", tables, (f"FAILED: {s.error}; " if s.error else "") + found))
        lines += ["", markdown_table(("#", "line", "statement", "duration", "locks: what they block, hold time",
                                      "rewrite / scan", "tables: rows, size", "findings"), rows)
                  if rows else "No statement of it ran on the copy."]
        if rev.findings:
            lines += ["", markdown_table(
                ("level", "finding", "where", "what was measured", "safer way"),
                [(f.mark(), md_code(f.kind),
                  f"{Path(f.file).name}:{f.line}" if f.file else "(alembic)", f.message, f.safer)
                 for f in rev.findings])]
        else:
            lines += ["", "No findings."]
        if rev.schema_diff:
            lines += ["", "Schema difference: " + "; ".join(md_code(d) for d in rev.schema_diff)]
    lines.append("")
    if not report.revisions:
        lines.append("Nothing to rehearse: the backup is at "
                     f"{md_cell(', '.join(report.revision_before) or '(empty)')}, the head.")
        return "\n".join(lines)
    if report.failure:
        lines.append(f"- **The upgrade FAILED on the copy**: {md_cell(report.failure)}")
    lines.append(f"- Expected deploy duration: {duration(report.upgrade_s)} (measured on the copy)"
                 if timed and report.upgrade_s is not None
                 else "- Expected deploy duration: not measured (--schema-only)")
    for what in ("reads", "writes"):
        worst = report.longest_wait.get(what)
        lines.append(f"- Longest wait of application {what}: " + (
            "none (no lock blocks them)" if worst is None else
            f"{duration(worst[0]) if timed else 'not measured'} (on {md_cell(worst[1])}, "
            f"revision {md_code(worst[2])})"))
    lines.append(f"- {errors} error(s), {len(report.findings) - errors} other finding(s)")
    return "\n".join(lines)


def annotations(report: RehearsalReport, *, root: str | Path | None = None) -> str:
    """One annotation per finding of the rehearsal (error / warning; style and accepted ones as notices), on the
    revision file at the line of the operation."""
    return workflow_commands(f.annotation(root, file=rev.file) for rev in report.revisions for f in rev.findings)


def formatted(report: RehearsalReport, fmt: str = "text") -> str:
    """The report as text, json or markdown."""
    return formats.formatted(report, fmt, text=lambda: render(report), markdown=lambda: markdown(report))


def write_json(report: RehearsalReport, path: Path) -> Path | None:
    """The report as JSON at ``path``; sets ``report.path``.  A folder that cannot be written (a read-only
    container) adds a warning to the report instead (shown with it) and returns None: the run goes on."""
    report.path = str(path)
    why = formats.write_report_json(path, report.to_dict())
    if why:
        report.path = None
        report.warnings.append(why)
        return None
    return path


def show(settings: Settings, report: RehearsalReport, fmt: str = "text", *, ui: UI = SILENT) -> None:
    """The report through ``ui`` in ``fmt``; under GitHub Actions (``settings.github_actions``, text and markdown
    only) first an annotation per finding on its revision file."""
    text = formatted(report, fmt) + (f"\nreport: {report.path}" if fmt == "text" and report.path else "")
    show_report(ui, text, lambda: annotations(report, root=settings.root), fmt=fmt,
                github_actions=settings.github_actions)
