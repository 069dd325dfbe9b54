"""A run's bookkeeping, shared by ``inv deploy`` and ``inv rollback``: steps, report, artifacts, history, webhook.

:meth:`Run.execute` is the loop both commands hand their steps to: each step
runs timed in the report, inside one :class:`contextlib.ExitStack` that owns
what the steps take (the deploy lock, the connection) and lets go of it at
the end, whatever happened.  A failure is read back by the command's own
``on_failure`` and raised as :class:`DeployFailed` carrying the report.
Every run - success, early end or failure - then finishes its history row,
notifies the webhook, writes its JSON report (under ``backups/`` and beside
the backup) and shows its summary through the UI.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from .. import postgres, webhook
from ..clock import stamp
from ..errors import DatabaseUnreachable, DbopsError, DeployFailed, Interrupted
from ..migrations import Project
from ..postgres import lock
from ..redact import mask_url, reason
from ..settings import Settings
from ..ui import UI, spelled
from . import backup_step, history
from .report import DeployReport, Outcome, StepStatus


class Skipped(str):
    """The detail line of a step that had nothing to do: the report marks the step skipped."""


#: a run's steps in order: (its name in the report, the function doing it, which returns the step's detail
#: line); a None name is groundwork between two steps (connecting, opening the history row), not a step
Steps = Sequence[tuple[str | None, Callable[[], str | None]]]


class Run:
    """One deploy or rollback run: the report it fills, what it holds, where its records go."""

    def __init__(self, settings: Settings, command: str, ui: UI, *, mode: str, url: URL | None = None):
        self.settings = settings
        self.command = command
        self.ui = ui
        #: the database the run works on, once known
        self.url = url
        self.report = DeployReport(f"inv {command}", settings.env, mask_url(url or settings.database_url), mode=mode)
        self.stem = f"{command}_{settings.env}_{stamp()}"
        #: owns the deploy lock and the connection the steps take
        self.stack = ExitStack()
        self.conn: Connection | None = None
        self.history_id: int | None = None

    # -- the loop -------------------------------------------------------------
    def execute(self, steps: Steps, on_failure: Callable[[DbopsError], None]) -> DeployReport:
        """Run ``steps`` in order until one fails or ends the run (it finishes the report); then the records.

        A failure is classified by ``on_failure(err)`` (the state read back,
        the recovery commands) and raised as :class:`DeployFailed`.
        """
        r = self.report
        with self.stack:
            try:
                for name, step in steps:
                    if name is None:
                        step()
                        continue
                    with r.step(name) as st:
                        detail = step()
                        st.detail = str(detail)
                        if isinstance(detail, Skipped):
                            st.status = StepStatus.SKIPPED
                    if r.finished_at is not None:  # ended early: nothing to do, or only a plan
                        return r
                r.finish(Outcome.SUCCESS)
                return r
            except (Exception, KeyboardInterrupt) as exc:  # every failure ends with a report, Ctrl-C too
                typed = isinstance(exc, DbopsError)
                err = exc if typed else DbopsError(f"{type(exc).__name__}: {reason(exc, self.url)}")
                if isinstance(exc, KeyboardInterrupt):  # the real state is read back; exit 130 at the edge
                    err = Interrupted()
                    typed = True
                if r.failed_step is None:
                    r.failed_step, r.error = "internal", err.message
                r.outcome = Outcome.FAILED
                on_failure(err)
                raise DeployFailed(r, err) from (None if typed else exc)
            finally:
                self.finalize()

    # -- what steps take ------------------------------------------------------
    def hold_lock(self) -> lock.DeployLock:
        """The deploy lock, held until the run ends; LockBusy after DBOPS_DEPLOY_LOCK_WAIT."""
        return self.stack.enter_context(lock.hold(self.settings, self.url, self.command))

    def connect(self) -> None:
        """The run's connection, open until the run ends."""
        self.conn = self.stack.enter_context(postgres.connect(
            self.url, name=f"dbops {self.command} {self.settings.env}", timeout=self.settings.connect_timeout_s,
            hint=self.settings.connect_hint,
        ))

    def open_history(self, current: tuple[str, ...]) -> None:
        """The run's row in dbops.deploys, written before anything changes (finished by :meth:`finalize`)."""
        self.history_id = history.start(self.conn, self.command, self.settings.env, list(current),
                                        self.report.backup_key)

    def read_back(self) -> None:
        """After a failure: the database's revision on a fresh connection (None: unknown), and whether it changed."""
        r = self.report
        try:
            with postgres.connect(self.url, timeout=self.settings.connect_timeout_s) as conn:
                r.revision_after = list(Project.current(conn))
        except (DatabaseUnreachable, sa.exc.SQLAlchemyError):
            r.revision_after = None
        r.db_changed = None if r.revision_after is None else sorted(r.revision_after) != sorted(r.revision_before)

    # -- records --------------------------------------------------------------
    def save(self, name: str, text: str) -> str:
        """Write an artifact under backups/ and beside the backup; returns the local path."""
        directory, text = self.settings.backups_dir, spelled(text)
        path = directory / name
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as exc:  # a full or read-only backups/ folder: the copy beside the backup remains
            self.report.warnings.append(f"could not write {path}: {exc.strerror or exc}")
            path = None
        self._beside(name, text.encode())
        return str(path) if path else f"(beside the backup) {name}"

    def _beside(self, name: str, data: bytes) -> str | None:
        """Store a copy beside the run's backup; None when stored (or no backup), else why not."""
        try:
            backup_step.store_beside(self.settings, self.report.backup, name, data)
        except Exception as exc:  # never fail a run over a copy of its own record
            self.report.warnings.append(f"could not store {name} beside the backup: {type(exc).__name__}")
            return type(exc).__name__
        return None

    def finalize(self) -> None:
        """Finish the history row, notify, write the report (and its copy beside the backup), show the summary."""
        r = self.report
        if r.finished_at is None:
            r.finish(r.outcome)
        if self.conn is not None and self.history_id is not None:
            try:
                history.finish(self.conn, self.history_id, r.outcome, r.revision_after, r.to_dict())
            except sa.exc.SQLAlchemyError as exc:
                r.warnings.append(f"could not record the run in {history.TABLE}: {type(exc).__name__}")
        r.notify_error = webhook.send(self.settings.notify_webhook_url, spelled(_notification(r)))
        if r.notify_error:
            r.warnings.append(f"notification failed: {r.notify_error}")
        try:
            path = r.write(self.settings.backups_dir, self.stem)
        except OSError as exc:  # the report still goes beside the backup, else to stderr: never lost
            r.warnings.append(f"could not write the report to {self.settings.backups_dir}: {exc.strerror or exc}")
            r.path = None
            data = r.to_json().encode()
            if r.backup and not self._beside(f"{self.stem}.json", data):
                r.path = f"beside the backup {r.backup.key}: {self.stem}.json"
            else:
                sys.stderr.write(data.decode())
        else:
            self._beside(path.name, path.read_bytes())
        self.ui.say("")
        self.ui.say(r.summary())


def _notification(r: DeployReport) -> str:
    icon = {Outcome.SUCCESS: "✅", Outcome.NOTHING_TO_DEPLOY: "➖", Outcome.PLANNED: "📝"}.get(r.outcome, "🚨")
    before = ", ".join(r.revision_before) or "(empty)"
    after = ", ".join(r.revision_after or []) or "(unknown)"
    text = f"{icon} {r.command} --env {r.env}: {r.outcome} ({before} -> {after})"
    if r.failed_step:
        text += f"\nfailed at {r.failed_step}: {r.error}"
    if r.recovery:
        text += "\nrecover with: " + " | ".join(r.recovery)
    return text
