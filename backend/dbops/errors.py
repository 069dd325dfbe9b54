"""One exception base for the whole toolkit.

Every failure a user can hit is a :class:`DbopsError` subclass that carries the
data needed to explain it.  Only the edge (``tasks.py`` and the container
entrypoint) turns one into an exit code and a message, via :func:`exit_code`.

A message answers three questions: what failed, what was checked, and how to
fix it.  ``hint`` holds the "how to fix it" part so the edge can print it on a
line of its own.
"""

from __future__ import annotations

from typing import Self

#: what an error says and how it ends the process: fixed once the error is made
_FIXED = frozenset({"message", "hint", "details", "exit_code"})


class DbopsError(Exception):
    """Base of every error the toolkit raises on purpose.

    Immutable once made: ``message``, ``hint``, ``details`` and ``exit_code``
    cannot be changed afterwards.  A caller that knows more (what it cleaned
    up, what else failed) raises :meth:`with_context`'s copy instead; an exit
    code other than the class's is a constructor argument (or a subclass).
    """

    #: process exit code the edge uses for this kind of failure
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None, details: str | None = None,
                 exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details
        if exit_code is not None:
            self.exit_code = exit_code
        object.__setattr__(self, "_made", True)

    def __setattr__(self, name: str, value: object) -> None:
        if name in _FIXED and self.__dict__.get("_made") and getattr(self, name, None) != value:
            raise AttributeError(f"{type(self).__name__}.{name} is fixed once the error is made; "
                                 "raise error.with_context(...) instead")
        object.__setattr__(self, name, value)

    def with_context(self, *, hint: str | None = None, details: str | None = None) -> Self:
        """A copy of this error (same class, same data, same cause and traceback) with ``hint`` and/or
        ``details`` replaced (None: kept)."""
        changed = {k: v for k, v in (("hint", hint), ("details", details)) if v is not None}
        copy = _remade(type(self), self.args, {**self.__dict__, **changed})
        copy.__cause__, copy.__suppress_context__ = self.__cause__, self.__suppress_context__
        return copy.with_traceback(self.__traceback__)

    def __reduce__(self):  # pickling makes it again from its data, not through __init__ (whose signature varies)
        return _remade, (type(self), self.args, dict(self.__dict__))

    def render(self) -> str:
        """The full text shown to a user: message, optional details block, hint."""
        parts = [f"error: {self.message}"]
        if self.details:
            parts.append("\n".join("    " + line for line in self.details.rstrip().splitlines()))
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)


def _remade(cls: type[DbopsError], args: tuple, state: dict) -> DbopsError:
    """An error of ``cls`` holding exactly ``state`` (made without ``__init__``: a copy, or an unpickled one)."""
    error = cls.__new__(cls, *args)
    error.__dict__.update(state)
    return error


class CheckFailed(DbopsError):
    """A check ran and found a problem (drift, pending migration, failed round trip). Exit 1."""

    exit_code = 1


class UsageError(DbopsError):
    """Bad input from the user: unknown option value, malformed URL, unknown revision. Exit 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A setting is missing or invalid. Carries the variable's name."""

    def __init__(self, variable: str, message: str, *, hint: str | None = None):
        super().__init__(f"{variable}: {message}", hint=hint)
        self.variable = variable


class CompressionUnsupported(UsageError):
    """The backup's compression (BACKUP_COMPRESSION / --compression) is one the chosen pg_dump lacks. Exit 2."""

    def __init__(self, compression: str, program: str, major: int, reason: str, *, setting: str):
        super().__init__(
            f"backup compression {compression}: {program} cannot write it ({reason}); nothing was written",
            hint=f"use gzip, which every pg_dump has: set {setting}=gzip:1, or pass --compression gzip:1"
            + ("" if major < 16 else "; or run `inv pg-clients` for pg_dump builds with zstd and lz4"),
        )
        self.compression = compression
        self.program = program
        self.major = major
        self.reason = reason


