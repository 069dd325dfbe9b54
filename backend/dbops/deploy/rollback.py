"""``inv rollback``: take a fresh backup, then downgrade to the revision before the last deploy.

Refuses when a revision on the way down cannot be downgraded (its
``downgrade()`` is empty/``pass`` or raises ``NotImplementedError``): then
the way back is restoring the backup taken before the deploy.  A downgrade
restores the schema only, never data (the seed's FAQ) - hence the backup.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Connection

from ..errors import IrreversibleMigration, UsageError
from ..migrations import Project


@dataclass
class Plan:
    current: tuple[str, ...]
    target: str
    revisions: list[str]  # to downgrade, newest first
    source: str  # where the target came from
    backup_key: str | None = None  # the backup taken before that deploy


def irreversible_reason(project: Project, revision: str) -> str | None:
    """Why ``revision``'s downgrade cannot undo it, or None when it looks reversible."""
    try:
        from ..roundtrip import irreversible_reason as shared  # issue 3's detector, when present
    except ImportError:
        shared = None
    if shared is not None:
        try:
            return shared(project, revision)
        except TypeError:
            pass
    script = project.revision(revision)
    fn = getattr(script.module, "downgrade", None)
    if fn is None:
        return "it has no downgrade() function"
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return None
    func = tree.body[0]
    body = [n for n in func.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    if not body or all(isinstance(n, ast.Pass) for n in body):
        return "its downgrade() is empty (pass)"
    for node in ast.walk(func):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id == "NotImplementedError":
                return "its downgrade() raises NotImplementedError"
    return None


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
