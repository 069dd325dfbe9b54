"""The production job: preflight, lock, backup, dry run + lint, upgrade, verify, monitor.

This module only orchestrates; each step lives in its own module.  A step
that fails stops the run: nothing after it runs, the database state is read
back, and the run ends with a report (step, reason, revisions, whether the
database changed, the exact recovery commands) and :class:`DeployFailed`.
Every run - success, "nothing to deploy", plan or failure - writes its JSON
report, prints a summary and notifies the webhook.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from .. import console, dryrun, postgres, squawk, webhook
from ..errors import DbopsError, DeployFailed, LintFailed, UpgradeFailed
from ..migrations import Project
from ..redact import mask_url
from ..settings import Settings
from . import backup_step, checksums, history, monitor, preflight, rollback, upgrade, verify
from .lock import DeployLock, holder_name
from .report import Report

log = logging.getLogger(__name__)


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


def _stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S_%fZ")


def target_url(settings: Settings, *, need_backup: bool = True, need_health: bool = True) -> URL:
    """The database to deploy to: the configured URL (checked), or for --env local the tool's own server."""
    if settings.env == "local" and settings.database_url is None:
        from ..servers import server_for

        return server_for(settings).start()
    return preflight.database_url(settings, need_backup=need_backup, need_health=need_health)


@contextmanager
def _connection(settings: Settings, url: URL, name: str) -> Iterator[Connection]:
    engine = postgres.make_engine(
        url, connect_args={"connect_timeout": settings.connect_timeout_s, "application_name": name[:63]}
    )
    try:
        try:
            conn = engine.connect()
        except sa.exc.OperationalError as exc:
            raise postgres.unreachable(
                url, exc, f"check {settings.database_url_var} and that the server accepts connections from here"
            ) from None
        with conn:
            yield conn
    finally:
        engine.dispose()


def _as_dbops_error(exc: Exception, url: URL | None) -> DbopsError:
    if isinstance(exc, DbopsError):
        return exc
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = text[0] if text else type(exc).__name__
    if url is not None and url.password:
        reason = reason.replace(str(url.password), "***")
    return DbopsError(f"{type(exc).__name__}: {reason}")


def _db_revision(settings: Settings, url: URL) -> list[str] | None:
    """The database's revision read on a fresh connection (None when unreachable)."""
    try:
        engine = postgres.make_engine(url, connect_timeout=settings.connect_timeout_s)
        try:
            with engine.connect() as conn:
                return list(Project.current(conn))
        finally:
            engine.dispose()
    except sa.exc.SQLAlchemyError:
        return None


class Run:
    """Shared bookkeeping of a deploy or rollback run: report, artifacts, history, notification."""

    def __init__(self, settings: Settings, command: str, url_shown: str, mode: str):
        self.settings = settings
        self.report = Report(f"inv {command}", settings.env, url_shown, mode=mode)
        self.command = command
        self.stem = f"{command}_{settings.env}_{_stamp()}"
        self.history_id: int | None = None

    def save(self, name: str, text: str) -> str:
        """Write an artifact under backups/ and beside the backup; returns the local path."""
        directory = self.settings.backups_dir
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        path.write_text(text)
        self._beside(name, text.encode())
        return str(path)

    def _beside(self, name: str, data: bytes) -> None:
        try:
            backup_step.store_beside(self.settings, self.report.backup, name, data)
        except Exception as exc:  # never fail a run over a copy of its own record
            self.report.warnings.append(f"could not store {name} beside the backup: {type(exc).__name__}")

    def finalize(self, conn: Connection | None) -> None:
        r = self.report
        if r.finished_at is None:
            r.finish(r.outcome)
        if conn is not None and self.history_id is not None:
            try:
                history.finish(conn, self.history_id, r.outcome, r.revision_after, r.as_dict())
            except sa.exc.SQLAlchemyError as exc:
                r.warnings.append(f"could not record the run in {history.TABLE}: {type(exc).__name__}")
        r.notify_error = webhook.send(self.settings.notify_webhook_url, _notification(r))
        if r.notify_error:
            r.warnings.append(f"notification failed: {r.notify_error}")
        path = r.write(self.settings.backups_dir, self.stem)
        self._beside(path.name, path.read_bytes())
        console.say("")
        console.say(r.summary())


