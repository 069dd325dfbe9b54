"""The local loop, ``inv sync`` (the seed guide's sync_db.py).

Connect, show the state, apply what is pending, generate a revision for the
model changes, lint it, apply it and prove it: autogenerate finds nothing
left, its downgrade restores the schema exactly (in place, compared through
:mod:`dbops.postgres.schema_snapshot`), and ``inv test-rollback --last 1`` passes on
a throwaway database.  Interactive unless ``auto``: it offers a backup, asks
for the message and confirms before applying, all through the UI it is
handed (silent by default: every default taken).

Three things are asked, never guessed (see the README's local loop):

- a drop + add that may be a rename (:mod:`dbops.migrations.renames`): the
  model's ``info={"renamed_from": ...}`` answers it, else the user, else the
  run stops (RenameUndecided) before anything is written;
- a generated revision is proven on a throwaway database (``test-rollback
  --last 1``: upgrade, downgrade, upgrade, models match) before it is applied;
  one that fails there is moved to ``.dbops/rejected/`` (GeneratedRevisionRejected);
- two heads are joined only when asked (:mod:`.heads`: ``--merge-heads`` /
  ``--reparent``, or the question).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL, Connection

from .. import dryrun, roundtrip
from ..errors import (
    Aborted,
    CheckFailed,
    DbopsError,
    ExtensionUnavailable,
    GeneratedRevisionRejected,
    MigrationError,
    RoundTripFailed,
)
from ..migrations import Project, describe_diff, message_for, renames
from ..postgres import schema_snapshot
from ..postgres.extensions import missing_extension
from ..redact import reason
from ..servers import PostgresServer
from ..settings import Settings
from ..ui import SILENT, UI
from .heads import Joined, join_heads
from .status import connect


@dataclass
class SyncResult:
    applied: list[str] = field(default_factory=list)
    generated: Path | None = None
    revision: str | None = None
    message: str | None = None
    backup: Path | None = None
    in_sync: bool = False
    #: the renames written (declared in the model or answered yes)
    renames: list[renames.Rename] = field(default_factory=list)
    #: how two heads were joined (None: there was one)
    joined: Joined | None = None


def sync(
    settings: Settings,
    *,
    auto: bool = False,
    message: str | None = None,
    server: PostgresServer | None = None,
    merge_heads: bool = False,
    reparent: bool = False,
    main_branch: str | None = None,
    ui: UI = SILENT,
) -> SyncResult:
    """The seed's sync_db.py: connect, show state, apply pending, generate, apply, verify.

    Interactive unless ``auto``: offers a backup, asks for the message and
    confirms before applying (``ui.confirm`` / ``ui.ask``).  Never writes an
    empty migration, never a drop + add it was not told is one, never leaves
    a revision that failed its proof in the versions folder.  Two heads:
    ``merge_heads`` / ``reparent`` (``main_branch``: what is only local is
    judged against it), else asked (interactive) or HeadsUnresolved.
    """
    project = Project(settings.alembic_ini)
    result = SyncResult()
    with connect(settings, server) as (server, conn):
        ui.heading(f"database: {server.describe()}")
        heads = project.heads()
        if len(heads) > 1:
            result.joined = join_heads(project, conn, auto=auto, merge=merge_heads, reparent=reparent,
                                       main_branch=main_branch, ui=ui)
            heads = project.heads()
        state = project.state(conn, with_diffs=False)
        ui.say(f"current: {', '.join(state.current) or '(empty)'}   head: {', '.join(heads) or '(none)'}")

        if state.pending:
            ui.say(f"applying {len(state.pending)} pending migration(s):")
            for rev in state.pending:
                ui.say(f"  {rev.revision}  {rev.doc}")
            _apply(project, conn)
            result.applied = [r.revision for r in state.pending]

        diffs = project.diffs(conn)
        if conn.in_transaction():
            conn.rollback()
        if not diffs:
            ui.ok(f"in sync: the database is at head ({', '.join(project.heads()) or 'empty'}) and matches the models")
            result.in_sync = True
            return result

        ui.say(f"models differ from the database ({len(diffs)}):")
        for d in diffs:
            ui.say(f"  - {describe_diff(d)}")
        result.renames = renames.decide(renames.candidates(diffs), auto=auto, ui=ui)  # before anything is written
        for r in result.renames:
            ui.ok(f"{r.words} ({'declared in the model' if r.declared else 'answered'}): alter, the data stays")
        rest = renames.remaining(diffs, result.renames)
        proposed = message or ", ".join([r.words for r in result.renames] + ([message_for(rest)] if rest else []))
        if not auto:
            if ui.confirm("back up the local database to backups/ first?", default=True):
                result.backup = local_backup(settings, server.url())
                ui.ok(f"backup written: {result.backup}")
            proposed = ui.ask("migration message", default=proposed)

        before = schema_snapshot.snapshot(conn)
        if conn.in_transaction():
            conn.rollback()
        script = project.autogenerate(conn, proposed, rewriters=[renames.RenameRewriter(result.renames)]
                                      if result.renames else ())
        if conn.in_transaction():
            conn.rollback()
        if script is None:  # pragma: no cover - diffs said otherwise
            raise MigrationError("autogenerate found differences but wrote no migration")
        path = Path(script.path)
        result.generated, result.revision, result.message = path, script.revision, proposed
        ui.ok(f"generated {path.relative_to(settings.root) if path.is_relative_to(settings.root) else path}")
        ui.say(_operations(path))
        dryrun.lint_revision_file(path, settings.alembic_ini, ui=ui)
        _prove(settings, server, path, script.revision, ui)

        if not auto and not ui.confirm("apply it to the local database now?", default=True):
            raise Aborted(
                f"the migration was written to {path} but not applied",
                hint="review it, then run `inv sync` again (or delete the file to discard it)",
            )
        _apply(project, conn)
        ui.ok(f"applied {script.revision}")

        left = project.diffs(conn)
        if conn.in_transaction():
            conn.rollback()
        if left:
            raise CheckFailed(
                f"revision {script.revision} applied, but autogenerate still finds differences",
                details="\n".join(describe_diff(d) for d in left),
                hint="autogenerate cannot express these (see the Alembic docs on what it detects); edit the "
                "revision by hand, then run `inv sync --check-only`",
            )
        _round_trip(project, conn, script.revision, before)
        ui.ok(f"verified: at head, models match, {script.revision} round-trips (downgrade + upgrade)")
    result.in_sync = True
    return result


def _apply(project: Project, conn: Connection) -> None:
    """Upgrade to head and commit; a revision whose upgrade() raises becomes a MigrationError naming it.

    The failed statement's transaction is rolled back and the revision read
    back, so the message says where the database really is.  An exception
    raised outside every revision file is not the user's: it goes on as it is.
    """
    try:
        project.upgrade(conn, "head")
        conn.commit()
    except DbopsError:
        raise
    except Exception as exc:
        rev = _failing_revision(project, exc)
        if rev is None:
            raise
        try:
            conn.rollback()
            now = ", ".join(project.current(conn)) or "(empty: no revision applied)"
            if conn.in_transaction():
                conn.rollback()
        except Exception as read_exc:
            now = f"unknown (reading it back failed: {type(read_exc).__name__})"
        missing = missing_extension(exc)
        if missing is not None:  # the local server lacks it: a limit of that server, not the revision's fault
            raise ExtensionUnavailable(
                missing.name, library=missing.library, server="the local database's server",
                needed_by=f"revision {rev.revision}",
                details=f"the database is at revision {now} (read back after the failure)",
                hint="run the local database on a server that has it: the Docker provider (the postgres image "
                "carries contrib), or a DATABASE_URL whose server has the extension installed",
            ) from None
        orig = getattr(exc, "orig", None) or exc
        code = getattr(orig, "pgcode", None)
        raise MigrationError(
            f"revision {rev.revision} ({rev.path}) failed: {type(orig).__name__}"
            + (f" (SQLSTATE {code})" if code else "") + f": {reason(exc)}",
            details=f"its transaction was rolled back (with every revision this run applied in it): the database is "
            f"at revision {now} (read back after the failure)",
            hint=f"fix upgrade() in {rev.path}, then run `inv sync` again",
        ) from None


def _failing_revision(project: Project, exc: BaseException):
    """The revision whose file is the innermost one in the exception's traceback, or None."""
    by_path = {str(Path(r.path).resolve()): r for r in project.script.walk_revisions()}
    tb, found = exc.__traceback__, None
    while tb is not None:
        rev = by_path.get(str(Path(tb.tb_frame.f_code.co_filename).resolve()))
        if rev is not None:
            found = rev
        tb = tb.tb_next
    return found


