"""``inv rollback``: take a fresh backup, then downgrade to the revision before the last deploy.

Refuses when a revision on the way down cannot be downgraded (its
``downgrade()`` is empty/``pass`` or raises ``NotImplementedError``): then
the way back is restoring the backup taken before the deploy.  A downgrade
restores the schema only, never data (the seed's FAQ) - hence the backup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Connection

from ..errors import IrreversibleMigration, UsageError
from ..migrations import Project
from ..roundtrip import irreversible


@dataclass
class Plan:
    current: tuple[str, ...]
    target: str
    revisions: list[str]  # to downgrade, newest first
    source: str  # where the target came from
    backup_key: str | None = None  # the backup taken before that deploy


def irreversible_reason(project: Project, revision: str) -> str | None:
    """Why ``revision``'s downgrade cannot undo it, or None (the round-trip tester's detector)."""
    found = irreversible.check(project.revision(revision))
    if found is None:
        return None
    return f"its {found.reason}" + (" (marked irreversible in the file)" if found.marked else "")


def plan(
    conn: Connection, project: Project, env: str, *, to: str | None = None, last: dict | None = None
) -> Plan:
    current = project.current(conn)
    if conn.in_transaction():
        conn.rollback()
    if to is not None:
        target, source = (project.revision(to).revision if to != "base" else "base"), "--to"
    elif last is not None:
        before = list(last["revision_before"])
        target = before[0] if before else "base"
        source = f"deploy #{last['id']} started at {last['started_at']:%Y-%m-%d %H:%M:%S %Z}".rstrip()
    else:
        if not current:
            raise UsageError("the database has no revision applied; there is nothing to roll back")
        down = project.revision(current[0]).down_revision
        if isinstance(down, (tuple, list)):
            raise UsageError(f"{current[0]} is a merge revision; pass --to REV to say where to go back to")
        target, source = (down or "base"), "the parent of the current revision (no deploy history found)"
    revisions = [s.revision for s in project.script.iterate_revisions(current or "base", target)] if current else []
    revisions = [r for r in revisions if r != target]
    return Plan(current, target, revisions, source, (last or {}).get("backup_key"))


def check_reversible(project: Project, p: Plan, env: str) -> None:
    for rev in p.revisions:
        why = irreversible_reason(project, rev)
        if why:
            path = project.revision(rev).path
            raise IrreversibleMigration(rev, str(Path(path).name), why, env, p.backup_key)
