"""After a failed deploy step: read back the database's state, decide the recovery commands, --auto-rollback.

The failed step says what can have changed.  Before the upgrade (settings,
lock, preflight, backup, dry run) nothing did: the hint says fix the cause
and run again.  From the upgrade on, the revision is read back on a fresh
connection; when it changed, the report lists ``inv rollback`` (when every
revision on the way down can be downgraded) and ``inv restore --in-place``
of the backup taken first (asking for the database's name, and its
unattended form with ``--yes-i-know DBNAME``), which replaces the database
with the backup.  ``--auto-rollback`` runs the downgrade itself when
verify or monitor failed.
"""

from __future__ import annotations

from .. import postgres
from ..backup import restore_commands
from ..errors import DbopsError, DeployFailed
from ..migrations import Project
from . import rollback
from .report import AutoRollback, Outcome, StepStatus
from .run import Run

#: steps that fail before anything can have changed
BEFORE_CHANGES = ("settings", "lock", "preflight")


def after_failure(run: Run, project: Project, err: DbopsError, *, auto_rollback: bool) -> None:
    """Fill the failed deploy's report: whether the database changed, how to recover; roll back if asked."""
    r, settings, ui = run.report, run.settings, run.ui
    ui.fail(f"step '{r.failed_step}' failed: {err.message}")
    if run.url is None or r.failed_step in BEFORE_CHANGES:
        r.db_changed = False if r.failed_step in BEFORE_CHANGES else None
        if r.failed_step == "preflight":
            r.revision_after = list(r.revision_before)
        return
    run.read_back()
    if r.failed_step in ("backup", "dry-run") or (r.db_changed is False and r.failed_step == "upgrade"):
        return  # nothing changed: the hint says fix and rerun
    env = settings.env
    before = r.revision_before[0] if r.revision_before else "base"
    if r.db_changed is not False:
        if _reversible(run, project, before):
            r.recovery.append(f"inv rollback --env {env}")
        if r.backup_key:
            r.recovery += restore_commands(env, r.backup_key, run.url.database)
    if auto_rollback and r.failed_step in ("verify", "monitor") and r.db_changed:
        ui.warn("--auto-rollback: downgrading to the revision before the deploy")
        try:
            rb = rollback.rollback_database(settings, to=before, lock_held=True, url=run.url, ui=ui)
            r.rollback = AutoRollback(StepStatus.OK, f"back at {', '.join(rb.revision_after or []) or '(empty)'}",
                                      rb.path)
            r.revision_after = rb.revision_after
            r.outcome = Outcome.ROLLED_BACK
            r.db_changed = False
            r.recovery = [c for c in r.recovery if c.startswith("inv restore")]
        except DeployFailed as exc:
            r.rollback = AutoRollback(StepStatus.FAILED, exc.message, exc.report.path)


def _reversible(run: Run, project: Project, to: str) -> bool:
    """Whether ``inv rollback`` could take the database back to ``to`` (checked on a fresh connection)."""
    settings = run.settings
    try:
        with postgres.connect(run.url, name="dbops deploy check", timeout=settings.connect_timeout_s,
                              hint=settings.connect_hint) as conn:
            p = rollback.plan(conn, project, settings.env, to=to)
            rollback.check_reversible(project, p, settings.env)
    except DbopsError:
        return False
    return True