def local_backup(settings: Settings, url: URL) -> Path:
    """Back up the local database into backups/ (the seed's "offer a backup") through the backup layer.

    Same format and manifest as every other backup, so ``inv backups`` lists
    it and ``inv restore --env local --backup KEY`` brings it back.
    """
    from .. import backup  # start-up: inv status and inv sync load the backup step only when a backup is taken

    local = settings.with_(env="local", backup_url=str(settings.backups_dir))
    result = backup.create_backup(local, url)
    return settings.backups_dir / result.key


def _round_trip(project: Project, conn: Connection, revision: str, before: schema_snapshot.Snapshot) -> None:
    """Downgrade the new revision, check the schema is as before, upgrade again, check it is as after."""
    after = schema_snapshot.snapshot(conn)
    down_rev = project.revision(revision).down_revision
    project.downgrade(conn, "base" if down_rev is None else down_rev if isinstance(down_rev, str) else "-1")
    conn.commit()
    _require_same(before, schema_snapshot.snapshot(conn), ("before upgrade", "after downgrade"),
                  f"revision {revision}: the downgrade does not restore the schema")
    project.upgrade(conn, "head")
    conn.commit()
    _require_same(after, schema_snapshot.snapshot(conn), ("after upgrade", "after re-upgrade"),
                  f"revision {revision}: upgrading again after the downgrade gives a different schema")


