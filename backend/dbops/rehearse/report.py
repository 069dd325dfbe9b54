"""The rehearsal report: per revision, per statement the SQL, time, locks and what they block; findings; totals.

:func:`render` is the text ``inv rehearse`` prints; :func:`as_dict` the JSON
record (written under ``backups/`` and beside a deploy's backup).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from ..units import duration, truncate
from .findings import describe_blocks

if TYPE_CHECKING:
    from . import RehearsalReport

_SQL_WIDTH = 160




def render(r: RehearsalReport) -> str:
    timed = not r.schema_only
    lines = [f"rehearsal of {r.env} on {r.server} (PostgreSQL {r.server_version})",
             f"  backup {r.backup_key} ({'verified' if r.backup_verified else 'not verified'}), restored in "
             f"{r.restore_s:.1f}s" + (" - schema only: durations and hold times are NOT measured" if r.schema_only else ""),
             f"  revision {', '.join(r.revision_before) or '(empty)'} -> {', '.join(r.revision_after) or '(unknown)'}"]
    if r.thresholds:
        lines.append(f"  rules: a lock blocking reads or writes held >= {duration(r.thresholds.max_block_s)} is an error "
                     f"(DBOPS_REHEARSE_MAX_BLOCK_MS, default lock_timeout); a rewrite or validating scan of a table "
                     f">= {r.thresholds.large_table_bytes / 1024 / 1024:g} MiB is an error (DBOPS_REHEARSE_LARGE_TABLE_MB)")
    for w in r.warnings:
        lines.append(f"  warning: {w}")
    for rev in r.revisions:
        lines.append("")
        lines.append(f"== revision {rev.revision}: {rev.doc} ({rev.file})")
        if not rev.reached:
            lines.append("  not rehearsed: the upgrade stopped before it")
            continue
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
            lines.append(f"longest wait of application {what}: {duration(worst[0])} (on {worst[1]}, revision {worst[2]})"
                         " - plus up to lock_timeout while the migration itself queues for a busy table")
        else:
            lines.append(f"longest wait of application {what}: blocked on {worst[1]} (revision {worst[2]}), "
                         "for a time not measured (--schema-only)")
    errors = len(r.errors)
    lines.append(f"rehearsal: {errors} error(s), {len(r.findings) - errors} warning(s)")
    return "\n".join(lines)


def as_dict(r: RehearsalReport) -> dict:
    return {
        "env": r.env,
        "backup": {"key": r.backup_key, "verified": r.backup_verified},
        "server": r.server,
        "server_version": r.server_version,
        "schema_only": r.schema_only,
        "durations_measured": not r.schema_only,
        "revision_before": r.revision_before,
        "revision_after": r.revision_after,
        "restore_s": r.restore_s,
        "expected_upgrade_s": r.upgrade_s if not r.schema_only else None,
        "tracing_s": r.tracing_s,
        "thresholds": asdict(r.thresholds) if r.thresholds else None,
        "longest_wait_s": {k: (None if v is None else {"seconds": v[0], "table": v[1], "revision": v[2]})
                           for k, v in r.longest_wait.items()},
        "failure": r.failure,
        "warnings": r.warnings,
        "tables": {name: asdict(t) for name, t in r.tables.items()},
        "revisions": [
            {
                "revision": rev.revision, "doc": rev.doc, "file": rev.file, "duration_s": rev.duration_s,
                "reached": rev.reached,
                "schema_diff": rev.schema_diff,
                "statements": [{k: v for k, v in asdict(s).items() if k not in ("table_oids", "started")}
                               for s in rev.statements],
                "findings": [f.as_dict() for f in rev.findings],
            }
            for rev in r.revisions
        ],
        "errors": len(r.errors),
        "warnings_count": len(r.findings) - len(r.errors),
    }
