"""The schema the pending revisions produce: a throwaway database upgraded from empty, read after each step.

The database is upgraded (through the project's own env.py, one run per
revision as ``alembic upgrade`` does) to the revision the serving code knows,
read with the catalog snapshot (:mod:`dbops.postgres.schema_snapshot`), then one
pending revision at a time to the head, read again after each: the first
snapshot is the schema the old code runs on today, the last the one it will
meet, and the ones between tell which revision made each change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from alembic.script import Script
from sqlalchemy.engine import URL

from .. import postgres
from ..migrations import Project
from ..migrations.runner import StepRunner, foreign_env
from ..postgres import schema_snapshot
from ..postgres.extensions import created_in
from ..servers.throwaway import given_or_throwaway, throwaway_database
from ..settings import ClientPlaces


@dataclass
class Step:
    revision: str | None
    file: str | None
    snapshot: schema_snapshot.Snapshot


@dataclass
class SchemaSteps:
    """The schema at the serving code's revision (``before``), then after each pending revision."""

    start: list[str]
    steps: list[Step] = field(default_factory=list)

    @property
    def before(self) -> schema_snapshot.Snapshot:
        return self.steps[0].snapshot

    @property
    def after(self) -> schema_snapshot.Snapshot:
        return self.steps[-1].snapshot

    @property
    def pending(self) -> list[Step]:
        return self.steps[1:]


def _upto(project: Project, heads: list[str]) -> list[Script]:
    """Every revision from base to ``heads``, oldest first (empty for no heads)."""
    if not heads:
        return []
    return list(reversed(list(project.script.iterate_revisions(tuple(heads), "base"))))


def build(project: Project, start: list[str], *, server_url: URL | None = None,
          places: ClientPlaces | None = None) -> SchemaSteps:
    """Upgrade a throwaway database to ``start``, then to the heads one revision at a time; snapshot each."""
    result = SchemaSteps(start)
    first = _upto(project, start)
    pending = project.pending(start)
    needs = created_in("\n".join(Path(s.path).read_text(errors="replace") for s in [*first, *pending]))
    with given_or_throwaway(server_url, prefix="dbops-compat-", places=places, needs=needs,
                            purpose="inv compat's throwaway PostgreSQL server") as server, \
            throwaway_database(server, prefix="dbops_compat") as db:
        engine = postgres.make_engine(db.url)
        try:
            with foreign_env(project, db.url), engine.connect() as conn:
                runner = StepRunner(project, db.url, conn)
                runner.run(first, upgrade=True)
                result.steps.append(Step(None, None, _read(conn)))
                for script in pending:
                    runner.step(script, upgrade=True)
                    result.steps.append(Step(script.revision, Path(script.path).name, _read(conn)))
        finally:
            engine.dispose()
    return result


def _read(conn) -> schema_snapshot.Snapshot:
    if conn.in_transaction():
        conn.commit()
    snap = schema_snapshot.snapshot(conn)
    conn.commit()
    return snap