class DatabaseUnreachable(DbopsError):
    """Could not connect to Postgres. Carries the (masked) target and what was tried."""

    exit_code = 3

    def __init__(self, target: str, reason: str, *, tried: list[str] | None = None, hint: str | None = None):
        details = None
        if tried:
            details = "tried:\n" + "\n".join(f"- {t}" for t in tried)
        super().__init__(f"cannot connect to {target}: {reason}", hint=hint, details=details)
        self.target = target
        self.reason = reason
        self.tried = tried or []


class ServerError(DbopsError):
    """A local Postgres server (embedded or docker) failed to start or stop."""

    exit_code = 3


class ExtensionUnavailable(ServerError):
    """The server dbops runs revisions (or a restore) on lacks an extension they create: a limit of that server,
    never the revision's fault.  Carries the extension, the host library its module lacks (None: the extension
    is not installed there), the server and what needed it. Exit 3."""

    def __init__(self, extension: str, *, library: str | None = None, server: str = "the server",
                 needed_by: str | None = None, hint: str | None = None, details: str | None = None):
        why = (f"its module needs {library}, a library this host does not have" if library else
               "it is not installed there")
        by = f" that {needed_by} creates" if needed_by else ""
        whose = ", not a fault of the revision" if needed_by and needed_by.startswith("revision") else ""
        super().__init__(f'{server} lacks the PostgreSQL extension "{extension}"{by} ({why}): a limit of the '
                         f"server{whose}", hint=hint, details=details)
        self.extension = extension
        self.library = library
        self.server = server
        self.needed_by = needed_by


class ToolFailed(DbopsError):
    """An external program (pg_dump, pg_restore, psql, squawk) exited non-zero or timed out."""

    exit_code = 3

    def __init__(self, argv0: str, returncode: int | None, stderr_tail: str, *, hint: str | None = None):
        what = "timed out" if returncode is None else f"exited with status {returncode}"
        super().__init__(f"{argv0} {what}", hint=hint, details=stderr_tail or None)
        self.argv0 = argv0
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class MigrationError(DbopsError):
    """Alembic could not load or run the migration scripts (import error, bad revision, SQL error)."""

    exit_code = 1


class UpgradeFailed(MigrationError):
    """The production upgrade failed. Carries the SQLSTATE and how many attempts were made."""

    def __init__(self, message: str, *, sqlstate: str | None, attempts: int, details: str | None = None,
                 hint: str | None = None):
        super().__init__(message, details=details, hint=hint)
        self.sqlstate = sqlstate
        self.attempts = attempts


class UpgradeInterrupted(UpgradeFailed):
    """Ctrl-C during the upgrade: the running statement was canceled and its transaction rolled back. Exit 130."""

    exit_code = 130

    def __init__(self, *, sqlstate: str | None, attempts: int):
        super().__init__(
            "interrupted (Ctrl-C): the running migration statement was canceled and its transaction rolled back",
            sqlstate=sqlstate, attempts=attempts,
            hint="the report says which revision the database is at now; deploy again to finish",
        )


class ForeignDatabase(UsageError):
    """The project's env.py opened a connection to a database dbops did not choose for the step; refused.

    Carries what env.py tried and what dbops meant (``host:port/database``, never a password), and the
    step that ran env.py.
    """

    def __init__(self, tried: str, meant: str, step: str, *, how: str = "", variables: tuple[str, ...] = ()):
        meant_text = f"dbops meant {meant}" if meant else "dbops runs it with no database (offline SQL)"
        set_vars = ", ".join(variables) if variables else "DATABASE_URL"
        super().__init__(
            f"env.py tried to connect to {tried} while dbops ran {step}; {meant_text}; "
            "refused before any statement ran, nothing was changed",
            details=(f"{how}\n" if how else "") + f"checked: the host, port and database of every connection "
            f"env.py opened, and which server it reached; dbops set {set_vars} to the database it meant",
            hint="let env.py use the connection dbops hands it (config.attributes['connection'], the Alembic "
            "cookbook), or build its URL from DATABASE_URL / sqlalchemy.url; if it reads another variable, "
            "name it in pyproject.toml: [tool.dbops] url-variables = [\"NAME\"]",
        )
        self.tried = tried
        self.meant = meant
        self.step = step