def _require_same(
    a: schema_snapshot.Snapshot, b: schema_snapshot.Snapshot, labels: tuple[str, str], message: str
) -> None:
    differences = schema_snapshot.diff(a, b, before=labels[0], after=labels[1])
    if differences:
        raise CheckFailed(
            message,
            details="\n".join(differences),
            hint="fix downgrade() in the new revision file, then run `alembic upgrade head` and "
            "`inv sync --check-only`",
        )


def _prove(settings: Settings, server: PostgresServer, path: Path, revision: str, ui: UI) -> None:
    """``inv test-rollback --last 1`` for the new revision on a throwaway database (upgrade, downgrade, upgrade,
    models match), before it touches the local one; its report is not shown.

    A revision that fails there is moved to ``.dbops/rejected/`` and the run
    stops with GeneratedRevisionRejected: dbops wrote it, so it is a generation
    problem, not the user's code.  When the proof cannot run at all (the
    throwaway server lacks an extension, ...), the file is moved aside too and
    that error goes on, saying where the file is.  Uses the tool's own server
    when it has one (a new database on it), else a private embedded server.
    """
    try:
        report = roundtrip.run(settings, last=1, server_url=server.url() if server.owned else None,
                               server_flag=None)
    except RoundTripFailed as exc:
        moved = _move_aside(settings, path)
        own = exc.report.revision(revision)
        problems = own.problems if own is not None else []
        failure = problems[0] if problems else exc.message
        raise GeneratedRevisionRejected(revision, str(moved), failure,
                                        details="\n".join([*problems[1:], exc.details or ""]).strip()) from None
    except MigrationError as exc:  # the file does not load (a syntax error autogenerate wrote, ...)
        moved = _move_aside(settings, path)
        raise GeneratedRevisionRejected(revision, str(moved), exc.message, details=exc.details) from None
    except DbopsError as exc:
        moved = _move_aside(settings, path)
        said = f"the generated revision was moved aside to {moved} (not applied to the local database)"
        raise exc.with_context(details=f"{exc.details}\n{said}" if exc.details else said) from None
    except Exception as exc:
        moved = _move_aside(settings, path)
        raise GeneratedRevisionRejected(revision, str(moved), f"{type(exc).__name__}: {reason(exc)}") from None
    ui.ok(f"test-rollback --last 1 on a throwaway database: {len(report.checks)} checks passed (before the local "
          "database is touched)")


def _move_aside(settings: Settings, path: Path) -> Path:
    """``.dbops/rejected/<file>`` (a number added when that name is taken); the versions folder keeps nothing."""
    folder = settings.state_dir / "rejected"
    folder.mkdir(parents=True, exist_ok=True)
    dest, n = folder / path.name, 1
    while dest.exists():
        dest, n = folder / f"{path.stem}.{n}{path.suffix}", n + 1
    path.replace(dest)
    cached = path.parent / "__pycache__"
    for stale in cached.glob(f"{path.stem}.*.pyc") if cached.is_dir() else ():
        stale.unlink(missing_ok=True)
    return dest


def _operations(path: Path) -> str:
    """The upgrade() body of a generated revision, for review."""
    text = path.read_text()
    start = text.find("def upgrade()")
    end = text.find("def downgrade()")
    body = text[start:end].rstrip() if start != -1 else text
    return "\n".join("    " + line for line in body.splitlines())
