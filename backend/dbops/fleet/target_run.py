"""One target's deploy: the deploy pipeline's own steps, run by :class:`dbops.deploy.run.Run` on that target.

The steps are the deploy's (:mod:`dbops.deploy.pipeline`): the lock, dbops' own connection, the preflight
(one head, the applied files unchanged, env.py and the models load), the backup by the fleet's policy, the
upgrade with timeouts and bounded retries (the lineage recorded first), the revision measured on dbops' own
connection, the verify there, the history row and the JSON report.  What a fleet does once for every
target is not repeated per target: the dry run and Squawk's lint ran before the first wave (the ``dry-run``
step says so), the webhook gets one summary for the fleet, and the monitoring window and the health URL
belong to the app, checked once by the fleet (not per tenant).
"""

from __future__ import annotations

import time

from .. import lineage
from ..clock import stamp
from ..deploy import backup_step, checksums, failure, preflight, verify
from ..deploy.report import DeployReport, Outcome
from ..deploy.run import Run, Skipped
from ..errors import DbopsError, DeployFailed, UpgradeFailed
from ..migrations import Project, upgrade
from ..settings import Settings
from ..ui import SILENT
from .manifest import TargetRecord, worker_name
from .report import restore_command
from .targets import Target

#: the fleet's outcomes, as they appear in the manifest's keys
OUTCOMES = {Outcome.SUCCESS: "success", Outcome.NOTHING_TO_DEPLOY: "nothing-to-deploy"}


def deploy_target(settings: Settings, project: Project, target: Target, *, index: int, backup: str,
                  lint_note: str, recovery: str, allow_multiple: bool = False,
                  backup_key: str | None = None) -> TargetRecord:
    """Deploy ``target``; never raises for the target's own failure: the record says what happened.

    ``backup``: ``per-target`` takes one; anything else is the reason none is taken here.  ``backup_key``: the
    backup of the target's database the fleet took before the first wave (per-database, per-server).
    ``recovery``: the command that deploys this target again, given to a failed record (with the command that
    restores its backup, when it has one).
    """
    started = time.monotonic()
    s = settings.with_(database_url=target.url, notify_webhook_url=None)
    job = _TargetDeploy(s, project, target, backup, lint_note, allow_multiple)
    try:
        report = job.run.execute(job.steps(), job.on_failure)
    except DeployFailed as exc:
        report = exc.report
    return _record(report, target, index, time.monotonic() - started, recovery, settings.env, backup_key)


def _record(r: DeployReport, target: Target, index: int, seconds: float, recovery: str, env: str,
            backup_key: str | None) -> TargetRecord:
    failed = r.outcome not in OUTCOMES
    key = r.backup_key or backup_key
    restore = restore_command(env, target, key) if failed else None
    return TargetRecord(
        index=index, name=target.name, group=target.group,
        outcome="failed" if failed else OUTCOMES[r.outcome],
        step=r.failed_step, error=r.error, revision_before=list(r.revision_before),
        revision_after=None if r.revision_after is None else list(r.revision_after), db_changed=r.db_changed,
        seconds=round(seconds, 3), backup=key,
        # the deploy's own rollback / restore commands name the environment's DATABASE_URL, not this tenant: the
        # fleet's commands are given - run the target again, or put its backup back (with the tenant's URL as
        # configured); db_changed says what the target holds
        recovery=[recovery, *([restore] if restore else [])] if failed else [],
        worker=worker_name(),
    )


class _TargetDeploy:
    def __init__(self, settings: Settings, project: Project, target: Target, backup: str, lint_note: str,
                 allow_multiple: bool):
        self.settings, self.project, self.target = settings, project, target
        self.allow_multiple = allow_multiple
        self.backup, self.lint_note = backup, lint_note
        self.run = Run(settings, "deploy", SILENT, mode="deploy", url=target.url)
        self.run.stem = f"deploy_{settings.env}_{target.name.replace('/', '.')}_{stamp()}"
        self.report = self.run.report
        self.pf: preflight.Preflight | None = None

    def steps(self):
        run = self.run
        return [
            ("settings", self.where),
            ("lock", self.take_lock),
            (None, run.connect),
            ("preflight", self.inspect),
            ("backup", self.back_up),
            ("dry-run", lambda: Skipped(self.lint_note)),
            (None, lambda: run.open_history(self.pf.current)),
            ("upgrade", self.apply),
            ("verify", self.check),
        ]

    def on_failure(self, err: DbopsError) -> None:
        failure.after_failure(self.run, self.project, err, auto_rollback=False)

    def where(self) -> str:
        return self.target.describe()

    def take_lock(self) -> str:
        held = self.run.hold_lock()
        return f"advisory lock held (waited {held.waited_s:.1f}s)"

    def inspect(self) -> str:
        r = self.report
        pf = self.pf = preflight.inspect(self.run.conn, self.project, self.settings,
                                              allow_multiple=self.allow_multiple)
        r.revision_before, r.head, r.pending = list(pf.current), pf.head, pf.pending_rows()
        if pf.nothing_pending:
            r.revision_after = list(pf.current)
            r.finish(Outcome.NOTHING_TO_DEPLOY)
        return "; ".join(pf.checks)

    def back_up(self) -> str:
        if self.backup != "per-target":
            return Skipped(self.backup)
        current = self.pf.current
        self.report.backup = backup_step.take(self.settings, self.target.database_url,
                                              current[0] if current else None)
        return f"{self.report.backup.key} ({self.report.backup.size} bytes)"

    def apply(self) -> str:
        r, settings, conn = self.report, self.settings, self.run.conn
        lineage.record(conn, self.project)
        try:
            r.upgrade_attempts = upgrade.run(self.project, conn, attempts=settings.lock_retries,
                                             lock_timeout_ms=settings.lock_timeout_ms,
                                             statement_timeout_ms=settings.statement_timeout_ms)
        except UpgradeFailed as exc:
            r.upgrade_attempts = exc.attempts
            raise
        verify.upgraded(conn, r, self.project.heads())
        checksums.record(conn, self.project, [p.revision for p in r.pending] + self.pf.unrecorded)
        return f"applied {len(r.pending)} revision(s): {', '.join(r.revision_before) or '(empty)'} -> " \
               f"{', '.join(r.revision_after)}"

    def check(self) -> str:
        self.report.revision_after = verify.database_at_head(self.run.conn, self.project)
        return f"at head {', '.join(self.report.revision_after)} (read on dbops' own connection)"
