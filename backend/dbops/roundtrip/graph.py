"""Walking an Alembic revision graph: every edge once, branches and merges included.

The stairway needs an order in which each revision comes after all of its
parents (``down_revision``, several for a merge) and its ``depends_on``
revisions: a topological order of the whole graph, not "the chain".
"""

from __future__ import annotations

from alembic.script import Script, ScriptDirectory
from alembic.util.exc import CommandError

from ..errors import MultipleHeads, UsageError
from ..migrations import Project


def parents(script: Script) -> tuple[str, ...]:
    """Revisions that must be applied before ``script``: its down revisions and dependencies."""
    return tuple(script._all_down_revisions)  # alembic's private API: down revisions + depends_on


def topological(directory: ScriptDirectory) -> list[Script]:
    """All revisions, base first; each after all of its parents (ties: oldest file first, stable)."""
    try:
        revisions = list(directory.walk_revisions("base", "heads"))
    except CommandError as exc:
        raise UsageError(f"cannot read the revision graph: {exc}", hint="fix the revision files it names") from None
    revisions.reverse()  # walk_revisions yields heads first
    by_id = {s.revision: s for s in revisions}
    placed: set[str] = set()
    order: list[Script] = []
    pending = list(revisions)
    while pending:
        rest = []
        for script in pending:
            if all(p in placed or p not in by_id for p in parents(script)):
                order.append(script)
                placed.add(script.revision)
            else:
                rest.append(script)
        if len(rest) == len(pending):  # pragma: no cover - alembic refuses cycles itself
            raise UsageError("the revision graph has a cycle: " + ", ".join(s.revision for s in rest))
        pending = rest
    return order


def descendants_of(order: list[Script], root: str) -> set[str]:
    """``root`` and every revision that has it as an ancestor."""
    found = {root}
    for script in order:
        if any(p in found for p in parents(script)):
            found.add(script.revision)
    return found


def select(
    project: Project, order: list[Script], *, last: int | str | None = None, start: str | None = None
) -> list[Script]:
    """The revisions to test, in order: all; the newest ``last``; or ``start`` and its descendants.

    Whatever is not selected is applied before the stairway without checks;
    both selections leave an ancestor-closed rest, so that is always possible.
    """
    if last is not None and start is not None:
        raise UsageError("--last and --from cannot be combined", hint="use one of them")
    if last is not None:
        try:
            last = int(last)
        except (TypeError, ValueError):
            raise UsageError(f"--last must be a whole number, got {last!r}") from None
        if last < 1:
            raise UsageError(f"--last must be at least 1, got {last}")
        return order[-last:]
    if start is not None:
        root = project.revision(start).revision
        keep = descendants_of(order, root)
        return [s for s in order if s.revision in keep]
    return list(order)


def heads_problem(directory: ScriptDirectory) -> MultipleHeads | None:
    """A MultipleHeads error (message and merge command) when there is more than one head."""
    heads = sorted(directory.get_heads())
    return MultipleHeads(heads) if len(heads) > 1 else None
