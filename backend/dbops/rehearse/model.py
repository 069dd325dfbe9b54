"""What a rehearsal found: each revision as it ran on the copy (:class:`RevisionRehearsal`) and the report.

:meth:`RehearsalReport.to_dict` is the JSON record (written under ``backups/``
and beside a deploy's backup); :mod:`.report` renders it for people.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .. import clock
from ..findings import Finding
from .findings import TableFacts, Thresholds
from .lock_trace import Statement


@dataclass
class RevisionRehearsal:
    """One pending revision as it ran on the copy."""

    revision: str
    doc: str
    file: str
    statements: list[Statement] = field(default_factory=list)
    #: the schema difference it made (catalog snapshot before vs after)
    schema_diff: list[str] = field(default_factory=list)
    #: findings from facts, then Squawk's on the captured SQL (kind ``squawk:<rule>``)
    findings: list[Finding] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.statements)

    @property
    def reached(self) -> bool:
        """It ran (False: the upgrade failed before it)."""
        return bool(self.statements)


@dataclass
class RehearsalReport:
    env: str
    backup_key: str
    backup_verified: bool
    #: the throwaway server or the --server scratch database (masked)
    server: str
    server_version: str
    schema_only: bool
    revision_before: list[str] = field(default_factory=list)
    revision_after: list[str] = field(default_factory=list)
    revisions: list[RevisionRehearsal] = field(default_factory=list)
    #: every table a statement locked, rewrote or scanned (name -> facts)
    tables: dict[str, TableFacts] = field(default_factory=dict)
    thresholds: Thresholds | None = None
    restore_s: float = 0.0
    #: wall time of the upgrade on the copy (tracing excluded): the deploy's expected duration
    upgrade_s: float | None = None
    tracing_s: float = 0.0
    #: the longest a query would wait behind the migration: reads, writes (seconds, table, revision)
    longest_wait: dict[str, tuple[float, str, str | None] | None] = field(default_factory=dict)
    #: why the upgrade failed on the copy (None: it went through)
    failure: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: where the JSON report was written
    path: str | None = None
    #: when it ran (for file names)
    stamp: str = field(default_factory=clock.stamp)

    @property
    def findings(self) -> list[Finding]:
        return [f for r in self.revisions for f in r.findings]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.is_error]

    @property
    def statements(self) -> list[Statement]:
        return [s for r in self.revisions for s in r.statements]

    def to_dict(self) -> dict:
        return {
            "env": self.env,
            "backup": {"key": self.backup_key, "verified": self.backup_verified},
            "server": self.server,
            "server_version": self.server_version,
            "schema_only": self.schema_only,
            "durations_measured": not self.schema_only,
            "revision_before": self.revision_before,
            "revision_after": self.revision_after,
            "restore_s": self.restore_s,
            "expected_upgrade_s": self.upgrade_s if not self.schema_only else None,
            "tracing_s": self.tracing_s,
            "thresholds": asdict(self.thresholds) if self.thresholds else None,
            "longest_wait_s": {k: (None if v is None else {"seconds": v[0], "table": v[1], "revision": v[2]})
                               for k, v in self.longest_wait.items()},
            "failure": self.failure,
            "warnings": self.warnings,
            "tables": {name: asdict(t) for name, t in self.tables.items()},
            "revisions": [
                {
                    "revision": rev.revision, "doc": rev.doc, "file": rev.file, "duration_s": rev.duration_s,
                    "reached": rev.reached,
                    "schema_diff": rev.schema_diff,
                    "statements": [{k: v for k, v in asdict(s).items() if k not in ("table_oids", "started")}
                                   for s in rev.statements],
                    "findings": [f.to_dict() for f in rev.findings],
                }
                for rev in self.revisions
            ],
            "errors": len(self.errors),
            "warnings_count": len(self.findings) - len(self.errors),
        }
