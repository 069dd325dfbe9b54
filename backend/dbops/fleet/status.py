"""``fleet.status``: where every target stands, read within the connection budget, in few queries.

Per database, one connection and at most three statements: which deploy locks are held on the server's
databases, which of the tenants' schemas have a version table, and every one of those version tables in one
``UNION ALL`` (chunks of :data:`UNION_CHUNK`), so 1,000 schemas of one database are a handful of queries on
one connection.  Databases are read by a thread pool; a server's semaphore keeps its open connections within
the fleet's budget.  The last deploy outcome of each target comes from the run manifest (one listing).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import formats, postgres
from ..errors import DatabaseUnreachable, DbopsError
from ..migrations import Project
from ..postgres import lock, quote_ident
from ..redact import reason
from ..settings import Settings
from .manifest import RunManifest
from .targets import Fleet, Target

#: version tables read by one UNION ALL statement
UNION_CHUNK = 500
#: threads reading databases at once (each within its server's budget)
MAX_READERS = 16


@dataclass
class TargetState:
    name: str
    group: str
    database: str
    schema: str | None
    #: the revision(s) in its version table ([] empty); None: could not be read (``error`` says why)
    revision: list[str] | None
    pending: list[str] = field(default_factory=list)
    #: the outcome recorded for it in the run (None: not in the run, or no run)
    last: str | None = None
    #: a deploy holds the database's deploy lock now
    locked: bool = False
    error: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "group": self.group, "database": self.database, "schema": self.schema,
                "revision": self.revision, "pending": self.pending, "last": self.last, "locked": self.locked,
                "error": self.error}


@dataclass
class FleetStatus:
    env: str
    head: str
    targets: list[TargetState]
    #: the run whose outcomes are shown (None: no run yet)
    run: str | None = None
    seconds: float = 0.0
    queries: int = 0

    @property
    def totals(self) -> dict[str, int]:
        """Targets per revision (``(empty)``, ``(unreadable)``)."""
        count = Counter(("(unreadable)" if t.revision is None else ", ".join(t.revision) or "(empty)")
                        for t in self.targets)
        return dict(sorted(count.items()))

    @property
    def behind(self) -> list[TargetState]:
        return [t for t in self.targets if t.pending or t.revision is None]

    def to_dict(self) -> dict:
        return {"env": self.env, "head": self.head, "run": self.run, "totals": self.totals,
                "targets": [t.to_dict() for t in self.targets], "at_head": len(self.targets) - len(self.behind),
                "behind": len(self.behind), "seconds": round(self.seconds, 3), "queries": self.queries}

    def rows(self) -> list[list[str]]:
        return [[t.name, t.group, "?" if t.revision is None else ", ".join(t.revision) or "(empty)",
                 ", ".join(t.pending) or "-", t.last or "-", "held" if t.locked else "-", t.error or ""]
                for t in self.targets]

    HEADERS = ("target", "group", "revision", "pending", "last deploy", "lock", "error")

    def text(self) -> str:
        lines = [f"fleet --env {self.env}: {len(self.targets)} target(s), head {self.head}"
                 + (f", run {self.run}" if self.run else ""),
                 formats.text_table(self.HEADERS, self.rows()), "", "per revision:"]
        lines += [f"  {rev}: {n}" for rev, n in self.totals.items()]
        lines.append(f"{len(self.targets) - len(self.behind)} at head, {len(self.behind)} behind or unreadable")
        return "\n".join(lines)

    def markdown(self) -> str:
        totals = formats.markdown_table(("revision", "targets"), list(self.totals.items()))
        return "\n".join([f"### Fleet `{self.env}`: {len(self.targets)} target(s), head `{self.head}`", "",
                          totals, "", formats.markdown_table(self.HEADERS, self.rows())])


def status(settings: Settings, fleet: Fleet, project: Project, *, manifest: RunManifest | None = None) -> FleetStatus:
    """Every target's revision, pending revisions, last outcome (from ``manifest``) and lock."""
    started = time.monotonic()
    head = project.single_head()
    states, queries = read_states(settings, fleet.targets, fleet.budget)
    pending: dict[tuple[str, ...], list[str]] = {}
    last = manifest_outcomes(manifest) if manifest is not None else {}
    for s in states:
        if s.revision is not None:
            key = tuple(sorted(s.revision))
            if key not in pending:
                try:
                    pending[key] = [p.revision for p in project.pending(key)]
                except DbopsError as exc:
                    pending[key] = []
                    s.error = exc.message
            s.pending = pending[key]
        s.last = last.get(s.name)
    return FleetStatus(fleet.env, head, states, run=manifest.run_id if manifest else None,
                       seconds=time.monotonic() - started, queries=queries)