class ReadOnlyViolation(UsageError):
    """During a read-only command, env.py or a revision asked for something that would commit; refused."""

    def __init__(self, what: str, step: str):
        super().__init__(
            f"{step} changes nothing, but {what}; refused, nothing was committed",
            hint="this runs when the revision runs for real (inv sync, inv deploy); a read-only command cannot "
            "evaluate it",
        )
        self.what = what
        self.step = step


class ModelImportError(UsageError):
    """A models module failed to import. Carries the file."""

    def __init__(self, path: str, error: str):
        super().__init__(
            f"models in {path} failed to import: {error}",
            hint=f"fix the error in {path}, then run the command again",
        )
        self.path = path
        self.error = error


class MultipleHeads(DbopsError):
    """The script directory has more than one head revision."""

    exit_code = 1

    def __init__(self, heads: list[str]):
        joined = " ".join(heads)
        super().__init__(
            f"the migration history has {len(heads)} heads: {', '.join(heads)}",
            hint=f'merge them first: alembic merge -m "merge heads" {joined}',
        )
        self.heads = heads


class Refused(DbopsError):
    """A guard refused a dangerous operation; nothing was changed."""

    exit_code = 2


class Aborted(DbopsError):
    """The user declined a confirmation prompt; nothing was changed."""

    exit_code = 1


class Interrupted(DbopsError):
    """Ctrl-C ended a run that reports how far it got (the deploy); the edge exits 130, as for a bare Ctrl-C."""

    exit_code = 130

    def __init__(self, message: str = "interrupted (Ctrl-C)", *, hint: str | None = None):
        super().__init__(message, hint=hint)


class StorageError(DbopsError):
    """Object storage (S3 or the backup folder) failed or refused a request. Carries the store and operation."""

    exit_code = 3

    def __init__(self, store: str, operation: str, reason: str, *, hint: str | None = None, details: str | None = None):
        super().__init__(f"{operation} failed on {store}: {reason}", hint=hint, details=details)
        self.store = store
        self.operation = operation
        self.reason = reason


class NoScratchSpace(UsageError):
    """No writable temporary folder for ``purpose`` (a read-only container without a tmpfs). Exit 2."""

    def __init__(self, purpose: str, reason: str, *, tried: str):
        super().__init__(
            f"no writable temporary folder for {purpose}: {reason}",
            details=f"tried: {tried}",
            hint="give it one: run the container with a tmpfs (docker run --read-only --tmpfs /tmp ...), "
            "or set TMPDIR to a writable folder",
        )
        self.purpose = purpose
        self.reason = reason
        self.tried = tried


class ClientTooOld(UsageError):
    """A client program (pg_dump, pg_restore) is older than the server or archive it must handle."""

    def __init__(self, program: str, path: str, client_major: int, needed_major: int, what: str, *, hint: str):
        super().__init__(
            f"{program} {client_major} ({path}) cannot handle {what} {needed_major}: "
            f"{program} must be version {needed_major} or newer",
            hint=hint,
        )
        self.program = program
        self.path = path
        self.client_major = client_major
        self.needed_major = needed_major


class ChecksumMismatch(CheckFailed):
    """A backup's bytes do not match its manifest (sha256 or size)."""

    def __init__(self, key: str, expected: str, actual: str, *, hint: str | None = None):
        super().__init__(
            f"backup {key} is corrupt: its manifest says {expected}, the stored object gives {actual}",
            hint=hint,
        )
        self.key = key
        self.expected = expected
        self.actual = actual


class KeyRequired(UsageError):
    """A backup is encrypted to age recipients and no identity at hand matches one of them. Exit 2."""

    def __init__(self, key: str, recipients: list[str], reason: str, *, hint: str):
        super().__init__(f"backup {key} is encrypted to {', '.join(recipients) or 'an unknown recipient'}: {reason}",
                         hint=hint)
        self.key = key
        self.recipients = list(recipients)
        self.reason = reason