def _notification(r: Report) -> str:
    icon = {"success": "✅", "nothing to deploy": "➖", "planned": "📝"}.get(r.outcome, "🚨")
    before = ", ".join(r.revision_before) or "(empty)"
    after = ", ".join(r.revision_after or []) or "(unknown)"
    text = f"{icon} {r.command} --env {r.env}: {r.outcome} ({before} -> {after})"
    if r.failed_step:
        text += f"\nfailed at {r.failed_step}: {r.error}"
    if r.recovery:
        text += "\nrecover with: " + " | ".join(r.recovery)
    return text


# -- deploy -----------------------------------------------------------------------


def deploy(settings: Settings, opts: DeployOptions | None = None) -> Report:
    """Run the production job for ``settings.env``; returns the report or raises DeployFailed carrying it."""
    opts = opts or DeployOptions()
    project = Project(settings.alembic_ini)
    run = Run(settings, "deploy", mask_url(settings.database_url), "plan" if opts.plan else "deploy")
    r = run.report
    url: URL | None = None
    lock: DeployLock | None = None
    conn: Connection | None = None
    conn_cm = None
    try:
        with r.step("settings") as st:
            url = target_url(settings, need_backup=not opts.plan, need_health=not opts.plan)
            r.database = mask_url(url)
            st.detail = r.database
        console.heading(f"{'plan' if opts.plan else 'deploy'} --env {settings.env}: {r.database}")
        if not opts.plan:
            with r.step("lock") as st:
                lock = DeployLock(url, holder_name("deploy", settings.env), wait_s=settings.deploy_lock_wait_s,
                                  connect_timeout=settings.connect_timeout_s)
                lock.acquire()
                st.detail = f"advisory lock held as '{lock.application_name}' (waited {lock.waited_s:.1f}s)"
            console.ok(r.steps[-1].detail)
        conn_cm = _connection(settings, url, f"dbops deploy {settings.env}")
        conn = conn_cm.__enter__()
        with r.step("preflight") as st:
            r.revision_before = list(project.current(conn))
            pf = preflight.inspect(conn, project, settings, allow_multiple=opts.allow_multiple)
            r.revision_before = list(pf.current)
            r.head = pf.head
            r.pending = pf.pending_rows()
            st.detail = "; ".join(pf.checks)
        for line in pf.checks:
            console.ok(line)
        if pf.nothing_pending:
            r.revision_after = list(pf.current)
            r.finish("nothing to deploy")
            console.ok(f"nothing to deploy: the database is at head {pf.head}")
            return r
        console.say("pending: " + ", ".join(f"{p['revision']} ({p['doc']})" for p in r.pending))

        if not opts.plan:
            with r.step("backup") as st:
                if settings.is_local and opts.no_backup:
                    st.status, st.detail = "skipped", "--no-backup (local only)"
                else:
                    console.say("backing up the database before anything changes...")
                    r.backup = backup_step.take(settings, url, pf.current[0] if pf.current else None)
                    st.detail = f"{r.backup['key']} ({r.backup['size']} bytes)"
            if r.backup:
                console.ok(f"backup: {r.backup['key']} sha256 {r.backup['sha256']}")

        with r.step("dry-run") as st:
            _dry_run(run, project, pf, url, allow_unsafe=opts.allow_unsafe or opts.plan)
            st.detail = f"{len(pf.pending)} revision(s), SQL in {r.dry_run_sql}"

        if opts.plan:
            r.revision_after = list(pf.current)
            r.finish("planned")
            console.say(_plan_text(settings, r, opts))
            return r

        run.history_id = history.start(conn, "deploy", settings.env, list(pf.current), run.report.backup_key)
        with r.step("upgrade") as st:
            def on_retry(n: int, why: str) -> None:
                console.warn(f"upgrade attempt {n} hit lock_timeout ({why}); retrying")

            console.say(f"upgrading to {pf.head} (lock_timeout={settings.lock_timeout_ms}ms, "
                        f"statement_timeout={settings.statement_timeout_ms}ms)...")
            try:
                r.upgrade_attempts = upgrade.run(
                    project, conn, attempts=settings.lock_retries, lock_timeout_ms=settings.lock_timeout_ms,
                    statement_timeout_ms=settings.statement_timeout_ms, on_retry=on_retry,
                )
            except UpgradeFailed as exc:
                r.upgrade_attempts = exc.attempts
                raise
            checksums.record(conn, project, [p["revision"] for p in r.pending] + pf.unrecorded)
            st.detail = f"applied {len(r.pending)} revision(s) in {r.upgrade_attempts} attempt(s)"
        console.ok(r.steps[-1].detail)

        with r.step("verify") as st:
            out = verify.database_at_head(conn, project)
            r.revision_after = list(project.current(conn))
            conn.rollback()
            detail = [f"database at head ({out or pf.head})"]
            if settings.health_url:
                h = verify.app_healthy(settings.health_url, list(project.heads()),
                                       within_s=settings.verify_timeout_s, timeout=settings.health_timeout_s)
                r.health.append(h.as_dict())
                detail.append(f"{h.url}: {h.reason}")
            else:
                r.warnings.append("HEALTH_URL is not set: the app's health was not checked")
            st.detail = "; ".join(detail)
        console.ok(r.steps[-1].detail)

        seconds = opts.monitor_seconds if opts.monitor_seconds is not None else settings.monitor_minutes * 60
        if seconds > 0:
            with r.step("monitor") as st:
                res = monitor.watch(
                    url, project, seconds=seconds, interval=min(settings.monitor_interval_s, max(seconds / 2, 0.1)),
                    health_url=settings.health_url, health_timeout=settings.health_timeout_s,
                    long_transaction_s=settings.long_transaction_s, connect_timeout=settings.connect_timeout_s,
                )
                r.monitor = res.as_dict()
                r.warnings += res.warnings
                st.detail = f"{res.samples} sample(s) over {seconds:g}s"
        else:
            r.skipped("monitor", "--monitor-seconds 0")
        r.finish("success")
        return r
    except Exception as exc:  # every failure ends with a report
        err = _as_dbops_error(exc, url)
        if r.failed_step is None:
            r.failed_step, r.error = "internal", err.message
        if isinstance(exc, monitor.MonitorFailed):
            r.monitor = {"samples": exc.samples}
        _after_failure(run, project, url, err, opts, lock)
        raise DeployFailed(r, err) from (exc if not isinstance(exc, DbopsError) else None)
    finally:
        _close(run, conn, conn_cm, lock)


