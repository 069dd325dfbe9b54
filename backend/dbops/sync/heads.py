"""Two heads in the history (two branches each added a revision): join them, when asked.

:func:`join_heads` offers the two ways (interactive), or does the one asked
for (``--merge-heads`` / ``--reparent``); under ``--auto`` without either it
stops with :class:`~dbops.errors.HeadsUnresolved`, naming both commands.

- merge: ``alembic merge`` writes a revision whose parents are both heads.
- re-parent: the revisions that exist only here (their files differ from, or
  are missing in, the main branch: ``origin/main``, else ``main``, or
  ``--main-branch``) are moved onto the other head by rewriting the
  ``down_revision`` of the first of them, in the local file only.  When the
  local database has them applied, they are downgraded first (to where the
  branches forked), so the loop then applies the other head's revisions and
  then these again, in the new order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Connection

from .. import git
from ..errors import HeadsUnresolved, MigrationError, UsageError
from ..migrations import Project
from ..ui import SILENT, UI

#: the branches tried, in order, when no --main-branch is given
MAIN_BRANCHES = ("origin/main", "main")
_DOWN = re.compile(r"""^(down_revision\b[^=\n]*=\s*)(['"])(\w+)\2""", re.MULTILINE)
_REVISES = re.compile(r"^(Revises:[ \t]*)(\w+)[ \t]*$", re.MULTILINE)


@dataclass
class Joined:
    """How the heads were joined: ``merge`` (the merge revision) or ``reparent`` (which files now follow which
    head)."""

    how: str
    heads: tuple[str, ...]
    revision: str | None = None
    path: Path | None = None
    reparented: list[Path] = field(default_factory=list)
    onto: str | None = None
    downgraded_to: str | None = None

    def to_dict(self) -> dict:
        return {"how": self.how, "heads": list(self.heads), "revision": self.revision,
                "path": str(self.path) if self.path else None, "reparented": [str(p) for p in self.reparented],
                "onto": self.onto, "downgraded_to": self.downgraded_to}


def join_heads(project: Project, conn: Connection, *, auto: bool, merge: bool = False, reparent: bool = False,
               main_branch: str | None = None, ui: UI = SILENT) -> Joined:
    """Join the heads as asked (``merge`` / ``reparent``), or ask; HeadsUnresolved when nobody chose."""
    heads = project.heads()
    if merge and reparent:
        raise UsageError("--merge-heads and --reparent both given: they are two answers to one question",
                         hint="pass one of them: `inv sync --merge-heads` or `inv sync --reparent`")
    choice = "merge" if merge else "reparent" if reparent else None
    if choice is None and not auto:
        ui.warn(f"the migration history has {len(heads)} heads: {', '.join(heads)}")
        answer = ui.ask("join them: write a merge revision (merge), move the revisions only this branch has "
                        "onto the other head (reparent), or stop (stop)?", default="stop").strip().lower()
        choice = {"m": "merge", "merge": "merge", "r": "reparent", "reparent": "reparent"}.get(answer)
    if choice is None:
        raise HeadsUnresolved(heads, why="sync --auto joins them only when asked" if auto else "not joined")
    if choice == "merge":
        script = project.merge(heads, "merge heads " + " and ".join(heads))
        ui.ok(f"wrote merge revision {script.revision} ({script.path}) joining {', '.join(heads)}")
        return Joined("merge", heads, revision=script.revision, path=Path(script.path))
    return _reparent(project, conn, heads, main_branch=main_branch, ui=ui, auto=auto)


def _ancestors(project: Project, rev: str) -> set[str]:
    return {s.revision for s in project.script.iterate_revisions(rev, "base")}


def _main_commit(repo: Path, main_branch: str | None) -> tuple[str, str]:
    tried = [main_branch] if main_branch else list(MAIN_BRANCHES)
    for ref in tried:
        try:
            return ref, git.resolve(repo, ref)
        except UsageError:
            continue
    raise UsageError(
        f"no main branch to compare with: {', '.join(tried)} not found in {repo}",
        details="--reparent moves the revisions that are not on the main branch's history; it reads that branch "
        "to know which ones those are",
        hint="name it: `inv sync --reparent --main-branch BRANCH`, or write a merge revision: `inv sync --merge-heads`",
    )


def _reparent(project: Project, conn: Connection, heads: tuple[str, ...], *, main_branch: str | None, ui: UI,
              auto: bool) -> Joined:
    if len(heads) != 2:
        raise HeadsUnresolved(list(heads), why="re-parenting joins two heads, not more",
                              hint="write a merge revision: `inv sync --merge-heads`")
    try:
        repo = git.toplevel(Path(project.script.dir))
    except UsageError as exc:  # no history: nothing tells which revisions are only here
        raise exc.with_context(hint="--reparent reads the git history; without it, write a merge revision: "
                               "`inv sync --merge-heads`") from None
    ref, commit = _main_commit(repo, main_branch)
    folders = sorted({Path(s.path).resolve().parent for s in project.script.walk_revisions()})
    local_files = git.changed_since(repo, commit, folders)
    own = {h: _ancestors(project, h) - _ancestors(project, other) for h, other in (heads, heads[::-1])}

    def is_local(head: str) -> bool:
        return all(Path(project.script.get_revision(r).path).resolve() in local_files for r in own[head])

    local = [h for h in heads if is_local(h)]
    if len(local) != 1:
        why = (f"the revisions of both heads are on {ref}'s history" if not local
               else f"the revisions of both heads exist only here (neither is on {ref})")
        raise HeadsUnresolved(list(heads), why=f"cannot tell which to re-parent: {why}",
                              hint="write a merge revision instead: `inv sync --merge-heads` (or name the main "
                              "branch: `inv sync --reparent --main-branch BRANCH`)")
    mine = local[0]
    onto = heads[1] if mine == heads[0] else heads[0]
    roots = [r for r in own[mine] if not set(_parents(project, r)) & own[mine]]
    if len(roots) != 1 or len(_parents(project, roots[0])) != 1:
        raise HeadsUnresolved(list(heads), why="this branch's revisions do not start from one parent",
                              hint="write a merge revision instead: `inv sync --merge-heads`")
    root = project.script.get_revision(roots[0])
    fork = _parents(project, root.revision)[0]
    path = Path(root.path)
    text = path.read_text(encoding="utf-8")
    found = _DOWN.search(text)
    if found is None or found.group(3) != fork:
        raise MigrationError(f"{path}: no `down_revision = '{fork}'` line to rewrite (nothing was changed)",
                             hint="set its down_revision by hand, or write a merge revision: "
                             "`inv sync --merge-heads`")
    applied = set(project.current(conn))
    downgraded = None
    if applied & own[mine]:
        if not auto and not ui.confirm(
                f"the local database has this branch's revisions applied ({', '.join(sorted(applied & own[mine]))}): "
                f"downgrade them to {fork} (their data goes), move them onto {onto}, then upgrade along the new "
                "chain?", default=True):
            raise HeadsUnresolved(list(heads), why="re-parenting declined: nothing was changed")
        project.downgrade(conn, fork)
        conn.commit()
        downgraded = fork
        ui.ok(f"downgraded the local database to {fork}")
    new = text[:found.start()] + f"{found.group(1)}{found.group(2)}{onto}{found.group(2)}" + text[found.end():]
    new = _REVISES.sub(lambda m: f"{m.group(1)}{onto}" if m.group(2) == fork else m.group(0), new, count=1)
    path.write_text(new, encoding="utf-8")
    project.__dict__.pop("script", None)  # the file changed: read the scripts again
    ui.ok(f"re-parented {root.revision} ({path.name}) from {fork} onto {onto}: {len(own[mine])} revision(s) only "
          f"here (not on {ref}) now follow the other head")
    return Joined("reparent", heads, reparented=[path], onto=onto, downgraded_to=downgraded)


def _parents(project: Project, rev: str) -> tuple[str, ...]:
    down = project.script.get_revision(rev).down_revision
    if down is None:
        return ()
    return (down,) if isinstance(down, str) else tuple(down)
