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

from .. import dryrun, lineage, monitor, rehearse, squawk
from ..errors import DbopsError, LintFailed, MonitorFailed, UpgradeFailed
from ..migrations import Project, upgrade
from ..redact import mask_url
from ..settings import Settings
from ..ui import SILENT, UI
from . import backup_step, checksums, failure, plan, preflight, verify
from .report import DeployReport, MonitorFailure, Outcome, Rehearsal
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
    #: the compat step: the serving code's models on the new schema (dbops.compat), before the backup
    compat: bool = False
    #: the serving commit for the compat step (None: the revision the app reports on HEALTH_URL)
    compat_ref: str | None = None
    #: the rehearsal on a copy of the backup (dbops.rehearse): True --rehearse, False --no-rehearse,
    #: None: on when cheap (the backup at most DBOPS_REHEARSE_AUTO_MB)
    rehearse: bool | None = None
    #: rehearse on this server (a scratch database there) instead of a throwaway local one
    rehearse_server: object | None = None


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
        #: revision -> the statements the rehearsal ran (the dry run lints them instead of offline SQL)
        self.captured: dict[str, list[str]] | None = None

    def steps(self) -> Steps:
        run, changing = self.run, not self.opts.plan
        return [
            ("settings", self.target),
            *([("lock", self.take_lock)] if changing else []),
            (None, run.connect),
            ("preflight", self.inspect),
            *([("compat", self.check_compat)] if self.opts.compat else []),
            *([("backup", self.back_up)] if changing else []),
            *([("rehearse", self.rehearse)] if self.rehearsal_possible() else []),
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
            r.finish(Outcome.NOTHING_TO_DEPLOY)
            ui.ok(f"nothing to deploy: the database is at head {pf.head}")
        else:
            ui.say("pending: " + ", ".join(f"{p.revision} ({p.doc})" for p in r.pending))
        return "; ".join(pf.checks)

    def check_compat(self) -> str:
        """--compat: the code now serving must survive the schema the pending revisions produce."""
        from .. import compat  # start-up: old code's models (git, httpx, a subprocess) load only for --compat

        detail, warnings = compat.gate(self.settings, self.project, ref=self.opts.compat_ref,
                                       allow_unsafe=self.opts.allow_unsafe, plan=self.opts.plan, ui=self.ui)
        self.report.warnings += warnings
        return detail

    def back_up(self) -> str:
        r, current = self.report, self.pf.current
        if self.settings.is_local and self.opts.no_backup:
            return Skipped("--no-backup (local only)")
        self.ui.say("backing up the database before anything changes...")
        r.backup = backup_step.take(self.settings, self.run.url, current[0] if current else None, ui=self.ui)
        self.ui.ok(f"backup: {r.backup.key} sha256 {r.backup.sha256}")
        return f"{r.backup.key} ({r.backup.size} bytes)"

    def rehearsal_possible(self) -> bool:
        """The rehearse step is in the run unless --no-rehearse, or the default is off and --rehearse not given."""
        wanted = self.opts.rehearse
        if wanted is None and self.settings.rehearse_auto_mb <= 0:
            self.report.rehearsal = Rehearsal(False, "off by default (DBOPS_REHEARSE_AUTO_MB=0); --rehearse runs it")
            return False
        if wanted is False:
            self.report.rehearsal = Rehearsal(False, "--no-rehearse")
            return False
        return True

    def rehearse(self) -> str:
        """The pending revisions on a copy of the backup, traced (:mod:`dbops.rehearse`); stops on its errors."""
        opts, ui, r = self.opts, self.ui, self.report
        run, why, info = rehearse.deploy_decision(self.settings, opts.rehearse, r.backup_key,
                                                  server_url=opts.rehearse_server)
        rh = r.rehearsal = Rehearsal(run, why, info.key if info else None)
        if not run:
            ui.say(f"rehearsal skipped: {why}")
            return Skipped(why)
        ui.heading(f"rehearse on a copy of {info.key} ({why})")
        found = rehearse.rehearse(self.settings, backup=info.key, server_url=opts.rehearse_server, ui=ui)
        text = rehearse.render(found)
        ui.say(text)
        rh.errors, rh.findings, rh.failure = len(found.errors), len(found.findings), found.failure
        rh.expected_upgrade_s, rh.longest_wait_s = found.upgrade_s, found.to_dict()["longest_wait_s"]
        rh.text = self.run.save(f"{self.run.stem}.rehearse.txt", text + "\n")
        # every revision the copy's upgrade reached or should have (it did not fail): an empty capture of one that
        # does something is an error of the dry run, never "no findings"
        self.captured = {rev.revision: [s.sql for s in rev.statements if not s.is_version_write]
                         for rev in found.revisions if rev.reached or found.failure is None}
        detail = (f"{len(found.revisions)} revision(s) on {info.key}: {len(found.errors)} error(s), "
                  f"expected upgrade {found.upgrade_s}s")
        if found.errors:
            # nothing rehearsed (env.py ran the migration elsewhere) is no risk --allow-unsafe can accept
            nothing_ran = any(f.kind in rehearse.NOTHING_RAN for f in found.errors)
            if not opts.plan and (nothing_ran or not opts.allow_unsafe):
                rehearse.stop_if_unsafe(found)
            verb = "a deploy stops here unless --allow-unsafe" if opts.plan else "deployed with --allow-unsafe"
            r.warnings.append(f"the rehearsal found {len(found.errors)} error-level finding(s): {verb}")
            ui.warn(r.warnings[-1])
        return detail

    def dry_run(self) -> str:
        """Each pending revision's SQL (saved under backups/ and beside the backup), linted by Squawk."""
        r, run, ui, opts = self.report, self.run, self.ui, self.opts
        revisions = [s.revision for s in self.pf.pending]
        found = dryrun.lint_revisions(self.project, revisions, pg_version=self.pf.server_version.split()[0],
                                      captured=self.captured)
        text = dryrun.sql_text(found.revisions)
        r.dry_run_sql = run.save(f"{run.stem}.sql", text)
        r.lint = list(found.findings)
        ui.heading(f"dry run: the SQL of {len(revisions)} revision(s) (saved to {r.dry_run_sql})")
        ui.say(text)
        for line in found.notices:  # a revision without offline SQL (a data migration): one line, not a crash
            ui.warn(line)
            r.warnings.append(line)
        ui.say(dryrun.findings_text(found))
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
            r.finish(Outcome.PLANNED)
            ui.say(plan.text(self.settings, r, seconds=self.seconds, no_backup=opts.no_backup,
                             allow_unsafe=opts.allow_unsafe, health=self.pf.health))
        return detail

    def apply(self) -> str:
        r, settings, conn, pf = self.report, self.settings, self.run.conn, self.pf

        def on_retry(n: int, why: str) -> None:
            self.ui.warn(f"upgrade attempt {n} hit lock_timeout ({why}); retrying")

        self.ui.say(f"upgrading to {pf.head} (lock_timeout={settings.lock_timeout_ms}ms, "
                    f"statement_timeout={settings.statement_timeout_ms}ms)...")
        # before the upgrade: an old app that meets the new revision can tell "ahead" from "unknown" at once
        lineage.record(conn, self.project)
        try:
            r.upgrade_attempts = upgrade.run(
                self.project, conn, attempts=settings.lock_retries, lock_timeout_ms=settings.lock_timeout_ms,
                statement_timeout_ms=settings.statement_timeout_ms, on_retry=on_retry,
            )
        except UpgradeFailed as exc:
            r.upgrade_attempts = exc.attempts
            raise
        # what env.py did is measured, not believed: the target's revision on dbops' own connection
        verify.upgraded(conn, r, self.project.heads())
        checksums.record(conn, self.project, [p.revision for p in r.pending] + pf.unrecorded)
        detail = (f"applied {len(r.pending)} revision(s) in {r.upgrade_attempts} attempt(s): "
                  f"{', '.join(r.revision_before) or '(empty)'} -> {', '.join(r.revision_after)}")
        self.ui.ok(detail)
        return detail

    def check(self) -> str:
        r, settings, conn = self.report, self.settings, self.run.conn
        r.revision_after = verify.database_at_head(conn, self.project)
        detail = [f"database at head {', '.join(r.revision_after)} (read on dbops' own connection)"]
        if settings.health_url:
            h = verify.app_healthy(settings.health_url, list(self.project.heads()),
                                   within_s=settings.verify_timeout_s, timeout=settings.health_timeout_s)
            r.health.append(h)
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
            r.monitor = MonitorFailure(exc.samples)
            raise
        r.monitor = res
        r.warnings += res.warnings
        return f"{res.samples} sample(s) over {self.seconds:g}s"
