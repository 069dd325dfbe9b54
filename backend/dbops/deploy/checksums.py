"""Applied migrations must not change: a sha256 per applied revision file, kept in the database.

The table lives in the toolkit's own ``dbops`` schema
(:mod:`dbops.postgres.bookkeeping`), which autogenerate never proposes to
drop.  Every deploy records the
files it applied (and, once, those applied before dbops tracked them); the
preflight refuses a deploy when an applied file's hash no longer matches.
``inv accept-migration-change`` records the new hash of a deliberately
edited file.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import postgres
from ..errors import MigrationChanged, UsageError
from ..migrations import Project
from ..postgres import bookkeeping, lock
from ..servers import environment_url
from ..settings import Settings

TABLE = bookkeeping.CHECKSUMS


@dataclass
class Verification:
    """What the preflight found: revisions whose hash matches, and applied ones never recorded."""

    checked: list[str]
    unrecorded: list[str]


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def recorded(conn: Connection) -> dict[str, str]:
    """revision -> recorded sha256 (empty when the table does not exist yet)."""
    if not bookkeeping.exists(conn, TABLE):
        return {}
    return dict(conn.execute(sa.text(f"SELECT revision, sha256 FROM {TABLE}")).all())


def applied_revisions(project: Project, current: tuple[str, ...]) -> list[str]:
    """Every revision from base up to ``current`` (what the database has applied)."""
    if not current:
        return []
    return [s.revision for s in project.script.iterate_revisions(current, "base")]


def verify(conn: Connection, project: Project, current: tuple[str, ...], env: str) -> Verification:
    """Raise MigrationChanged for the first applied file whose hash differs; change nothing."""
    known = recorded(conn)
    checked, unrecorded = [], []
    for rev in applied_revisions(project, current):
        script = project.revision(rev)
        actual = file_sha256(script.path)
        if rev not in known:
            unrecorded.append(rev)
            continue
        if known[rev] != actual:
            raise MigrationChanged(rev, _display(project, script.path), known[rev], actual, env)
        checked.append(rev)
    return Verification(checked=checked, unrecorded=unrecorded)


def _display(project: Project, path: str) -> str:
    p = Path(path)
    root = project.ini.parent
    return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)


def _who() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def record(conn: Connection, project: Project, revisions: list[str], *, replace: bool = False) -> None:
    """Store the current file hash of each revision (new rows; ``replace`` overwrites). Commits."""
    if conn.in_transaction():
        conn.commit()
    with conn.begin():
        bookkeeping.create(conn, TABLE)
        for rev in revisions:
            script = project.revision(rev)
            conflict = "DO UPDATE SET sha256 = EXCLUDED.sha256, filename = EXCLUDED.filename, " \
                "recorded_at = now(), recorded_by = EXCLUDED.recorded_by" if replace else "DO NOTHING"
            conn.execute(
                sa.text(
                    f"INSERT INTO {TABLE} (revision, filename, sha256, recorded_by) "
                    f"VALUES (:r, :f, :s, :b) ON CONFLICT (revision) {conflict}"
                ),
                {"r": rev, "f": Path(script.path).name, "s": file_sha256(script.path), "b": _who()},
            )


def accept(conn: Connection, project: Project, revision: str) -> tuple[str | None, str]:
    """Accept the edited file of an applied revision: record its current hash. Returns (old, new)."""
    script = project.revision(revision)
    current = project.current(conn)
    if revision not in applied_revisions(project, current):
        raise UsageError(
            f"revision {revision} is not applied to this database (current: {', '.join(current) or 'empty'})",
            hint="only applied revisions have a recorded checksum; a pending one is checked when it is deployed",
        )
    old = recorded(conn).get(revision)
    record(conn, project, [revision], replace=True)
    return old, file_sha256(script.path)


def accept_migration_change(settings: Settings, revision: str) -> tuple[str | None, str]:
    """``inv accept-migration-change``: under the deploy lock, record the current hash of an applied,
    deliberately edited file.  Returns (old, new)."""
    project = Project(settings.alembic_ini)
    url = environment_url(settings, purpose="deploy to")
    with lock.hold(settings, url, "accept-change"), postgres.connect(
        url, name="dbops accept-change", timeout=settings.connect_timeout_s, hint=settings.connect_hint
    ) as conn:
        return accept(conn, project, revision)
