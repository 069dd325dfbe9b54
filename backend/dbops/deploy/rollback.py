"""``inv rollback``: take a fresh backup, then downgrade to the revision before the last deploy.

The plan (:func:`plan`: where to go back to, and through which revisions)
and its reversibility check come first; :func:`rollback_database` runs the
steps (settings, lock, plan, backup, downgrade, verify) through :class:`Run`.
Refuses when a revision on the way down cannot be downgraded (its
``downgrade()`` is empty/``pass`` or raises ``NotImplementedError``): then
the way back is restoring the backup taken before the deploy.  A downgrade
restores the schema only, never data (the seed's FAQ) - hence the backup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, Connection

from .. import health
from ..backup import restore_commands
from ..errors import DbopsError, IrreversibleMigration, RevisionNotReached, UsageError
from ..migrations import Project, upgrade
from ..redact import mask_url
from ..roundtrip import irreversible_downgrade
from ..settings import Settings
from ..ui import SILENT, UI
from . import backup_step, history, preflight, verify
from .report import DeployReport, Outcome
from .run import Run, Skipped, Steps


@dataclass
class Plan:
    current: tuple[str, ...]
    target: str
    revisions: list[str]  # to downgrade, newest first
    source: str  # where the target came from
    backup_key: str | None = None  # the backup taken before that deploy


def irreversible_reason(project: Project, revision: str) -> str | None:
    """Why ``revision``'s downgrade cannot undo it, or None (the round-trip tester's detector)."""
    found = irreversible_downgrade(project.revision(revision))
    if found is None:
        return None
    return f"its {found.reason}" + (" (marked irreversible in the file)" if found.marked else "")


def plan(
    conn: Connection, project: Project, env: str, *, to: str | None = None, last: history.DeployRow | None = None
) -> Plan:
    current = project.current(conn)
    if conn.in_transaction():
        conn.rollback()
    if to is not None:
        target, source = (project.revision(to).revision if to != "base" else "base"), "--to"
    elif last is not None:
        before = list(last.revision_before)
        target = before[0] if before else "base"
        source = f"deploy #{last.id} started at {last.started_at:%Y-%m-%d %H:%M:%S %Z}".rstrip()
    else:
        if not current:
            raise UsageError("the database has no revision applied; there is nothing to roll back")
        down = project.revision(current[0]).down_revision
        if isinstance(down, (tuple, list)):
            raise UsageError(f"{current[0]} is a merge revision; pass --to REV to say where to go back to")
        target, source = (down or "base"), "the parent of the current revision (no deploy history found)"
    revisions = [s.revision for s in project.script.iterate_revisions(current or "base", target)] if current else []
    revisions = [r for r in revisions if r != target]
    return Plan(current, target, revisions, source, last.backup_key if last else None)


def check_reversible(project: Project, p: Plan, env: str) -> None:
    for rev in p.revisions:
        why = irreversible_reason(project, rev)
        if why:
            path = project.revision(rev).path
            raise IrreversibleMigration(rev, str(Path(path).name), why, env, p.backup_key)


def rollback_database(
    settings: Settings, *, to: str | None = None, lock_held: bool = False, url: URL | None = None,
    no_backup: bool = False, ui: UI = SILENT,
) -> DeployReport:
    """``inv rollback``: fresh backup, then downgrade to the revision before the last deploy (or ``to``).

    ``lock_held`` and ``url``: called by a deploy's --auto-rollback, which holds the lock on that database.
    Returns the report or raises DeployFailed carrying it.
    """
    job = _Rollback(settings, to=to, lock_held=lock_held, url=url, no_backup=no_backup, ui=ui)
    return job.run.execute(job.steps(), job.on_failure)


class _Rollback:
    """The steps of one rollback, sharing what they found."""

    def __init__(self, settings: Settings, *, to: str | None, lock_held: bool, url: URL | None, no_backup: bool,
                 ui: UI):
        self.settings, self.to, self.lock_held, self.no_backup, self.ui = settings, to, lock_held, no_backup, ui
        self.project = Project(settings.alembic_ini)
        self.run = Run(settings, "rollback", ui, mode="rollback", url=url)
        self.report = self.run.report
        self.planned: Plan | None = None

    def steps(self) -> Steps:
        run = self.run
        return [
            ("settings", self.target),
            *([] if self.lock_held else [("lock", self.take_lock)]),
            (None, run.connect),
            ("plan", self.make_plan),
            ("backup", self.back_up),
            (None, lambda: run.open_history(self.planned.current)),
            ("downgrade", self.downgrade),
            ("verify", self.check),
        ]

    def target(self) -> str:
        run = self.run
        run.url = run.url or preflight.target_url(self.settings, need_health=False)
        self.report.database = mask_url(run.url)
        return ""

    def take_lock(self) -> str:
        return f"advisory lock held as '{self.run.hold_lock().application_name}'"

    def make_plan(self) -> str:
        r, conn, env = self.report, self.run.conn, self.settings.env
        last = None if self.to else history.last_deploy(conn, env)
        p = self.planned = plan(conn, self.project, env, to=self.to, last=last)
        r.revision_before = list(p.current)
        r.head = p.target
        check_reversible(self.project, p, env)
        detail = f"downgrade {', '.join(p.revisions) or 'nothing'} to {p.target} (target from {p.source})"
        self.ui.ok(detail)
        if not p.revisions:
            r.revision_after = list(p.current)
            r.finish(Outcome.NOTHING_TO_ROLL_BACK)
            self.ui.ok(f"nothing to roll back: the database is at {p.target}")
        return detail

    def back_up(self) -> str:
        r, p = self.report, self.planned
        if self.settings.is_local and self.no_backup:
            return Skipped("--no-backup (local only)")
        r.backup = backup_step.take(self.settings, self.run.url, p.current[0] if p.current else None, ui=self.ui)
        return f"{r.backup.key} ({r.backup.size} bytes)"

    def downgrade(self) -> str:
        conn, settings = self.run.conn, self.settings
        upgrade.set_timeouts(conn, lock_timeout_ms=settings.lock_timeout_ms,
                             statement_timeout_ms=settings.statement_timeout_ms)
        self.project.downgrade(conn, self.planned.target)
        if conn.in_transaction():
            conn.commit()
        return f"downgraded {len(self.planned.revisions)} revision(s)"

    def check(self) -> str:
        r, conn, target = self.report, self.run.conn, self.planned.target
        # measured on the run's own connection, never through env.py (which may reach another database)
        r.revision_after = verify.measured(conn)
        r.db_changed = sorted(r.revision_after) != sorted(r.revision_before)
        expected = [] if target == "base" else [target]
        if sorted(r.revision_after) != expected:
            raise RevisionNotReached("downgrade", r.database, r.revision_before, r.revision_after, expected)
        # what the app says now, asked once (never a failure: the database is where it must be)
        h = (health.check(self.settings.health_url, timeout=self.settings.health_timeout_s)
             if self.settings.health_url else None)
        if h is not None:
            r.health.append(h)
        r.warnings.append(verify.rollback_words(target, h))
        return f"database at {target} (read on dbops' own connection)"

    def on_failure(self, err: DbopsError) -> None:
        r = self.report
        if self.run.url is not None and r.failed_step not in ("settings", "lock"):
            self.run.read_back()
        if (r.failed_step in ("downgrade", "verify") or isinstance(err, IrreversibleMigration)) and r.backup_key:
            r.recovery += restore_commands(self.settings.env, r.backup_key,
                                           self.run.url.database if self.run.url is not None else None)