def read_states(settings: Settings, targets: list[Target], budget: int) -> tuple[list[TargetState], int]:
    """The targets' revisions and locks, in their order, one connection per database (at most ``budget`` open on
    one server); (the states, how many statements it took)."""
    by_place: dict[tuple[str, str], list[Target]] = {}
    for t in targets:
        by_place.setdefault(t.place, []).append(t)
    gates = {server: threading.BoundedSemaphore(budget) for server, _ in by_place}
    read: dict[str, TargetState] = {}
    queries = Counter()

    def one(place: tuple[str, str]) -> None:
        group = by_place[place]
        with gates[place[0]]:
            try:
                states, n = read_database(settings, group)
            except (DatabaseUnreachable, sa.exc.SQLAlchemyError, DbopsError) as exc:
                why = exc.message if isinstance(exc, DbopsError) else reason(exc, group[0].url)
                states, n = [_state(t, None, error=why) for t in group], 0
        for s in states:
            read[s.name] = s
        queries[place] = n

    with ThreadPoolExecutor(max_workers=max(1, min(MAX_READERS, budget, len(by_place)))) as pool:
        list(pool.map(one, by_place))
    return [read[t.name] for t in targets], sum(queries.values())


def _state(t: Target, revision: list[str] | None, *, locked: bool = False, error: str | None = None) -> TargetState:
    return TargetState(t.name, t.group, t.database, t.schema, revision, locked=locked, error=error)


def read_database(settings: Settings, targets: list[Target]) -> tuple[list[TargetState], int]:
    """The targets of one database on one connection: (their states, how many statements it took)."""
    url = targets[0].database_url
    with postgres.connect(url, name="dbops fleet status", timeout=settings.connect_timeout_s) as conn:
        locked = deploy_lock_held(conn)
        schemas = [t.schema for t in targets if t.schema]
        versions, n = (schema_versions(conn, schemas) if schemas else ({}, 0))
        states = []
        for t in targets:
            if t.schema:
                states.append(_state(t, versions.get(t.schema, []), locked=locked))
            else:
                states.append(_state(t, list(Project.current(conn)), locked=locked))
                n += 1
        conn.rollback()
    return states, n + 1


def deploy_lock_held(conn: Connection) -> bool:
    """Whether a deploy holds this database's deploy lock (:mod:`dbops.postgres.lock`) now."""
    return bool(conn.execute(sa.text(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = :k1 "
        "AND objid = :k2 AND objsubid = 2 AND database = (SELECT oid FROM pg_database "
        "WHERE datname = current_database()))"), {"k1": lock.LOCK_KEY[0], "k2": lock.LOCK_KEY[1]}).scalar())


def schema_versions(conn: Connection, schemas: list[str]) -> tuple[dict[str, list[str]], int]:
    """Schema -> its alembic_version rows, for every listed schema that has the table: one catalog query,
    then the tables in UNION ALL statements of :data:`UNION_CHUNK`."""
    having = [r[0] for r in conn.execute(sa.text(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = 'alembic_version' AND c.relkind IN ('r', 'p') AND n.nspname = ANY(:schemas)"),
        {"schemas": schemas})]
    out: dict[str, list[str]] = {s: [] for s in schemas}
    n = 1
    for i in range(0, len(having), UNION_CHUNK):
        chunk = having[i:i + UNION_CHUNK]
        sql = " UNION ALL ".join(
            f"SELECT CAST(:s{j} AS text) AS schema, version_num FROM {quote_ident(s)}.alembic_version"
            for j, s in enumerate(chunk))
        for schema, version in conn.execute(sa.text(sql), {f"s{j}": s for j, s in enumerate(chunk)}):
            out[schema].append(version)
        n += 1
    return {s: sorted(v) for s, v in out.items()}, n


def manifest_outcomes(manifest: RunManifest) -> dict[str, str]:
    """Target name -> its outcome in the run (one listing of the manifest's records)."""
    names = {t["index"]: t["name"] for t in manifest.plan().get("targets", [])}
    return {names[i]: outcome for i, outcome in manifest.outcomes().items() if i in names}
