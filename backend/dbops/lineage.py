"""The revision lineage in the database (``dbops.revision_lineage``), and where a schema stands against code.

``inv deploy`` records, just before its upgrade, every revision of the
project it deploys with its parents (``down_revision``).  Code that does not
know a newer revision, the old release of the app or an older checkout's
``inv monitor``, follows this record to tell a database **ahead** of its head
(healthy: the expand/contract contract) from one on a line it cannot place.
A revision's parents are a fact about its file, which the deploy refuses to
see edited (:mod:`.deploy.checksums`), so rows are only ever added.

:func:`classify` is the rule, which an app's health endpoint applies too
(:mod:`dbops.integrations`' router and blueprint call :func:`state_for`; the
example app mounts the router): ``at head``, ``ahead``
(every code head is an ancestor of a database revision), ``behind`` (every
database revision is in the code's history, a head is missing) or ``unknown``.
``at head`` and ``ahead`` are healthy (200), ``behind`` and ``unknown`` are not (503).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from alembic.util import to_tuple
from sqlalchemy.engine import Connection

from .migrations import Project
from .postgres import bookkeeping
from .redact import reason

#: the table, in the toolkit's own schema (:mod:`dbops.postgres.bookkeeping`)
TABLE = bookkeeping.LINEAGE
HEALTHY = ("at head", "ahead")


@dataclass(frozen=True)
class SchemaState:
    state: str  # "at head" | "ahead" | "behind" | "unknown"
    detail: str

    @property
    def healthy(self) -> bool:
        return self.state in HEALTHY


def script_parents(script: ScriptDirectory) -> dict[str, tuple[str, ...]]:
    """revision → parents (``down_revision``) for every revision of a script directory."""
    return {s.revision: to_tuple(s.down_revision, default=()) for s in script.walk_revisions()}


def project_parents(project: Project) -> dict[str, tuple[str, ...]]:
    """revision → parents for every revision of ``project``."""
    return script_parents(project.script)


def record(conn: Connection, project: Project) -> int:
    """Add the project's revisions (and their parents) not recorded yet; commits; returns how many were added."""
    if conn.in_transaction():
        conn.commit()
    added = 0
    with conn.begin():
        bookkeeping.create(conn, TABLE)
        for rev, downs in project_parents(project).items():
            added += conn.execute(
                sa.text(f"INSERT INTO {TABLE} (revision, down_revisions) VALUES (:r, :d) "
                        "ON CONFLICT (revision) DO NOTHING"),
                {"r": rev, "d": list(downs)},
            ).rowcount
    return added


def recorded(conn: Connection) -> tuple[dict[str, tuple[str, ...]], str | None]:
    """(revision → parents as recorded, why they could not be read); empty when no deploy recorded any."""
    try:
        if not bookkeeping.exists(conn, TABLE):
            return {}, None
        rows = conn.execute(sa.text(f"SELECT revision, down_revisions FROM {TABLE}")).all()
    except sa.exc.DBAPIError as exc:  # a role that may not read the dbops schema
        return {}, _unreadable(exc, conn)
    return {rev: tuple(downs or ()) for rev, downs in rows}, None


def _unreadable(exc: sa.exc.DBAPIError, conn: Connection) -> str:
    """Why the lineage could not be read, and the grants (for this connection's role) that fix it."""
    first = reason(exc)
    user = conn.engine.url.username
    role = conn.dialect.identifier_preparer.quote(user) if user else "<the app's role>"
    return (f"{TABLE} could not be read ({first}); as its owner run: "
            f"GRANT USAGE ON SCHEMA {bookkeeping.SCHEMA} TO {role}; GRANT SELECT ON {TABLE} TO {role};")


def _closure(start: Iterable[str], parents: Mapping[str, Sequence[str]]) -> set[str]:
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


def state(conn: Connection, project: Project, current: Sequence[str],
          heads: Sequence[str] | None = None) -> SchemaState:
    """Where a database at ``current`` stands against ``heads`` (default: ``project``'s)."""
    return state_for(conn, list(project.heads() if heads is None else heads), current, project_parents(project))


def state_for(conn: Connection, heads: Sequence[str], current: Sequence[str],
              code_parents: Mapping[str, Sequence[str]]) -> SchemaState:
    """:func:`classify` through the code's graph and, for a revision it lacks, the recorded lineage."""
    parents, problem = dict(code_parents), None
    if any(c not in parents for c in current):
        found_rows, problem = recorded(conn)
        for rev, downs in found_rows.items():
            parents.setdefault(rev, downs)
    found = classify(heads, current, parents)
    return SchemaState(found.state, f"{found.detail}; {problem}") if problem and not found.healthy else found
