"""What the dry run hands back: each revision's SQL (:class:`RevisionSql`) and Squawk's findings on it
(:class:`DryRun`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..findings import Finding
from ..squawk import Allow

#: where a revision's linted SQL came from: offline rendering, a rehearsal's capture, or nowhere (not linted)
OFFLINE, CAPTURED, NONE = "offline", "captured", "none"


@dataclass
class RevisionSql:
    """One revision's SQL for the preview, and where it came from."""

    revision: str
    doc: str
    #: the revision file
    path: str
    #: the SQL linted: offline SQL, or the captured statements; "" when neither exists
    sql: str = ""
    #: why offline SQL could not be rendered (one line, with the file's line), None when it was
    offline_error: str | None = None
    #: the line of the revision file where offline rendering failed
    error_line: int | None = None
    #: offline | captured | none (not linted)
    source: str = OFFLINE
    #: 1-based line of ``sql`` -> line of the revision file that produced it (offline rendering)
    lines: dict[int, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def notice(self) -> str | None:
        """The one line the dry run and ``inv lint`` show for a revision without offline SQL."""
        if self.offline_error is None:
            return None
        then = ("linted from the rehearsal's captured SQL" if self.source == CAPTURED
                else "not linted (`inv rehearse` runs it on a copy and lints the SQL it really runs)")
        return f"revision {self.revision} ({self.name}): no offline SQL: {self.offline_error}; {then}"

    def source_line(self, sql_line: int) -> int | None:
        """The line of the revision file that produced line ``sql_line`` (1-based) of :attr:`sql`."""
        if sql_line in self.lines:
            return self.lines[sql_line]
        before = [n for n in self.lines if n <= sql_line]
        return self.lines[max(before)] if before else None

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("lines")
        return data


@dataclass
class DryRun:
    """Each revision's SQL and Squawk's findings on it (:func:`dbops.dryrun.lint_revisions`)."""

    revisions: list[RevisionSql] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    #: allow comments no finding matched (a stale allow is worth removing)
    unused_allows: list[Allow] = field(default_factory=list)

    @property
    def sql(self) -> dict[str, str]:
        """revision -> the SQL linted (revisions without any SQL are left out)."""
        return {r.revision: r.sql for r in self.revisions if r.sql}

    @property
    def errors(self) -> list[Finding]:
        """The findings that stop a deploy."""
        return [f for f in self.findings if f.is_error]

    @property
    def accepted(self) -> list[Finding]:
        return [f for f in self.findings if f.accepted]

    @property
    def notices(self) -> list[str]:
        """One line per revision without offline SQL."""
        return [r.notice for r in self.revisions if r.notice]

    def revision(self, rev: str) -> RevisionSql | None:
        return next((r for r in self.revisions if r.revision == rev), None)

    def to_dict(self) -> dict:
        return {
            "ok": not self.errors,
            "errors": len(self.errors),
            "revisions": [
                {**r.to_dict(), "findings": [f.to_dict() for f in self.findings if f.revision == r.revision]}
                for r in self.revisions
            ],
            "findings": [f.to_dict() for f in self.findings],
            "accepted": [f.to_dict() for f in self.accepted],
            "unused_allows": [asdict(a) for a in self.unused_allows],
            "notices": self.notices,
        }