class ConfirmationRequired(Refused):
    """An operation would replace a database; the caller must confirm by naming it."""

    def __init__(self, database: str, message: str, *, hint: str):
        super().__init__(message, hint=hint)
        self.database = database


def exit_code(exc: BaseException) -> int:
    """The process exit code for an exception reaching the edge."""
    if isinstance(exc, DbopsError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1


# -- the production deploy (``inv deploy``) ------------------------------------


class PooledConnectionRefused(Refused):
    """The database URL goes through a connection pooler; migrations and pg_dump need a direct connection."""

    def __init__(self, variable: str, pooled_host: str, direct_host: str):
        super().__init__(
            f"{variable} points at the pooled host {pooled_host}; deploys and backups need a direct "
            "(non-pooled) connection",
            details="checked: the host (Neon '-pooler', Supabase '.pooler.supabase.com') and the port (6543: "
            "PgBouncer / Supavisor transaction mode), where session advisory locks, SET lock_timeout, DDL "
            "transactions and pg_dump's snapshots do not behave",
            hint=f"use the direct host {direct_host} in {variable} (same user, password and database)",
        )
        self.variable = variable
        self.pooled_host = pooled_host
        self.direct_host = direct_host


class MigrationChanged(Refused):
    """An already-applied migration file differs from the one that was applied. Carries the file."""

    def __init__(self, revision: str, path: str, recorded: str, actual: str, env: str):
        super().__init__(
            f"migration {path} (revision {revision}) was edited after it was applied",
            details=f"sha256 recorded when applied: {recorded}\nsha256 of the file now:      {actual}\n"
            "an applied migration never runs again, so an edit there silently diverges from the database",
            hint="undo the edit and put the change in a new revision; if the edit is harmless (comments, "
            f"formatting), accept it: inv accept-migration-change --env {env} --revision {revision}",
        )
        self.revision = revision
        self.path = path
        self.recorded = recorded
        self.actual = actual


class LockBusy(DbopsError):
    """Another deploy holds the deploy lock. Carries who holds it and since when."""

    exit_code = 4

    def __init__(self, holder: str, since: str | None, waited_s: float):
        super().__init__(
            f"another deploy holds the deploy lock: {holder}" + (f" (since {since})" if since else ""),
            details=f"waited {waited_s:.0f}s for the Postgres advisory lock; nothing was changed",
            hint="wait for that deploy to finish and run the command again; if its process is gone the lock "
            "is released when its connection closes (check pg_stat_activity)",
        )
        self.holder = holder
        self.since = since


class LintFailed(CheckFailed):
    """Squawk found error-level problems in the migration SQL. Carries the findings."""

    def __init__(self, findings: list, *, details: str | None = None, hint: str | None = None):
        errors = [f for f in findings if getattr(f, "is_error", False)]
        super().__init__(
            f"{len(errors)} unsafe statement(s) in the migration SQL",
            details=details,
            hint=hint,
        )
        self.findings = findings


class CompatFailed(CheckFailed):
    """The serving code would break on the schema the pending revisions produce. Carries the compat report."""

    def __init__(self, report):
        first = report.findings[0]
        super().__init__(
            f"{len(report.findings)} change(s) in the pending revisions break the code now serving "
            f"(commit {report.commit[:12]}), first: {first.model} ({first.kind})",
            details="\n".join(f"{f.model}: {f.kind} ({f.table}{'.' + f.column if f.column else ''})"
                              for f in report.findings),
            hint="ship each change in expand/contract steps (the fix under each finding above): first a "
            "revision the old code survives, then the code, then the contracting revision",
        )
        self.report = report
        self.findings = report.findings


class BadAllowComment(UsageError):
    """A ``# dbops: allow <rule>: <why>`` comment in a revision file is malformed. Carries where and why."""

    def __init__(self, path: str, line: int, text: str, why: str):
        super().__init__(
            f"{path} line {line}: bad allow comment `{text}`: {why}",
            hint="write `# dbops: allow <rule>: <why this is safe here>` on a line of its own; nothing was linted",
        )
        self.path, self.line, self.text, self.why = path, line, text, why


class HealthCheckFailed(CheckFailed):
    """The health URL did not answer 200 (the check's own hint says what was asked of it). Carries the last
    status and body."""

    def __init__(self, url: str, reason: str, *, status: int | None = None, body: object = None,
                 hint: str = "look at the application's logs; its health URL must answer HTTP 200"):
        super().__init__(f"health check of {url} failed: {reason}", hint=hint)
        self.url = url
        self.reason = reason
        self.status = status
        self.body = body


class IrreversibleMigration(Refused):
    """A downgrade would pass through a revision whose downgrade() does nothing or raises."""

    def __init__(self, revision: str, path: str, why: str, env: str, backup_key: str | None = None):
        restore = f"inv restore --env {env} --backup {backup_key or 'KEY'} --in-place"
        super().__init__(
            f"revision {revision} cannot be downgraded: {why}",
            details=f"file: {path}\nnothing was changed",
            hint=f"restore the backup taken before the deploy instead: {restore}",
        )
        self.revision = revision
        self.path = path


class DeployFailed(DbopsError):
    """A deploy (or rollback) step failed. Carries the run's report; the exit code is the cause's."""

    def __init__(self, report, cause: DbopsError | None = None):
        self.report = report
        self.cause = cause
        step = report.failed_step or "?"
        reason = cause.message if cause is not None else (report.error or "unknown error")
        super().__init__(
            f"{report.command} --env {report.env} failed at step '{step}': {reason}",
            details=cause.details if cause is not None else None,
            hint=report.recovery_hint() if report.recovery or cause is None or not cause.hint
            else f"{cause.hint}\n{report.unchanged_note()}" if report.db_changed is False else cause.hint,
            exit_code=cause.exit_code if cause is not None else None,
        )


class FleetFailed(DbopsError):
    """A fleet deploy left targets failed or not run. Carries the fleet report (each failed target with its own
    recovery command, the rollout's stop reason); exit 1."""

    exit_code = 1

    def __init__(self, report):
        self.report = report
        failed = report.failed
        names = ", ".join(r.name for r in failed[:10]) + (" ..." if len(failed) > 10 else "")
        what = [f"{len(failed)} target(s) failed ({names})"] if failed else []
        if report.stopped:
            what.append(f"stopped: {report.stopped}")
        super().__init__(
            f"fleet deploy --env {report.env} (run {report.run}): " + "; ".join(what or ["did not finish"]),
            details="\n".join(f"{r.name}: step '{r.step}': {r.error}" for r in failed[:50]) or None,
            hint="to recover, after fixing each failed target's cause:\n" + "\n".join(
                f"  {line}" for line in report.recovery()),
        )


# -- containers and the Render API ---------------------------------------------


class DockerUnavailable(DbopsError):
    """No Docker engine answers. Carries why not."""

    exit_code = 3

    def __init__(self, reason: str, *, hint: str | None = None):
        super().__init__(
            f"no Docker engine answers ({reason})",
            hint=hint or "start Docker (e.g. `sudo dockerd &` or Docker Desktop), or use --db embedded",
        )
        self.reason = reason


class DockerCallFailed(DbopsError):
    """The Docker engine refused or failed a request. Carries the operation, its target and the engine's answer.

    Exit 2 when the engine rejected the request itself (HTTP 400: an invalid
    image reference or container name, i.e. a setting), else 3.
    """

    def __init__(self, operation: str, target: str, reason: str, *, status: int | None = None,
                 hint: str | None = None):
        super().__init__(
            f"docker {operation} {target} failed: {reason}",
            details="checked: the Docker engine's answer" + (f" (HTTP {status})" if status else ""),
            hint=hint or "check the image and container settings (`inv config`) and `docker info`, then run "
            "the command again",
            exit_code=2 if status == 400 else 3,
        )
        self.operation = operation
        self.target = target
        self.reason = reason
        self.status = status


class ImageBuildError(DbopsError):
    """``docker build`` failed; ``details`` holds the tail of the build log."""

    exit_code = 3


class DockerJobTimeout(DbopsError):
    """A one-shot container still ran at its deadline and was killed; ``details`` holds its output so far."""

    exit_code = 3


class ComposeUnavailable(DbopsError):
    """Neither ``docker compose`` nor ``docker-compose`` is installed."""

    exit_code = 3


class RenderError(DbopsError):
    """The Render API could not be used (network, unexpected answer). Exit 3."""

    exit_code = 3


class RenderAuthError(RenderError):
    """401/403: the API key is wrong, revoked, or lacks access to the service."""


class RenderServiceNotFound(RenderError):
    """404: no service (or job) with that id for this API key."""


class RenderUnavailable(RenderError):
    """429 or 5xx (or a dropped connection mid-run) from the Render API, still so when the retries ran out."""

    def __init__(self, what: str, status: int | None, *, tries: int = 1, seconds: float = 0.0,
                 retry_after: float | None = None, details: str | None = None, reason: str | None = None):
        kept = f", still after {tries} tries in {seconds:.0f}s" if tries > 1 else ""
        said = reason or f"HTTP {status}{' (rate limited)' if status == 429 else ''}"
        super().__init__(
            f"{what}: {said}{kept}",
            details=details,
            hint="check https://status.render.com; on 429 wait for the rate limit to reset; "
            "then run the command again (a longer --timeout gives the retries more time)",
        )
        self.what, self.status, self.tries, self.seconds, self.retry_after = what, status, tries, seconds, retry_after
        self.reason = said


class RenderJobTimeout(RenderError):
    """The job did not finish by the deadline. Carries the job, the wait, and whether it was canceled."""

    def __init__(self, job, seconds: float, *, canceled: bool, why_not: str | None = None):
        if canceled:
            message, hint = (f"Render job {job.id} was still {job.status} after {seconds:.0f}s (the deadline): "
                             "canceled it",
                             "nothing more runs on Render; give it more time with --timeout, and read the "
                             f"job's log in the dashboard (service {job.service_id}, Jobs tab)")
        else:
            message, hint = (f"Render job {job.id} was still {job.status} after {seconds:.0f}s (the deadline) "
                             f"and could not be canceled ({why_not})",
                             f"it may still be running: cancel it in the dashboard (service {job.service_id}, "
                             "Jobs tab)")
        super().__init__(message, hint=hint)
        self.job, self.seconds, self.canceled = job, seconds, canceled


class RenderDeployFailed(CheckFailed):
    """The job service's deploy of a commit ended without going live. Carries the deploy. Exit 1."""

    def __init__(self, deploy):
        super().__init__(
            f"deploy {deploy.id} of service {deploy.service_id} at commit {deploy.commit} ended {deploy.status}; "
            "no job was started",
            hint=f"read the deploy's build log in the Render dashboard (service {deploy.service_id}, Events); "
            "fix the build, push, and run the workflow again",
        )
        self.deploy = deploy


class RenderDeployTimeout(RenderError):
    """The job service's deploy was not live by the deadline. Carries the deploy and the wait."""

    def __init__(self, deploy, seconds: float):
        super().__init__(
            f"deploy {deploy.id} of service {deploy.service_id} at commit {deploy.commit} was still {deploy.status} "
            f"after {seconds:.0f}s (the deadline); no job was started",
            hint="the deploy goes on on Render; when it is live run the command again (it will not deploy twice), "
            "or give it more time with --timeout",
        )
        self.deploy, self.seconds = deploy, seconds


class RenderJobFailed(CheckFailed):
    """The job ran and ended ``failed`` or ``canceled``. Carries the job. Exit 1."""

    def __init__(self, job):
        super().__init__(
            f"Render job {job.id} ended {job.status} after {job.describe_duration()} ({job.start_command!r})",
            hint=f"read the job's log in the Render dashboard (service {job.service_id}, Jobs tab); "
            "the deploy report is at its end",
        )
        self.job = job


class MonitorFailed(CheckFailed):
    """The app or the database went bad while being watched. Carries the samples."""

    def __init__(self, reason: str, samples: list):
        super().__init__(
            f"monitoring failed: {reason}",
            hint="check the application's logs and `inv monitor`; roll back if the new schema is the cause",
        )
        self.samples = samples


class RoundTripToolError(DbopsError):
    """The round-trip tester itself failed (a snapshot query, a checkpoint, the server): never a revision's fault.

    Exit 3.
    """

    exit_code = 3

    def __init__(self, what: str, cause: str, *, revision: str | None = None):
        where = f" (while testing revision {revision}, which is not at fault)" if revision else ""
        super().__init__(
            f"the round-trip tester itself failed{where}: {what}: {cause}",
            hint="this is a problem of dbops or of the throwaway server, not of your migrations; "
            "run again, and report it if it persists",
        )
        self.what = what
        self.cause = cause
        self.revision = revision


class RoundTripFailed(CheckFailed):
    """One or more round-trip checks failed. Carries the :class:`~dbops.roundtrip.RoundTripReport`. Exit 1."""

    def __init__(self, report):
        failed = report.failed_checks
        names = ", ".join(c.name for c in failed)
        details = []
        for c in failed:
            details.append(f"{c.name}: {c.message}")
        super().__init__(
            f"{len(failed)} of {len(report.checks)} round-trip checks failed ({names})",
            details="\n".join(details),
            hint=next((c.hint for c in failed if c.hint), None),
        )
        self.report = report


class RehearsalFailed(CheckFailed):
    """The rehearsal on a copy of production found error-level findings. Carries the
    :class:`~dbops.rehearse.RehearsalReport`. Exit 1."""

    def __init__(self, report, *, hint: str | None = None):
        errors = report.errors
        super().__init__(
            f"the rehearsal on a copy of {report.env} found {len(errors)} error-level finding(s)"
            + (f"; the upgrade failed there: {report.failure}" if report.failure else ""),
            details="\n".join(f"{e.revision or '-'} {e.where()}: {e.message}" for e in errors[:20]),
            hint=hint or "rewrite the revision the safer way shown for each finding (a new revision before it is "
            "deployed), or pass --allow-unsafe to `inv deploy` after deciding the risk is acceptable",
        )
        self.report = report


# -- what dbops measured itself, never through env.py ----------------------------------------------------------


def _revisions(revs) -> str:
    return ", ".join(revs) if revs else "(empty: no revision)"


#: why env.py is the likely cause when the target did not move or nothing was captured, and the way out
ENV_PY_OWN_CONNECTION = (
    "env.py most likely ran the migration on a connection of its own (an engine built from its own settings, "
    "e.g. a DATABASE_URL or settings module of another environment) instead of the one dbops handed it"
)
#: where the statements of a revision of which nothing was captured ran instead
NOT_SEEN = (
    "its SQL ran where dbops cannot see it: on a connection env.py opened itself (an engine built from its own "
    "settings, perhaps to another database) instead of the one dbops handed it, or on a raw DBAPI cursor"
)
ENV_PY_FIX = (
    "make env.py's run_migrations_online() use the connection dbops passes in config.attributes['connection'] "
    "(the Alembic cookbook: `connection = config.attributes.get('connection')`, building an engine only when it "
    "is None)"
)


class RevisionNotReached(CheckFailed):
    """After a step that should have moved it, the target's revision, read on dbops' own connection, is not where
    the step meant. Carries the step, the target (masked) and the measured revisions. Exit 1."""

    def __init__(self, step: str, database: str, before, after, expected, *, hint: str | None = None):
        before, after, expected = list(before), list(after), list(expected)
        moved = ("did not move at all" if sorted(after) == sorted(before)
                 else f"moved from {_revisions(before)} but stopped short")
        super().__init__(
            f"after the {step} the database {database} is at {_revisions(after)}, not at {_revisions(expected)}: "
            f"its revision {moved}",
            details=f"measured on dbops' own connection to {database} (alembic_version), not through env.py:\n"
            f"before:   {_revisions(before)}\nafter:    {_revisions(after)}\nexpected: {_revisions(expected)}\n"
            f"{ENV_PY_OWN_CONNECTION}; the database "
            "env.py's settings point at may now be at the new revision - check it",
            hint=hint or f"{ENV_PY_FIX}; then run the command again",
        )
        self.step = step
        self.database = database
        self.before = before
        self.after = after
        self.expected = expected


class NothingCaptured(CheckFailed):
    """Revisions whose ``upgrade()`` does something, of which no statement was captured to judge: never a clean
    result. Carries ``[(revision, file, line of the first operation)]`` and what held no statement. Exit 1."""

    def __init__(self, revisions: list[tuple[str, str, int | None]], where: str, *, why: str, hint: str):
        names = ", ".join(f"{rev} ({_file_name(path)})" for rev, path, _line in revisions)
        super().__init__(
            f"nothing was captured for revision {names}: its upgrade() has operations, but {where} holds no "
            "statement of it, so nothing was checked - that is not a clean result",
            details="\n".join(f"{rev}: {path}" + (f", line {line}: an operation" if line else "")
                              + ", 0 statements captured" for rev, path, line in revisions) + f"\nwhy: {why}",
            hint=hint,
        )
        self.revisions = revisions
        self.where = where


def _file_name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


class RenameUndecided(DbopsError):
    """A drop + add that may be a rename, and nobody said which: nothing was written. Carries ``candidates``
    (``dbops.migrations.renames.Rename``: kind, table, old, new) and the first one's ``old`` / ``new``. Exit 1."""

    def __init__(self, candidates: list):
        first = candidates[0]
        what = "column" if first.kind == "column" else "table"
        others = [f"{c.before} -> {c.after}" for c in candidates[1:]]
        super().__init__(
            f"{first.before} is gone and {first.after} is new: is it a rename ({first.question}) or a drop "
            f"+ add? dbops does not guess (a drop + add loses the {what}'s data); answer it by running `inv sync` "
            f"interactively, or in the model with info={{\"renamed_from\": \"{first.old}\"}}; no revision was written",
            details="\n".join([f"{what} {first.before} -> {first.after}: "
                               + ("the same kind of data" if first.kind == "column" else "mostly the same columns")
                               + ", so either may be meant", *(f"also undecided: {o}" for o in others)]),
            hint=f"answer it either way: run `inv sync` interactively (it asks), or declare it in the model, "
                 f"{first.declaration()}, and run `inv sync --auto` again (a drop + add instead: make the two "
                 f"changes in two runs)",
        )
        self.candidates = list(candidates)
        self.kind = first.kind
        self.table = first.table
        self.old = first.old
        self.new = first.new


class GeneratedRevisionRejected(MigrationError):
    """A revision dbops generated failed its proof on a throwaway database: moved aside, not applied. Exit 1."""

    def __init__(self, revision: str, moved_to: str, failure: str, *, details: str | None = None):
        super().__init__(
            f"the revision dbops just generated ({revision}) does not apply on a throwaway database (upgrade, "
            f"downgrade, upgrade): {failure}. This is a generation problem in dbops/Alembic's autogenerate, not "
            "in your code",
            details=(details + "\n" if details else "") + f"the file was moved aside to {moved_to}; nothing is "
            "left in the versions folder and the revision was not applied to the local database",
            hint=f"write the migration by hand (start from {moved_to}: fix it and put it back in the versions "
                 "folder, then run `inv sync`), and report the model change that produced it",
        )
        self.revision = revision
        self.moved_to = moved_to
        self.failure = failure


class HeadsUnresolved(MultipleHeads):
    """The history has several heads and ``sync`` was not asked to join them. Carries ``heads``. Exit 1."""

    def __init__(self, heads: list[str], *, why: str = "", hint: str | None = None):
        DbopsError.__init__(  # MultipleHeads' own hint names alembic merge; this one names sync's two answers
            self,
            f"the migration history has {len(heads)} heads: {', '.join(heads)}" + (f" ({why})" if why else ""),
            hint=hint or "join them: `inv sync --merge-heads` writes a merge revision; `inv sync --reparent` moves "
                 "the revisions only this branch has onto the other head",
        )
        self.heads = list(heads)
