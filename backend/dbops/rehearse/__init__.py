"""``inv rehearse``: the pending revisions run on a restored copy of production, traced statement by statement.

:func:`rehearse` restores the newest verified backup (or the one named) into
a throwaway PostgreSQL of the source's major version (the throwaway server of
``inv verify-backup``), or into a scratch database on ``--server``; then runs
the pending revisions there exactly as ``inv deploy`` does
(:func:`dbops.migrations.upgrade.run`: the same ``lock_timeout`` and
``statement_timeout``, one transaction per revision, autocommit blocks), with
the :mod:`.trace` tracer on the connection.  From what it measured,
:mod:`.findings` says which locks block the application and for how long,
which tables were rewritten or scanned; Squawk lints the SQL that really ran,
per revision.  The copy is dropped at the end, whatever happened.

``schema_only`` restores the definitions only (``pg_restore --schema-only``):
locks, rewrites and scans are the same, durations are not measured, and table
sizes come from production's catalog (when it is reachable from here) and the
backup's manifest (exact row counts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from .. import clock, postgres, squawk
from ..backup.catalog import BackupInfo, checked_store, find_backup, list_backups
from ..units import human_size
from ..backup.restore import restore_client, restore_into
from ..servers.throwaway import programs_for_major, throwaway_server
from ..errors import DbopsError, RehearsalFailed, UpgradeFailed
from ..migrations import Project
from ..postgres import schema_snapshot
from ..redact import mask_url, reason
from ..settings import Settings
from ..storage import Store
from ..ui import SILENT, UI
from . import findings as rules
from .findings import Finding, TableFacts, Thresholds
from .lock_trace import Statement, Tracer, qualified

log = logging.getLogger(__name__)

__all__ = ["RehearsalReport", "RevisionRehearsal", "check", "choose_backup", "deploy_decision", "rehearse", "render", "show"]


@dataclass
class RevisionRehearsal:
    """One pending revision as it ran on the copy."""

    revision: str
    doc: str
    file: str
    statements: list[Statement] = field(default_factory=list)
    #: the schema difference it made (catalog snapshot before vs after)
    schema_diff: list[str] = field(default_factory=list)
    #: findings from facts, then Squawk's on the captured SQL (kind ``squawk:<rule>``)
    findings: list[Finding] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.statements)

    @property
    def reached(self) -> bool:
        """It ran (False: the upgrade failed before it)."""
        return bool(self.statements)


@dataclass
class RehearsalReport:
    env: str
    backup_key: str
    backup_verified: bool
    #: the throwaway server or the --server scratch database (masked)
    server: str
    server_version: str
    schema_only: bool
    revision_before: list[str] = field(default_factory=list)
    revision_after: list[str] = field(default_factory=list)
    revisions: list[RevisionRehearsal] = field(default_factory=list)
    #: every table a statement locked, rewrote or scanned (name -> facts)
    tables: dict[str, TableFacts] = field(default_factory=dict)
    thresholds: Thresholds | None = None
    restore_s: float = 0.0
    #: wall time of the upgrade on the copy (tracing excluded): the deploy's expected duration
    upgrade_s: float | None = None
    tracing_s: float = 0.0
    #: the longest a query would wait behind the migration: reads, writes (seconds, table, revision)
    longest_wait: dict[str, tuple[float, str, str | None] | None] = field(default_factory=dict)
    #: why the upgrade failed on the copy (None: it went through)
    failure: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: where the JSON report was written
    path: str | None = None
    #: when it ran (for file names)
    stamp: str = field(default_factory=clock.stamp)

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.revisions for f in r.findings]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    @property
    def statements(self) -> list[Statement]:
        return [s for r in self.revisions for s in r.statements]

    def as_dict(self) -> dict:
        from .report import as_dict

        return as_dict(self)


def choose_backup(settings: Settings, store: Store, key: str | None) -> tuple[BackupInfo, str | None]:
    """The backup named, else the newest verified one, else the newest complete one; (backup, a warning or None)."""
    if key not in (None, "", "latest"):
        return find_backup(settings, key, store=store), None
    backups = [b for b in list_backups(settings, store=store) if b.complete]
    verified = [b for b in backups if b.verified]
    if verified:
        return verified[0], None
    info = find_backup(settings, None, store=store)  # the newest complete one, or the "no backup" error
    return info, (f"no verified backup of {settings.env}: rehearsing on {info.key}, the newest complete one "
                  f"(its checksum is checked while it is restored; `inv verify-backup --env {settings.env}` "
                  "marks one verified)")


def rehearse(settings: Settings, *, backup: str | None = None, server_url: URL | None = None,
             schema_only: bool = False, ui: UI = SILENT) -> RehearsalReport:
    """Rehearse the pending revisions on a copy of ``settings.env``'s newest verified backup; return the report.

    Raises DbopsError subclasses for what stops the rehearsal itself (no
    backup, no server of the source's major, a failed restore); a migration
    that fails on the copy is a finding of the report, not an exception.
    """
    project = Project(settings.alembic_ini)
    store = checked_store(settings)
    info, warning = choose_backup(settings, store, backup)
    ui.say(f"rehearse {settings.env}: backup {info.key} ({'verified' if info.verified else 'not verified'})"
           + (", schema only" if schema_only else ""))
    report = RehearsalReport(settings.env, info.key, info.verified, "", "", schema_only)
    if warning:
        report.warnings.append(warning)
        ui.warn(warning)
    limits = Thresholds(settings.rehearse_block_limit_ms / 1000, int(settings.rehearse_large_table_mb * 1024 * 1024),
                        timed=not schema_only)
    report.thresholds = limits
    with _scratch(settings, info, server_url, report, ui) as url:
        client = restore_client(info, url, postgres.major_version(report.server_version))
        t0 = time.monotonic()
        restore_into(settings, store, info, url, ui=ui, client=client, schema_only=schema_only)
        report.restore_s = round(time.monotonic() - t0, 3)
        ui.ok(f"restored {info.key} into {report.server} ({report.restore_s:.1f}s)")
        _run(settings, project, info, url, report, ui)
    _summarize(report)
    return report


def render(report: RehearsalReport) -> str:
    """The report as text (what ``inv rehearse`` prints)."""
    from .report import render as text

    return text(report)


def deploy_decision(settings: Settings, wanted: bool | None, backup: dict | None, *,
                    server_url: URL | None = None) -> tuple[bool, str, BackupInfo | None]:
    """Whether the deploy rehearses, why, and on which backup: (run, why, backup).

    ``wanted``: True (--rehearse), False (--no-rehearse) or None: on by default
    when the backup is at most ``DBOPS_REHEARSE_AUTO_MB`` and a server to
    rehearse on is at hand.  ``backup``: the one the deploy just took (its
    report entry); None under ``--plan``, which rehearses on the newest backup.
    """
    if wanted is False:
        return False, "--no-rehearse", None
    try:
        store = checked_store(settings)
        info, _ = choose_backup(settings, store, backup["key"] if backup else None)
    except DbopsError as exc:
        if backup is None:  # --plan before the first backup: nothing to restore yet
            return False, f"no backup to rehearse on yet ({exc.message}); the deploy rehearses on the one it takes", None
        raise
    size, limit = info.size, settings.rehearse_auto_mb
    shown = human_size(size)
    if wanted:
        return True, "--rehearse", info
    if limit <= 0:
        return False, "off by default (DBOPS_REHEARSE_AUTO_MB=0); --rehearse runs it", info
    if size > limit * 1024 * 1024:
        return False, (f"the backup is {shown}, above DBOPS_REHEARSE_AUTO_MB={limit:g} MiB, so restoring it is not "
                       f"cheap; --rehearse runs it anyway, or `inv rehearse --env {settings.env} --schema-only` rehearses on the "
                       "schema with production's sizes"), info
    if server_url is None:
        major = int(info.manifest.get("server_major") or 0)
        from ..postgres import clients

        if not major or clients.server_bin(major) is None:
            return False, (f"on by default for a backup of {shown}, but no PostgreSQL {major or '?'} server programs "
                           f"are installed here (`inv pg-clients --major {major or 'N'}`, or --rehearse-server URL)"), info
    return True, f"on by default: the backup is {shown}, at most DBOPS_REHEARSE_AUTO_MB={limit:g} MiB", info


def check(report: RehearsalReport, *, allow_unsafe: bool = False) -> None:
    """Raise RehearsalFailed when the report has error-level findings (unless ``allow_unsafe``)."""
    if report.errors and not allow_unsafe:
        raise RehearsalFailed(report)


# -- the copy -----------------------------------------------------------------

@contextmanager
def _scratch(settings: Settings, info: BackupInfo, server_url: URL | None, report: RehearsalReport,
             ui: UI) -> Iterator[URL]:
    """An empty database to restore into: on a throwaway server of the source's major, or on ``server_url``."""
    source_major = int(info.manifest.get("server_major") or 0)
    name = f"dbops_rehearse_{clock.stamp().lower().replace('.', '_')}"
    if server_url is None:
        bin_dir = programs_for_major(int(info.manifest.get("server_major") or 0),
                                     f"cannot rehearse on a copy of backup {info.key}")
        with throwaway_server(bin_dir, prefix="dbops-rehearse-") as server:
            url = postgres.create_database(server.url(), "rehearse")
            report.server = f"a throwaway PostgreSQL {source_major} ({bin_dir})"
            report.server_version = postgres.check_connection(url)
            yield url
        return
    try:
        with postgres.admin_connection(server_url, timeout=settings.connect_timeout_s) as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            conn.execute(sa.text(f"CREATE DATABASE {postgres.quote_ident(name)}"))
    except sa.exc.DBAPIError as exc:
        raise DbopsError(f"cannot create the scratch database {name!r} on {mask_url(server_url)}: "
                         f"{reason(exc, server_url)}",
                         hint="the --server user needs CREATEDB there; nothing was changed") from None
    report.server = f"{mask_url(server_url.set(database=name))} (a scratch database, dropped afterwards)"
    report.server_version = version
    major = postgres.major_version(version)
    if source_major and major != source_major:
        report.warnings.append(f"--server runs PostgreSQL {major}, the backup comes from {source_major}: "
                               "locks and durations may differ from production's")
        ui.warn(report.warnings[-1])
    try:
        yield server_url.set(database=name)
    finally:
        try:
            postgres.drop_database(server_url, name)
        except DbopsError as exc:
            report.warnings.append(f"could not drop the scratch database {name}: {exc.message}")


# -- the run ------------------------------------------------------------------

def _run(settings: Settings, project: Project, info: BackupInfo, url: URL, report: RehearsalReport, ui: UI) -> None:
    from ..migrations import upgrade  # the deploy's own upgrade: the same timeouts, transactions and blocks

    engine = postgres.make_engine(url, connect_args={"connect_timeout": settings.connect_timeout_s,
                                                     "application_name": "dbops rehearse"})
    try:
        with engine.connect() as conn:
            if report.schema_only:
                _stamp(conn, info)
            report.revision_before = list(project.current(conn))
            conn.rollback()
            pending = project.pending(report.revision_before)
            if not pending:
                report.revision_after = list(report.revision_before)
                ui.ok(f"nothing to rehearse: the backup is at head {', '.join(project.heads())}")
                return
            ui.say("rehearsing: " + ", ".join(f"{s.revision} ({s.doc})" for s in pending))
            files = {str(Path(s.path).resolve()): s.revision for s in project.script.walk_revisions()}
            tracer = Tracer(conn, files, observer_url=url)
            baseline = tracer.baseline()
            facts = _facts(settings, info, baseline, report, ui)
            t0 = time.perf_counter()
            with tracer:
                try:
                    upgrade.run(project, conn, attempts=1, lock_timeout_ms=settings.lock_timeout_ms,
                                statement_timeout_ms=settings.statement_timeout_ms)
                except UpgradeFailed as exc:
                    report.failure = exc.message
            report.upgrade_s = round(time.perf_counter() - t0 - tracer.overhead_s, 3)
            report.tracing_s = round(tracer.overhead_s, 3)
            report.revision_after = list(project.current(conn))
            conn.rollback()
    finally:
        engine.dispose()
    _collect(project, pending, tracer, facts, report)


def _stamp(conn, info: BackupInfo) -> None:
    """A schema-only copy has an empty alembic_version: write the revision(s) the backup's manifest records."""
    revisions = info.manifest.get("revisions") or ([info.manifest["revision"]] if info.manifest.get("revision") else [])
    exists = bool(revisions) and conn.execute(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar_one()
    if exists and not conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one():
        for rev in revisions:
            conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": rev})
    conn.commit()


def _facts(settings: Settings, info: BackupInfo, baseline: list[tuple], report: RehearsalReport,
           ui: UI) -> dict[int, TableFacts]:
    """Every existing table's rows and size: exact rows from the backup's manifest; bytes from the copy (or prod)."""
    counts = info.manifest.get("tables") or {}
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
    from ..servers import environment_url

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
        report.revisions.append(rev)
    _lint(project, report.revisions, pg_version)
    if report.failure and not any(f.kind == "failed" for f in report.findings):
        last = report.revisions[-1] if report.revisions else None
        if last is not None:
            last.findings.append(Finding("error", "failed", last.revision, last.file, None,
                                         f"the upgrade failed on the copy: {report.failure}", "fix the revision", ""))


def _lint(project: Project, revisions: list[RevisionRehearsal], pg_version: str | None) -> None:
    """Squawk on the SQL each revision really ran (the lint of ``inv lint``: its config, allow comments, levels),
    each finding pointed at the statement's file and line."""
    from .. import dryrun

    captured, spans = {}, {}
    for rev in revisions:
        statements = [s for s in rev.statements if not s.is_version_write and s.sql.strip().rstrip(";").strip()]
        captured[rev.revision] = [s.sql for s in statements]
        line, spans[rev.revision] = 1, []
        for stmt in statements:  # the lines dryrun.captured_sql gives each statement
            count = stmt.sql.strip().rstrip(";").strip().count("\n") + 1
            spans[rev.revision].append((line, line + count - 1, stmt))
            line += count
    run = dryrun.lint_revisions(project, [r.revision for r in revisions], pg_version=pg_version, captured=captured)
    by_rev = {r.revision: r for r in revisions}
    for f in run.findings:
        rev = by_rev.get(f.revision)
        if rev is None:
            continue
        stmt = next((s for first, last, s in spans.get(f.revision, []) if first <= f.line <= last), None)
        level = "accepted" if f.accepted else f.level
        message = f"{f.rule}: {f.message}" + (f" (accepted: {f.accepted})" if f.accepted else "")
        rev.findings.append(Finding(level, f"squawk:{f.rule}", rev.revision, stmt.file if stmt else f.path,
                                    stmt.line if stmt else f.source_line, message, f.alternative,
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


def write_json(report: RehearsalReport, path: Path) -> Path:
    """The report as JSON at ``path``; sets ``report.path``."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
    report.path = str(path)
    return path


def show(settings: Settings, report: RehearsalReport, fmt: str = "text", *, ui: UI = SILENT) -> None:
    """The report through ``ui`` in ``fmt`` (:func:`dbops.report_format.rehearse_report`); under GitHub Actions
    (``settings.github_actions``, text and markdown only) first an annotation per finding on its revision file."""
    from .. import report_format

    if settings.github_actions and fmt != "json":
        notes = report_format.rehearse_annotations(report, root=settings.root)
        if notes:
            ui.say(notes)
    ui.say(report_format.rehearse_report(report, fmt) + (f"\nreport: {report.path}" if fmt == "text" and report.path
                                                         else ""))


def parse_server(raw: str | None, *, variable: str = "--server") -> URL | None:
    """``--server``: a Postgres server URL (the database part names where to connect for CREATE DATABASE)."""
    if not raw:
        return None
    from urllib.parse import urlsplit

    from ..settings import normalize_database_url

    try:
        named = urlsplit(raw.strip()).path.strip("/") != ""
    except ValueError:
        named = True  # let the URL parser say what is wrong
    url = normalize_database_url(raw if named else raw.strip().rstrip("/") + "/postgres", variable=variable)
    postgres.refuse_pooled(url, variable=variable)
    return url