def _dry_run(run: Run, project: Project, pf: preflight.Preflight, url: URL, *, allow_unsafe: bool) -> None:
    r = run.report
    revisions = [s.revision for s in pf.pending]
    major = pf.server_version.split()[0]
    run_ = dryrun.lint_revisions(project, revisions, pg_version=major)
    sqls, findings = run_.sql, run_.findings
    text = dryrun.render_sql(project, sqls)
    r.dry_run_sql = run.save(f"{run.stem}.sql", text)
    r.lint = [f.as_dict() for f in findings]
    console.heading(f"dry run: the SQL of {len(revisions)} revision(s) (saved to {r.dry_run_sql})")
    console.say(text)
    console.say(squawk.render_findings(findings))
    errors = [f for f in findings if f.is_error]
    if errors:
        if allow_unsafe:
            r.warnings.append(f"{len(errors)} unsafe statement(s) deployed with --allow-unsafe")
            console.warn(f"{len(errors)} error-level finding(s) accepted: --allow-unsafe")
        else:
            raise LintFailed(
                findings,
                details=squawk.render_findings(errors),
                hint="rewrite the migration the safer way shown above (a new revision before it is deployed), "
                "or pass --allow-unsafe after deciding the lock/data risk is acceptable",
            )


def _plan_text(settings: Settings, r: Report, opts: DeployOptions) -> str:
    env = settings.env
    lines = ["", f"plan: `inv deploy --env {env}` would now:"]
    n = 1
    lines.append(f"  {n}. take the deploy lock (one deploy at a time)"); n += 1
    if settings.is_local and opts.no_backup:
        lines.append(f"  {n}. skip the backup (--no-backup)")
    else:
        lines.append(f"  {n}. back up the database to {mask_url(None) if not settings.backup_url else _masked(settings.backup_url)}")
    n += 1
    lines.append(f"  {n}. apply {len(r.pending)} revision(s), each in its own transaction, lock_timeout="
                 f"{settings.lock_timeout_ms}ms, statement_timeout={settings.statement_timeout_ms}ms, up to "
                 f"{settings.lock_retries} attempt(s):"); n += 1
    lines += [f"       {p['revision']}  {p['doc']}  ({p['file']})" for p in r.pending]
    errors = sum(1 for f in r.lint if f["level"] == "error")
    if errors and not opts.allow_unsafe:
        lines.append(f"     (would STOP before this: {errors} error-level lint finding(s); see above)")
    lines.append(f"  {n}. verify: database at head {r.head}"
                 + (f", {_masked(settings.health_url)} answers 200 at head" if settings.health_url else "")); n += 1
    seconds = opts.monitor_seconds if opts.monitor_seconds is not None else settings.monitor_minutes * 60
    lines.append(f"  {n}. monitor for {seconds:g}s")
    lines.append("nothing was changed.")
    return "\n".join(lines)


