"""Where the database's schema stands against this code: ``at head``, ``ahead``, ``behind`` or ``unknown``.

The health contract for expand/contract deploys (docs/production.md, "Deploy
orders and the health contract"): an old app keeps serving while a newer,
backward-compatible schema ships; a new app waits until its schema is there.

- **at head**: the database's revisions are this code's heads.
- **ahead**: every head of this code is an ancestor of a database revision.
  This code knows only its own history, so a newer revision it has never seen
  is followed through the lineage ``inv deploy`` keeps in the database
  (``dbops.revision_lineage``: each revision and its parents, written before
  the upgrade applies them).  The lineage is a fact about the files (a
  revision's parents never change; the deploy refuses edited migrations), so
  following it is sound.
- **behind**: every database revision is in this code's history (or there is
  none) and a head is missing: a migration this code needs has not run.
- **unknown**: the database is at a revision this code does not know, and no
  recorded lineage leads from it to this code's heads (upgraded outside
  ``inv deploy``, or from another branch).

``at head`` and ``ahead`` are healthy (200); ``behind`` and ``unknown`` are not (503).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

LINEAGE_TABLE = "dbops.revision_lineage"
HEALTHY = ("at head", "ahead")


@dataclass(frozen=True)
class SchemaState:
    state: str  # "at head" | "ahead" | "behind" | "unknown"
    detail: str

    @property
    def healthy(self) -> bool:
        return self.state in HEALTHY


def _closure(start: Iterable[str], parents: Mapping[str, Sequence[str]]) -> set[str]:
    """``start`` and every ancestor reachable through ``parents``."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        rev = todo.pop()
        if rev not in seen:
            seen.add(rev)
            todo.extend(parents.get(rev, ()))
    return seen


def _names(revs: Iterable[str]) -> str:
    return ", ".join(sorted(revs)) or "(none)"


def classify(heads: Sequence[str], current: Sequence[str], parents: Mapping[str, Sequence[str]]) -> SchemaState:
    """The state of a database at ``current`` for code whose heads are ``heads``; ``parents``: revision → parents."""
    if sorted(current) == sorted(heads):
        return SchemaState("at head", f"the database is at this code's head {_names(heads)}")
    reached = _closure(current, parents)
    if set(heads) <= reached:
        return SchemaState("ahead", f"the database is at {_names(current)}, a descendant of this code's head "
                                    f"{_names(heads)} (a newer, compatible schema)")
    if set(current) <= _closure(heads, parents):
        return SchemaState("behind", f"the database is at {_names(current)}; this code needs {_names(heads)} "
                                     f"(missing: {_names(set(heads) - reached)}): run the upgrade")
    strangers = [c for c in current if c not in parents]
    why = (f"revision {_names(strangers)} is unknown to this code and no lineage recorded by inv deploy links it"
           if strangers else "its recorded lineage does not lead there")
    return SchemaState("unknown", f"the database is at {_names(current)}, not at or ahead of this code's head "
                                  f"{_names(heads)}: {why}")


def recorded_lineage(conn: Connection) -> tuple[dict[str, tuple[str, ...]], str | None]:
    """(revision → parents as ``inv deploy`` recorded them, why they could not be read); empty when none were."""
    try:
        if conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": LINEAGE_TABLE}).scalar() is None:
            return {}, None
        rows = conn.execute(sa.text(f"SELECT revision, down_revisions FROM {LINEAGE_TABLE}")).all()
    except sa.exc.DBAPIError as exc:  # e.g. this app's role may not read the dbops schema
        return {}, _unreadable(exc, conn)
    return {rev: tuple(downs or ()) for rev, downs in rows}, None


def _unreadable(exc: sa.exc.DBAPIError, conn: Connection) -> str:
    """Why the lineage could not be read, and the grants (for this connection's role) that fix it."""
    first = (str(exc.orig).strip().splitlines() or [""])[0]
    user = conn.engine.url.username
    role = conn.dialect.identifier_preparer.quote(user) if user else "<the app's role>"
    return (f"{LINEAGE_TABLE} could not be read ({first}); as its owner run: "
            f"GRANT USAGE ON SCHEMA dbops TO {role}; GRANT SELECT ON {LINEAGE_TABLE} TO {role};")


def state(conn: Connection, heads: Sequence[str], current: Sequence[str],
          code_parents: Mapping[str, Sequence[str]]) -> SchemaState:
    """:func:`classify` with this code's graph, and the recorded lineage when the database is at a revision it lacks."""
    parents, problem = dict(code_parents), None
    if any(c not in parents for c in current):
        recorded, problem = recorded_lineage(conn)
        for rev, downs in recorded.items():
            parents.setdefault(rev, downs)
    found = classify(heads, current, parents)
    return SchemaState(found.state, f"{found.detail}; {problem}") if problem and not found.healthy else found
