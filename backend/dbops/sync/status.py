"""Where the local database stands: ``inv status`` and ``inv sync --check-only``.

:func:`status` reads the provider, the server version, the revisions, the
pending migrations and the drift between models and database, and changes
nothing; :func:`render_status` is its text; :func:`check` turns anything
pending or drifting into a :class:`~dbops.errors.CheckFailed` (CI,
pre-commit).  :func:`connect` is how every sync mode reaches the selected
server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from .. import postgres
from ..errors import CheckFailed, DbopsError, HeadsUnresolved
from ..migrations import Project, State, describe_diff
from ..postgres import clients, server_programs
from ..servers import PostgresServer, server_for
from ..settings import ClientPlaces, Settings


@dataclass
class Status:
    provider: str
    target: str
    server_version: str
    state: State
    #: which client program runs against this server, and why (or why none fits)
    clients: tuple[str, ...] = ()
    #: the server programs of throwaway servers (the default first, then each other major's), contrib or not
    throwaway: tuple[str, ...] = ()


@contextmanager
def connect(settings: Settings, server: PostgresServer | None = None) -> Iterator[tuple[PostgresServer, Connection]]:
    """Start (if needed) the selected server and yield it with one connection."""
    server = server or server_for(settings)
    url = server.start()
    with postgres.connect(url, timeout=settings.connect_timeout_s) as conn:
        yield server, conn


def status(settings: Settings, server: PostgresServer | None = None) -> Status:
    """Provider, server version, revisions, pending migrations and drift; changes nothing."""
    project = Project(settings.alembic_ini)
    with connect(settings, server) as (server, conn):
        version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        url = conn.engine.url
        state = project.state(conn)
        if conn.in_transaction():
            conn.rollback()
        return Status(server.name, server.describe(), version, state,
                      client_lines(url, version, settings.client_places), throwaway_lines(settings.client_places))


def client_lines(url: URL, server_version: str, places: ClientPlaces | None = None) -> tuple[str, ...]:
    """``pg_dump …: why`` for each client program dbops would run against this server (found in ``places`` first)."""
    major = postgres.major_version(server_version)
    lines = []
    for program, extra in (("pg_dump", {}), ("pg_restore", {"archive_major": major}), ("psql", {})):
        try:
            lines.append(clients.choose(program, url=url, server_major=major, places=places, **extra).describe())
        except DbopsError as exc:
            lines.append(f"{program}: none fits: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
    return tuple(lines)


def throwaway_lines(places: ClientPlaces | None = None) -> tuple[str, ...]:
    """The server programs of throwaway servers and whether they carry contrib: the default major's (test-rollback,
    compat, sync), then each other major's (verify-backup and the rehearsal of a backup of that major)."""
    found = server_programs.every_major(places)
    default = server_programs.default_major(places)
    if not found:
        return (f"none found: {clients.install_hint(places=places)}",)
    first = sorted(found, key=lambda p: p.major != default)
    return tuple(p.describe() + (" (test-rollback, compat, sync; " if p.major == default else " (")
                 + f"verify-backup and rehearse of PostgreSQL {p.major} backups)" for p in first)


def render_status(st: Status, *, show_clients: bool = True) -> str:
    """The status text; ``show_clients``: the lines saying which pg_dump / pg_restore / psql run and why, and
    which server programs throwaway servers run."""
    s = st.state
    lines = [
        f"database   {st.target}",
        f"server     PostgreSQL {st.server_version}",
        f"current    {', '.join(s.current) or '(empty: no migration applied)'}",
        f"heads      {', '.join(s.heads) or '(no revisions)'}",
    ]
    if show_clients:
        lines += [f"{'clients' if i == 0 else '':<10} {line}" for i, line in enumerate(st.clients)]
        lines += [f"{'throwaway' if i == 0 else '':<10} {line}" for i, line in enumerate(st.throwaway)]
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
        at_head = " at head" if s.pending else ""
        lines.append(f"drift      {len(s.diffs)} difference(s) between models and database{at_head}:")
        lines += [f"           {describe_diff(d)}" for d in s.diffs]
    elif s.diffs == []:
        lines.append("drift      none: models match the database" + (" at head" if s.pending else ""))
    return "\n".join(lines)


def check(settings: Settings, server: PostgresServer | None = None) -> Status:
    """``sync --check-only``: raise CheckFailed saying what is pending or drifting; change nothing."""
    st = status(settings, server)
    s = st.state
    if len(s.heads) > 1:
        raise HeadsUnresolved(list(s.heads), why="--check-only changes nothing")
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
            details=render_status(st, show_clients=False),
            hint="run `inv sync` to generate and apply what is missing",
        )
    return st