def _masked(url: str) -> str:
    return mask_url(url)


def _after_failure(run: Run, project: Project, url: URL | None, err: DbopsError, opts: DeployOptions,
                   lock: DeployLock | None) -> None:
    """Read back the DB state, decide the recovery commands, roll back automatically if asked."""
    r = run.report
    settings = run.settings
    r.outcome = "failed"
    console.fail(f"step '{r.failed_step}' failed: {err.message}")
    if url is None or r.failed_step in ("settings", "lock", "preflight"):
        r.db_changed = False if r.failed_step in ("settings", "lock", "preflight") else None
        if r.failed_step == "preflight":
            r.revision_after = list(r.revision_before)
        return
    r.revision_after = _db_revision(settings, url)
    r.db_changed = None if r.revision_after is None else sorted(r.revision_after) != sorted(r.revision_before)
    if r.failed_step in ("backup", "dry-run") or (r.db_changed is False and r.failed_step == "upgrade"):
        return  # nothing changed: the hint says fix and rerun
    env = settings.env
    if r.db_changed is not False:
        reversible = True
        try:
            with _connection(settings, url, "dbops deploy check") as c:
                p = rollback.plan(c, project, env, to=r.revision_before[0] if r.revision_before else "base")
                rollback.check_reversible(project, p, env)
        except DbopsError:
            reversible = False
        if reversible:
            r.recovery.append(f"inv rollback --env {env}")
        if r.backup_key:
            r.recovery.append(f"inv restore --env {env} --backup {r.backup_key}")
    if opts.auto_rollback and r.failed_step in ("verify", "monitor") and r.db_changed:
        console.warn("--auto-rollback: downgrading to the revision before the deploy")
        try:
            rb = rollback_database(settings, to=r.revision_before[0] if r.revision_before else "base",
                                   lock_held=True, url=url)
            r.rollback = {"outcome": "ok", "detail": f"back at {', '.join(rb.revision_after or []) or '(empty)'}",
                          "report": rb.path}
            r.revision_after = rb.revision_after
            r.outcome = "rolled back"
            r.db_changed = False
            r.recovery = [c for c in r.recovery if c.startswith("inv restore")]
        except DeployFailed as exc:
            r.rollback = {"outcome": "failed", "detail": exc.message, "report": exc.report.path}


# -- rollback ---------------------------------------------------------------------


