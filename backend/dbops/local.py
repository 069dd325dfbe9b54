"""The local loop: ``inv sync`` (the seed guide's sync_db.py) and ``inv status``.

Core functions take the settings first and return results; ``tasks.py`` only
parses flags and prints.  Every mode works on whichever server the provider
selection gives: embedded, docker or a URL.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from . import console, postgres
from .postgres import catalog as schema
from .errors import Aborted, CheckFailed, MigrationError, MultipleHeads, Refused
from .migrations import Project, State, describe_diff, message_for
from .servers import PostgresServer, UrlServer, server_for
from .redact import mask_url
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Status:
    provider: str
    target: str
    server_version: str
    state: State


@dataclass
class SyncResult:
    applied: list[str] = field(default_factory=list)
    generated: Path | None = None
    revision: str | None = None
    message: str | None = None
    backup: Path | None = None
    in_sync: bool = False


def project_for(settings: Settings) -> Project:
    return Project(settings.alembic_ini)


@contextmanager
def connect(settings: Settings, server: PostgresServer | None = None) -> Iterator[tuple[PostgresServer, Connection]]:
    """Start (if needed) the selected server and yield it with one connection."""
    server = server or server_for(settings)
    url = server.start()
    engine = postgres.make_engine(url, connect_timeout=settings.connect_timeout_s)
    try:
        with engine.connect() as conn:
            yield server, conn
    finally:
        engine.dispose()


def status(settings: Settings, server: PostgresServer | None = None) -> Status:
    """Provider, server version, revisions, pending migrations and drift; changes nothing."""
    project = project_for(settings)
    with connect(settings, server) as (server, conn):
        version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        state = project.state(conn)
        if conn.in_transaction():
            conn.rollback()
        return Status(server.name, server.describe(), version, state)


def render_status(st: Status) -> str:
    s = st.state
    lines = [
        f"database   {st.target}",
        f"server     PostgreSQL {st.server_version}",
        f"current    {', '.join(s.current) or '(empty: no migration applied)'}",
        f"heads      {', '.join(s.heads) or '(no revisions)'}",
    ]
    if s.pending:
        lines.append(f"pending    {len(s.pending)}:")
        lines += [f"           {r.revision}  {r.doc}" for r in s.pending]
    else:
        lines.append("pending    none")
    if len(s.heads) > 1:
        lines.append("drift      not checked: the history has several heads")
    elif s.diff_error:
        lines.append(f"drift      could not be computed: {s.diff_error}")
    elif s.diffs:
        lines.append(f"drift      {len(s.diffs)} difference(s) between models and database{' at head' if s.pending else ''}:")
        lines += [f"           {describe_diff(d)}" for d in s.diffs]
    elif s.diffs == []:
        lines.append("drift      none: models match the database" + (" at head" if s.pending else ""))
    return "\n".join(lines)


def check(settings: Settings, server: PostgresServer | None = None) -> Status:
    """``sync --check-only``: raise CheckFailed saying what is pending or drifting; change nothing."""
    st = status(settings, server)
    s = st.state
    if len(s.heads) > 1:
        raise MultipleHeads(list(s.heads))
    problems = []
    if s.pending:
        problems.append(f"{len(s.pending)} pending migration(s): " + ", ".join(r.revision for r in s.pending))
    if s.diff_error:
        problems.append(f"drift could not be computed: {s.diff_error}")
    elif s.diffs:
        problems.append("models differ from the database: " + "; ".join(describe_diff(d) for d in s.diffs))
    if problems:
        raise CheckFailed(
            "the database is not in sync: " + " / ".join(problems),
            details=render_status(st),
            hint="run `inv sync` to generate and apply what is missing",
        )
    return st


def local_backup(settings: Settings, url: URL) -> Path:
    """Back up the local database into backups/ (the seed's "offer a backup") through the backup layer.

    Same format and manifest as every other backup, so ``inv backups`` lists
    it and ``inv restore --env local --backup KEY`` brings it back.
    """
    from . import backup

    local = settings.with_(env="local", backup_url=str(settings.backups_dir))
    result = backup.create_backup(local, url, progress=False)
    return settings.backups_dir / result.key


def _round_trip(project: Project, conn: Connection, revision: str, before: schema.Snapshot) -> None:
    """Downgrade the new revision, check the schema is as before, upgrade again, check it is as after."""
    after = schema.snapshot(conn)
    down_rev = project.revision(revision).down_revision
    project.downgrade(conn, "base" if down_rev is None else down_rev if isinstance(down_rev, str) else "-1")
    conn.commit()
    _require_same(before, schema.snapshot(conn), ("before upgrade", "after downgrade"),
                  f"revision {revision}: the downgrade does not restore the schema")
    project.upgrade(conn, "head")
    conn.commit()
    _require_same(after, schema.snapshot(conn), ("after upgrade", "after re-upgrade"),
                  f"revision {revision}: upgrading again after the downgrade gives a different schema")


def _require_same(a: schema.Snapshot, b: schema.Snapshot, labels: tuple[str, str], message: str) -> None:
    differences = schema.diff(a, b, before=labels[0], after=labels[1])
    if differences:
        raise CheckFailed(
            message,
            details="\n".join(differences),
            hint="fix downgrade() in the new revision file, then run `alembic upgrade head` and `inv sync --check-only`",
        )


def _show_lint(path: Path, ini: Path) -> None:
    """Show Squawk's findings for the generated revision, when the lint module is available."""
    from . import dryrun
    from .console import Console

    dryrun.lint_revision_file(path, ini, ui=Console())


def sync(
    settings: Settings,
    *,
    auto: bool = False,
    message: str | None = None,
    server: PostgresServer | None = None,
) -> SyncResult:
    """The seed's sync_db.py: connect, show state, apply pending, generate, apply, verify.

    Interactive unless ``auto``: offers a backup, asks for the message and
    confirms before applying.  Never writes an empty migration.
    """
    project = project_for(settings)
    result = SyncResult()
    with connect(settings, server) as (server, conn):
        console.heading(f"database: {server.describe()}")
        heads = project.heads()
        if len(heads) > 1:
            raise MultipleHeads(list(heads))
        state = project.state(conn, with_diffs=False)
        console.say(f"current: {', '.join(state.current) or '(empty)'}   head: {', '.join(heads) or '(none)'}")

        if state.pending:
            console.say(f"applying {len(state.pending)} pending migration(s):")
            for rev in state.pending:
                console.say(f"  {rev.revision}  {rev.doc}")
            project.upgrade(conn, "head")
            conn.commit()
            result.applied = [r.revision for r in state.pending]

        diffs = project.diffs(conn)
        if conn.in_transaction():
            conn.rollback()
        if not diffs:
            console.ok(f"in sync: the database is at head ({', '.join(project.heads()) or 'empty'}) and matches the models")
            result.in_sync = True
            return result

        console.say(f"models differ from the database ({len(diffs)}):")
        for d in diffs:
            console.say(f"  - {describe_diff(d)}")
        proposed = message or message_for(diffs)
        if not auto:
            if console.confirm("back up the local database to backups/ first?", default=True):
                result.backup = local_backup(settings, server.url())
                console.ok(f"backup written: {result.backup}")
            proposed = console.ask("migration message", default=proposed)

        before = schema.snapshot(conn)
        if conn.in_transaction():
            conn.rollback()
        script = project.autogenerate(conn, proposed)
        if conn.in_transaction():
            conn.rollback()
        if script is None:  # pragma: no cover - diffs said otherwise
            raise MigrationError("autogenerate found differences but wrote no migration")
        path = Path(script.path)
        result.generated, result.revision, result.message = path, script.revision, proposed
        console.ok(f"generated {path.relative_to(settings.root) if path.is_relative_to(settings.root) else path}")
        console.say(_operations(path))
        _show_lint(path, settings.alembic_ini)

        if not auto and not console.confirm("apply it to the local database now?", default=True):
            raise Aborted(
                f"the migration was written to {path} but not applied",
                hint="review it, then run `inv sync` again (or delete the file to discard it)",
            )
        project.upgrade(conn, "head")
        conn.commit()
        console.ok(f"applied {script.revision}")

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
        console.ok(f"verified: at head, models match, {script.revision} round-trips (downgrade + upgrade)")
    _stairway_newest(settings, server)
    result.in_sync = True
    return result


def _stairway_newest(settings: Settings, server: PostgresServer) -> None:
    """``inv test-rollback --last 1`` for the new revision, on a throwaway database.

    The dev database proved the round trip in place; this proves the chain
    builds from an empty database too.  Uses the tool's own server when it
    has one (a new database on it), else a private embedded server.
    """
    from . import roundtrip

    report = roundtrip.run(
        settings, last=1, server_url=server.url() if server.owned else None, progress=False, echo=False
    )
    console.ok(f"test-rollback --last 1 on a throwaway database: {len(report.checks)} checks passed")


def _operations(path: Path) -> str:
    """The upgrade() body of a generated revision, for review."""
    text = path.read_text()
    start = text.find("def upgrade()")
    end = text.find("def downgrade()")
    body = text[start:end].rstrip() if start != -1 else text
    return "\n".join("    " + line for line in body.splitlines())


def force_recreate(settings: Settings, *, server: PostgresServer | None = None, yes: bool = False) -> list[str]:
    """Drop and recreate the local database, then upgrade to head. Refused for non-local targets."""
    server = server or server_for(settings)
    if isinstance(server, UrlServer) and not server.is_localhost:
        raise Refused(
            f"--force-recreate refused: {mask_url(server.url())} is not a local database",
            details="checked: the provider is 'url' and the host is not localhost/127.0.0.1/::1; nothing was dropped",
            hint="it only recreates the tool's own embedded/docker database or a localhost URL; "
            "unset DATABASE_URL (or use --db embedded) to recreate the local one",
        )
    url = server.start()
    if not yes and not console.confirm(f"DROP and recreate database {url.database!r} ({mask_url(url)})?", default=False):
        raise Aborted("nothing was dropped", hint="pass --yes to skip the question")
    postgres.drop_database(url, url.database)
    postgres.create_database(url, url.database)
    console.ok(f"recreated database {url.database}")
    project = project_for(settings)
    engine = postgres.make_engine(url)
    try:
        with engine.connect() as conn:
            pending = project.pending(())
            project.upgrade(conn, "head")
            conn.commit()
    finally:
        engine.dispose()
    console.ok(f"upgraded to head: {len(pending)} migration(s) applied")
    return [r.revision for r in pending]
