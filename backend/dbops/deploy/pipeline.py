"""The production job, ``inv deploy``: settings, lock, preflight, backup, dry run + lint, upgrade, verify, monitor.

:func:`deploy` builds what the run needs, then hands the list of steps to
:meth:`Run.execute <.run.Run.execute>`, alembic's ``command.upgrade`` way.
Each step is a function returning its detail line; the loop runs them in
order inside an ExitStack that owns the deploy lock and the connection.  A
step that fails stops the run: nothing after it runs, :mod:`.failure` reads
the database state back, and the run ends with a report (step, reason,
revisions, whether the database changed, the exact recovery commands) and
:class:`DeployFailed`.  "Nothing to deploy" (after the preflight) and
``--plan`` (after the dry run) end the run early.  Every run writes its
JSON report, shows a summary and notifies the webhook (:mod:`.run`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import dryrun, monitor, squawk
from ..errors import DbopsError, LintFailed, MonitorFailed, UpgradeFailed
from ..migrations import Project
from ..redact import mask_url
from ..settings import Settings
from ..ui import SILENT, UI
from . import backup_step, checksums, failure, plan, preflight, upgrade, verify
from .report import DeployReport
from .run import Run, Skipped, Steps


@dataclass
class DeployOptions:
    plan: bool = False
    allow_multiple: bool = False
    allow_unsafe: bool = False
    auto_rollback: bool = False
    #: monitoring window; None: settings.monitor_minutes
    monitor_seconds: float | None = None
    #: local only: skip the (optional) backup
    no_backup: bool = False


def deploy(settings: Settings, opts: DeployOptions | None = None, *, ui: UI = SILENT) -> DeployReport:
    """Run the production job for ``settings.env``; returns the report or raises DeployFailed carrying it."""
    job = _Deploy(settings, opts or DeployOptions(), ui)
    return job.run.execute(job.steps(), job.on_failure)


class _Deploy:
    """The steps of one deploy, sharing what they found (the target, the preflight)."""

    def __init__(self, settings: Settings, opts: DeployOptions, ui: UI):
        self.settings, self.opts, self.ui = settings, opts, ui
        self.project = Project(settings.alembic_ini)
        self.run = Run(settings, "deploy", ui, mode="plan" if opts.plan else "deploy")
        self.report = self.run.report
        self.seconds = monitor.window_seconds(settings, seconds=opts.monitor_seconds)
        self.pf: preflight.Preflight | None = None

    def steps(self) -> Steps:
        run, changing = self.run, not self.opts.plan
        return [
            ("settings", self.target),
            *([("lock", self.take_lock)] if changing else []),
            (None, run.connect),
            ("preflight", self.inspect),
            *([("backup", self.back_up)] if changing else []),
            ("dry-run", self.dry_run),
            (None, lambda: run.open_history(self.pf.current)),
            ("upgrade", self.apply),
            ("verify", self.check),
            ("monitor", self.watch),
        ]

    def on_failure(self, err: DbopsError) -> None:
        failure.after_failure(self.run, self.project, err, auto_rollback=self.opts.auto_rollback)

    # -- the steps: each returns its detail line ------------------------------
    def target(self) -> str:
        run, r = self.run, self.report
        planning = self.opts.plan
        run.url = preflight.target_url(self.settings, need_backup=not planning, need_health=not planning)
        r.database = mask_url(run.url)
        self.ui.heading(f"{'plan' if planning else 'deploy'} --env {self.settings.env}: {r.database}")
        return r.database

    def take_lock(self) -> str:
        held = self.run.hold_lock()
        detail = f"advisory lock held as '{held.application_name}' (waited {held.waited_s:.1f}s)"
        self.ui.ok(detail)
        return detail

    def inspect(self) -> str:
        r, conn, ui = self.report, self.run.conn, self.ui
        r.revision_before = list(self.project.current(conn))
        pf = self.pf = preflight.inspect(conn, self.project, self.settings, allow_multiple=self.opts.allow_multiple)
        r.revision_before = list(pf.current)
        r.head = pf.head
        r.pending = pf.pending_rows()
        for line in pf.checks:
            ui.ok(line)
        if pf.nothing_pending:
            r.revision_after = list(pf.current)
            r.finish("nothing to deploy")
            ui.ok(f"nothing to deploy: the database is at head {pf.head}")
        else:
            ui.say("pending: " + ", ".join(f"{p['revision']} ({p['doc']})" for p in r.pending))
        return "; ".join(pf.checks)

    def back_up(self) -> str:
        r, current = self.report, self.pf.current
        if self.settings.is_local and self.opts.no_backup:
            return Skipped("--no-backup (local only)")
        self.ui.say("backing up the database before anything changes...")
        r.backup = backup_step.take(self.settings, self.run.url, current[0] if current else None, ui=self.ui)
        self.ui.ok(f"backup: {r.backup['key']} sha256 {r.backup['sha256']}")
        return f"{r.backup['key']} ({r.backup['size']} bytes)"

    def dry_run(self) -> str:
        """Each pending revision's SQL (saved under backups/ and beside the backup), linted by Squawk."""
        r, run, ui, opts = self.report, self.run, self.ui, self.opts
        revisions = [s.revision for s in self.pf.pending]
        found = dryrun.lint_revisions(self.project, revisions, pg_version=self.pf.server_version.split()[0])
        text = dryrun.render_sql(self.project, found.sql)
        r.dry_run_sql = run.save(f"{run.stem}.sql", text)
        r.lint = [f.as_dict() for f in found.findings]
        ui.heading(f"dry run: the SQL of {len(revisions)} revision(s) (saved to {r.dry_run_sql})")
        ui.say(text)
        ui.say(squawk.render_findings(found.findings))
        if found.errors:
            if not (opts.allow_unsafe or opts.plan):
                raise LintFailed(
                    found.findings,
                    details=squawk.render_findings(found.errors),
                    hint="rewrite the migration the safer way shown above (a new revision before it is deployed), "
                    "or pass --allow-unsafe after deciding the lock/data risk is acceptable",
                )
            r.warnings.append(f"{len(found.errors)} unsafe statement(s) deployed with --allow-unsafe")
            ui.warn(f"{len(found.errors)} error-level finding(s) accepted: --allow-unsafe")
        detail = f"{len(self.pf.pending)} revision(s), SQL in {r.dry_run_sql}"
        if opts.plan:
            r.revision_after = list(self.pf.current)
            r.finish("planned")
            ui.say(plan.text(self.settings, r, seconds=self.seconds, no_backup=opts.no_backup,
                             allow_unsafe=opts.allow_unsafe))
        return detail

    def apply(self) -> str:
        r, settings, conn, pf = self.report, self.settings, self.run.conn, self.pf

        def on_retry(n: int, why: str) -> None:
            self.ui.warn(f"upgrade attempt {n} hit lock_timeout ({why}); retrying")

        self.ui.say(f"upgrading to {pf.head} (lock_timeout={settings.lock_timeout_ms}ms, "
                    f"statement_timeout={settings.statement_timeout_ms}ms)...")
        try:
            r.upgrade_attempts = upgrade.run(
                self.project, conn, attempts=settings.lock_retries, lock_timeout_ms=settings.lock_timeout_ms,
                statement_timeout_ms=settings.statement_timeout_ms, on_retry=on_retry,
            )
        except UpgradeFailed as exc:
            r.upgrade_attempts = exc.attempts
            raise
        checksums.record(conn, self.project, [p["revision"] for p in r.pending] + pf.unrecorded)
        detail = f"applied {len(r.pending)} revision(s) in {r.upgrade_attempts} attempt(s)"
        self.ui.ok(detail)
        return detail

    def check(self) -> str:
        r, settings, conn = self.report, self.settings, self.run.conn
        out = verify.database_at_head(conn, self.project)
        r.revision_after = list(self.project.current(conn))
        conn.rollback()
        detail = [f"database at head ({out or self.pf.head})"]
        if settings.health_url:
            h = verify.app_healthy(settings.health_url, list(self.project.heads()),
                                   within_s=settings.verify_timeout_s, timeout=settings.health_timeout_s)
            r.health.append(h.as_dict())
            detail.append(f"{h.url}: {h.reason}")
        else:
            r.warnings.append("HEALTH_URL is not set: the app's health was not checked")
        self.ui.ok("; ".join(detail))
        return "; ".join(detail)

    def watch(self) -> str:
        r = self.report
        if not self.seconds > 0:
            return Skipped("--monitor-seconds 0")
        try:
            res = monitor.watch(self.settings, self.run.url, self.project, seconds=self.seconds, ui=self.ui)
        except MonitorFailed as exc:
            r.monitor = {"samples": exc.samples}
            raise
        r.monitor = res.as_dict()
        r.warnings += res.warnings
        return f"{res.samples} sample(s) over {self.seconds:g}s"