def rollback_database(
    settings: Settings, *, to: str | None = None, lock_held: bool = False, url: URL | None = None, no_backup: bool = False
) -> Report:
    """``inv rollback``: fresh backup, then downgrade to the revision before the last deploy (or ``to``)."""
    project = Project(settings.alembic_ini)
    run = Run(settings, "rollback", mask_url(url or settings.database_url), "rollback")
    r = run.report
    lock: DeployLock | None = None
    conn_cm = None
    conn = None
    try:
        with r.step("settings"):
            url = url or target_url(settings, need_health=False)
            r.database = mask_url(url)
        if not lock_held:
            with r.step("lock") as st:
                lock = DeployLock(url, holder_name("rollback", settings.env), wait_s=settings.deploy_lock_wait_s,
                                  connect_timeout=settings.connect_timeout_s)
                lock.acquire()
                st.detail = f"advisory lock held as '{lock.application_name}'"
        conn_cm = _connection(settings, url, f"dbops rollback {settings.env}")
        conn = conn_cm.__enter__()
        with r.step("plan") as st:
            last = None if to else history.last_deploy(conn, settings.env)
            p = rollback.plan(conn, project, settings.env, to=to, last=last)
            r.revision_before = list(p.current)
            r.head = p.target
            rollback.check_reversible(project, p, settings.env)
            st.detail = f"downgrade {', '.join(p.revisions) or 'nothing'} to {p.target} (target from {p.source})"
        console.ok(r.steps[-1].detail)
        if not p.revisions:
            r.revision_after = list(p.current)
            r.finish("nothing to roll back")
            console.ok(f"nothing to roll back: the database is at {p.target}")
            return r
        with r.step("backup") as st:
            if settings.is_local and no_backup:
                st.status, st.detail = "skipped", "--no-backup (local only)"
            else:
                r.backup = backup_step.take(settings, url, p.current[0] if p.current else None)
                st.detail = f"{r.backup['key']} ({r.backup['size']} bytes)"
        run.history_id = history.start(conn, "rollback", settings.env, list(p.current), r.backup_key)
        with r.step("downgrade") as st:
            upgrade.set_timeouts(conn, lock_timeout_ms=settings.lock_timeout_ms,
                                 statement_timeout_ms=settings.statement_timeout_ms)
            project.downgrade(conn, p.target)
            if conn.in_transaction():
                conn.commit()
            st.detail = f"downgraded {len(p.revisions)} revision(s)"
        with r.step("verify") as st:
            r.revision_after = list(project.current(conn))
            conn.rollback()
            expected = [] if p.target == "base" else [p.target]
            if sorted(r.revision_after) != expected:
                raise DbopsError(f"after the downgrade the database is at {r.revision_after}, expected {expected}")
            st.detail = f"database at {p.target}"
            r.warnings.append("a downgrade restores the schema, not data; redeploy the app release that matches "
                              f"{p.target} (its health check reports 503 until then)")
        r.finish("success")
        return r
    except Exception as exc:
        err = _as_dbops_error(exc, url)
        if r.failed_step is None:
            r.failed_step, r.error = "internal", err.message
        r.outcome = "failed"
        if url is not None and r.failed_step not in ("settings", "lock"):
            r.revision_after = _db_revision(settings, url)
            r.db_changed = None if r.revision_after is None else sorted(r.revision_after) != sorted(r.revision_before)
        if r.failed_step in ("downgrade", "verify") or isinstance(err, rollback.IrreversibleMigration):
            if r.backup_key:
                r.recovery.append(f"inv restore --env {settings.env} --backup {r.backup_key}")
        raise DeployFailed(r, err) from (exc if not isinstance(exc, DbopsError) else None)
    finally:
        _close(run, conn, conn_cm, lock)


def _close(run: Run, conn, conn_cm, lock) -> None:
    """Write the report, then let go of the connection and the deploy lock, whatever happened."""
    try:
        run.finalize(conn)
    finally:
        if conn_cm is not None:
            conn_cm.__exit__(None, None, None)
        if lock is not None:
            lock.release()


# -- the smaller commands ------------------------------------------------------------


def monitor_only(settings: Settings, *, seconds: float) -> monitor.MonitorResult:
    """``inv monitor``: watch the health URL and the database for ``seconds``; raises MonitorFailed."""
    project = Project(settings.alembic_ini)
    url = target_url(settings, need_backup=False, need_health=False)
    console.heading(f"monitor --env {settings.env}: {mask_url(url)} for {seconds:g}s")
    if not settings.health_url:
        console.warn("HEALTH_URL is not set: watching the database only")
    return monitor.watch(
        url, project, seconds=seconds, interval=min(settings.monitor_interval_s, max(seconds / 2, 0.1)),
        health_url=settings.health_url, health_timeout=settings.health_timeout_s,
        long_transaction_s=settings.long_transaction_s, connect_timeout=settings.connect_timeout_s,
    )


def accept_migration_change(settings: Settings, revision: str) -> tuple[str | None, str]:
    """``inv accept-migration-change``: record the current hash of an applied, deliberately edited file."""
    project = Project(settings.alembic_ini)
    url = target_url(settings, need_backup=False, need_health=False)
    with DeployLock(url, holder_name("accept-change", settings.env), wait_s=settings.deploy_lock_wait_s):
        with _connection(settings, url, "dbops accept-change") as conn:
            return checksums.accept(conn, project, revision)
