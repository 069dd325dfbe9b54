"""The rehearsal itself: restore, run the pending revisions traced, and judge what was measured.

:func:`rehearse` restores the backup into the scratch database
(:mod:`.restored_copy`), runs the pending revisions there exactly as ``inv deploy``
does (:func:`dbops.migrations.upgrade.run`) with the :mod:`.lock_trace` tracer
on the connection, then turns the statements into findings (:mod:`.findings`)
and lints the SQL that really ran (:mod:`dbops.dryrun`).  The copy's revision,
before (the baseline) and after, is read on that same connection of dbops',
never through env.py; a revision with operations of which nothing was
captured, or a copy left short of the head, is an error finding.
"""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from .. import dryrun, postgres, squawk
from ..backup import BackupInfo, checked_store, restore_client, restore_into
from ..errors import DbopsError, UpgradeFailed
from ..findings import ACCEPTED, REHEARSE, Finding
from ..migrations import Project, upgrade
from ..postgres import schema_snapshot
from ..postgres.extensions import missing_extension
from ..redact import reason
from ..servers import environment_url
from ..settings import Settings
from ..ui import SILENT, UI
from . import findings as rules
from .findings import TableFacts, Thresholds
from .lock_trace import Tracer, qualified
from .model import RehearsalReport, RevisionRehearsal
from .policy import choose_backup
from .restored_copy import scratch_database, stamp_revisions


def rehearse(settings: Settings, *, backup: str | None = None, server_url: URL | None = None,
             schema_only: bool = False, ui: UI = SILENT) -> RehearsalReport:
    """Rehearse the pending revisions on a copy of ``settings.env``'s newest verified backup; return the report.

    Raises DbopsError subclasses for what stops the rehearsal itself (no
    backup, no server of the source's major, a failed restore); a migration
    that fails on the copy is a finding of the report, not an exception.
    """
    project = Project(settings.alembic_ini)
    store = checked_store(settings)
    info, warning = choose_backup(settings, store, backup, ui=ui)
    ui.say(f"rehearse {settings.env}: backup {info.key} ({'verified' if info.verified else 'not verified'})"
           + (", schema only" if schema_only else ""))
    report = RehearsalReport(settings.env, info.key, info.verified, "", "", schema_only)
    if warning:
        report.warnings.append(warning)
        ui.warn(warning)
    limits = Thresholds(settings.rehearse_block_limit_ms / 1000, int(settings.rehearse_large_table_mb * 1024 * 1024),
                        timed=not schema_only)
    report.thresholds = limits
    with scratch_database(settings, info, server_url, report, ui) as url:
        client = restore_client(info, url, postgres.major_version(report.server_version), settings.client_places)
        t0 = time.monotonic()
        restore_into(settings, store, info, url, ui=ui, client=client, schema_only=schema_only)
        report.restore_s = round(time.monotonic() - t0, 3)
        ui.ok(f"restored {info.key} into {report.server} ({report.restore_s:.1f}s)")
        _run(settings, project, info, url, report, ui)
    _summarize(report)
    return report


def _run(settings: Settings, project: Project, info: BackupInfo, url: URL, report: RehearsalReport, ui: UI) -> None:
    """The deploy's own upgrade (the same timeouts, transactions and blocks) on the copy, traced."""
    engine = postgres.make_engine(url, connect_args={"connect_timeout": settings.connect_timeout_s,
                                                     "application_name": "dbops rehearse"})
    try:
        with engine.connect() as conn:
            if report.schema_only:
                stamp_revisions(conn, info)
            report.revision_before = list(project.current(conn))
            conn.rollback()
            pending = project.pending(report.revision_before)
            if not pending:
                report.revision_after = list(report.revision_before)
                ui.ok(f"nothing to rehearse: the backup is at head {', '.join(project.heads())}")
                return
            ui.say("rehearsing: " + ", ".join(f"{s.revision} ({s.doc})" for s in pending))
            files = {str(Path(s.path).resolve()): s.revision for s in project.script.walk_revisions()}
            tracer = Tracer(conn, files, observer_url=url, follow=url)  # env.py's own engine too
            baseline = tracer.baseline()
            facts = _facts(settings, info, baseline, report, ui)
            t0 = time.perf_counter()
            with tracer:
                try:
                    upgrade.run(project, conn, attempts=1, lock_timeout_ms=settings.lock_timeout_ms,
                                statement_timeout_ms=settings.statement_timeout_ms)
                except UpgradeFailed as exc:
                    if missing_extension(exc) is not None:  # the throwaway server's limit: exit 3, not a finding
                        raise
                    report.failure = exc.message
            report.upgrade_s = round(time.perf_counter() - t0 - tracer.overhead_s, 3)
            report.tracing_s = round(tracer.overhead_s, 3)
            report.revision_after = list(project.current(conn))
            conn.rollback()
    finally:
        engine.dispose()
    _collect(project, pending, tracer, facts, report)


def _facts(settings: Settings, info: BackupInfo, baseline: list[tuple], report: RehearsalReport,
           ui: UI) -> dict[int, TableFacts]:
    """Every existing table's rows and size: exact rows from the backup's manifest; bytes from the copy (or prod)."""
    counts = info.manifest.tables
    prod_sizes = _production_sizes(settings, report, ui) if report.schema_only else {}
    out = {}
    for oid, schema, name, kind, _node, _table, estimate, size in baseline:
        if kind not in ("r", "p", "m"):
            continue
        shown = qualified(schema, name)
        exact = counts.get(f"{schema}.{name}")
        if report.schema_only:
            rows, nbytes = prod_sizes.get(f"{schema}.{name}", (None, None))
            source = "production's catalog" if nbytes is not None else "the backup's manifest"
            if exact is not None:
                rows = exact
        else:
            rows, nbytes, source = (exact if exact is not None else max(estimate, 0)), size, "the restored copy"
        out[oid] = TableFacts(shown, rows, nbytes, exact=exact is not None, source=source)
    return out


def _production_sizes(settings: Settings, report: RehearsalReport, ui: UI) -> dict[str, tuple[int, int]]:
    """``{"schema.table": (estimated rows, total bytes)}`` read from the live database; {} when it is not reachable."""
    try:
        url = environment_url(settings)
        with postgres.connect(url, name="dbops rehearse (sizes)", timeout=settings.connect_timeout_s) as conn:
            rows = conn.execute(sa.text(
                "SELECT n.nspname, c.relname, c.reltuples::bigint, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'm') "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'"
            )).all()
    except (DbopsError, sa.exc.SQLAlchemyError) as exc:
        why = exc.message if isinstance(exc, DbopsError) else reason(exc)
        report.warnings.append(f"--schema-only: the {settings.env} database is not reachable from here ({why}), so "
                               "table sizes are unknown (row counts come from the backup's manifest) and the size "
                               "rule cannot make a rewrite or scan an error")
        ui.warn(report.warnings[-1])
        return {}
    return {f"{schema}.{name}": (max(int(tuples), 0), int(size)) for schema, name, tuples, size in rows}


def _collect(project: Project, pending, tracer: Tracer, facts: dict[int, TableFacts], report: RehearsalReport) -> None:
    """Statements per revision, their findings, Squawk on the SQL that ran, the schema difference of each."""
    by_rev = {s.revision: RevisionRehearsal(s.revision, s.doc, s.path) for s in pending}
    for stmt in tracer.statements:
        if stmt.revision in by_rev:
            by_rev[stmt.revision].statements.append(stmt)
    limits = report.thresholds
    pg_version = report.server_version.split()[0] if report.server_version else None
    previous = tracer.before
    for rev in by_rev.values():
        for stmt in rev.statements:
            rev.findings += rules.for_statement(stmt, facts, limits)
            if stmt.error:
                rev.findings.append(rules.failed(stmt, stmt.error, schema_only=report.schema_only))
            for oid in stmt.table_oids:
                if oid in facts and facts[oid].name not in squawk.IGNORED_TABLES:
                    report.tables.setdefault(facts[oid].name, facts[oid])
        after = tracer.snapshots.get(rev.revision)
        if after is not None and previous is not None:
            rev.schema_diff = schema_snapshot.diff(previous, after, before="before", after="after")
            previous = after
        line = dryrun.first_operation(rev.file)
        if line is not None and (report.failure is None or rev.reached) \
                and not any(not s.is_version_write for s in rev.statements):
            rev.findings.append(rules.nothing_captured(rev.revision, rev.file, line))
        report.revisions.append(rev)
    heads = list(project.heads())
    if report.failure is None and report.revisions and sorted(report.revision_after) != sorted(heads):
        last = report.revisions[-1]
        last.findings.append(rules.not_applied(last.revision, last.file, report.revision_before,
                                               report.revision_after, heads))
    _lint(project, report.revisions, pg_version)
    if report.failure and not any(f.kind == "failed" for f in report.findings):
        last = report.revisions[-1] if report.revisions else None
        if last is not None:
            last.findings.append(rules.upgrade_failed(last.revision, last.file, report.failure))


def _lint(project: Project, revisions: list[RevisionRehearsal], pg_version: str | None) -> None:
    """Squawk on the SQL each revision really ran (the lint of ``inv lint``: its config, allow comments, levels),
    each finding pointed at the statement's file and line."""
    captured, spans = {}, {}
    for rev in revisions:
        statements = [s for s in rev.statements if not s.is_version_write and s.sql.strip().rstrip(";").strip()]
        captured[rev.revision] = [s.sql for s in statements]
        line, spans[rev.revision] = 1, []
        for stmt in statements:  # the lines dryrun.captured_sql gives each statement
            count = stmt.sql.strip().rstrip(";").strip().count("\n") + 1
            spans[rev.revision].append((line, line + count - 1, stmt))
            line += count
    # a revision of which nothing was captured is a finding of its own (nothing-captured), not linted here
    linted = [r.revision for r in revisions if captured[r.revision]]
    if not linted:
        return
    run = dryrun.lint_revisions(project, linted, pg_version=pg_version,
                                captured={rev: captured[rev] for rev in linted})
    by_rev = {r.revision: r for r in revisions}
    for f in run.findings:
        rev = by_rev.get(f.revision)
        if rev is None:
            continue
        stmt = next((s for first, last, s in spans.get(f.revision, []) if first <= f.sql_line <= last), None)
        level = ACCEPTED if f.accepted else f.level
        message = f"{f.kind}: {f.message}" + (f" (accepted: {f.accepted})" if f.accepted else "")
        rev.findings.append(Finding(REHEARSE, level, f"squawk:{f.kind}", message, f.safer, rev.revision,
                                    stmt.file if stmt else f.file, stmt.line if stmt else f.line,
                                    stmt.sql if stmt else f.statement))


def _summarize(report: RehearsalReport) -> None:
    """The longest a read and a write would wait behind the migration's locks."""
    for what in (rules.READS, rules.WRITES):
        worst = None
        for rev in report.revisions:
            for stmt in rev.statements:
                for lock in stmt.locks:
                    counts = what in rules.blocks(lock.mode) and lock.held_s is not None and not lock.new
                    if counts and (worst is None or lock.held_s > worst[0]):
                        worst = (round(lock.held_s, 3), lock.table, rev.revision)
        report.longest_wait[what] = worst
