"""Findings from facts: which application operations each lock blocks, and when a measured lock is an error.

The application's own statements take these table locks (PostgreSQL's
"Explicit Locking" chapter): ``SELECT`` takes ACCESS SHARE; ``SELECT ... FOR
UPDATE / FOR SHARE`` ROW SHARE; ``INSERT`` / ``UPDATE`` / ``DELETE`` /
``MERGE`` ROW EXCLUSIVE.  A migration's lock blocks an application operation
when the two modes conflict:

======================  ==============================================================
lock the migration took  application operations it blocks until its transaction ends
======================  ==============================================================
ACCESS SHARE             nothing (only ACCESS EXCLUSIVE DDL waits)
ROW SHARE                nothing
ROW EXCLUSIVE            nothing (rows it changed stay locked for other writers)
SHARE UPDATE EXCLUSIVE   nothing (VACUUM, ANALYZE, other DDL wait)
SHARE                    inserts, updates and deletes
SHARE ROW EXCLUSIVE      inserts, updates and deletes
EXCLUSIVE                inserts, updates, deletes and SELECT ... FOR UPDATE/SHARE
ACCESS EXCLUSIVE         everything: reads, inserts, updates and deletes
======================  ==============================================================

A finding comes from what the rehearsal measured on a copy of production:

- a lock that blocks reads or writes, held at least ``DBOPS_REHEARSE_MAX_BLOCK_MS``
  (default: the deploy's ``lock_timeout``) from the statement that took it until
  its transaction committed, is an **error** - the application waits that long;
- a rewrite (the table's ``relfilenode`` changed) or a validating scan under
  such a lock of a table at least ``DBOPS_REHEARSE_LARGE_TABLE_MB`` big (default
  10 MiB) is an **error**, smaller ones a warning - under ``--schema-only``
  nothing is timed, so this size rule (on production's sizes) is what is left.

Each finding names the revision, the file and line of the operation and the
safer sequence.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ..units import human_size
from .lock_trace import Lock, Statement

READS = "reads"
WRITES = "writes"
ROW_LOCKS = "SELECT ... FOR UPDATE/SHARE"

#: lock mode -> what of the application's work it blocks (the table above)
BLOCKS: dict[str, tuple[str, ...]] = {
    "ACCESS SHARE": (),
    "ROW SHARE": (),
    "ROW EXCLUSIVE": (),
    "SHARE UPDATE EXCLUSIVE": (),
    "SHARE": (WRITES,),
    "SHARE ROW EXCLUSIVE": (WRITES,),
    "EXCLUSIVE": (WRITES, ROW_LOCKS),
    "ACCESS EXCLUSIVE": (READS, WRITES),
}

_STRENGTH = list(BLOCKS)


def blocks(mode: str) -> tuple[str, ...]:
    """What application operations a table lock of ``mode`` blocks (empty: none)."""
    return BLOCKS.get(mode, ())


def describe_blocks(mode: str, *, new: bool = False) -> str:
    if new:
        return "a relation this run created: invisible to the application until it commits"
    what = blocks(mode)
    if not what:
        return "blocks no application query"
    if READS in what:
        return "blocks reads and writes"
    if ROW_LOCKS in what:
        return "blocks writes and SELECT ... FOR UPDATE"
    return "blocks writes (inserts, updates, deletes)"


@dataclass
class TableFacts:
    """A table's size before the rehearsal: rows (exact from the backup's manifest, else the estimate) and bytes."""

    name: str
    rows: int | None
    bytes: int | None
    exact: bool = False
    #: where the numbers come from (the restored copy, the backup's manifest, production's catalog)
    source: str = ""

    def describe(self) -> str:
        parts = []
        if self.rows is not None:
            parts.append(f"{'' if self.exact else '~'}{_count(self.rows)} rows")
        if self.bytes is not None:
            parts.append(human_size(self.bytes))
        return ", ".join(parts) or "size unknown"


@dataclass
class Finding:
    level: str  # "error" | "warning"
    kind: str  # "lock" | "rewrite" | "scan" | "failed"
    revision: str | None
    file: str | None
    line: int | None
    message: str
    safer: str
    statement: str
    table: str | None = None
    held_s: float | None = None

    @property
    def is_error(self) -> bool:
        return self.level == "error"

    def where(self) -> str:
        if self.file:
            return f"{self.file}:{self.line}"
        return "(alembic)"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Thresholds:
    #: a blocking lock held this long (seconds) is an error
    max_block_s: float
    #: a rewrite or validating scan of a table at least this big (bytes) is an error
    large_table_bytes: int
    #: durations were measured (False under --schema-only: only the size rule applies)
    timed: bool = True


def strongest(locks: list[Lock]) -> Lock | None:
    """The lock that blocks the most (ties: the longest held)."""
    if not locks:
        return None
    return max(locks, key=lambda lk: (_STRENGTH.index(lk.mode) if lk.mode in _STRENGTH else -1, lk.held_s or 0))


def for_statement(stmt: Statement, facts: dict[int, TableFacts], limits: Thresholds) -> list[Finding]:
    """The findings of one statement: per table it blocked, one finding naming the lock, the hold, the rewrite/scan."""
    out = []
    for table_oid in sorted(stmt.table_oids):
        table = facts.get(table_oid)
        if table is None:  # created by the pending revisions: nobody uses it yet
            continue
        lock = strongest([lk for lk in stmt.locks if lk.table_oid == table_oid and blocks(lk.mode) and not lk.new])
        if lock is None:
            continue
        rewrote = [r for r in stmt.rewrites if r == table.name or _index_of(r, stmt, table_oid)]
        scanned = table.name in stmt.scans
        large = table.bytes is not None and table.bytes >= limits.large_table_bytes
        long_held = limits.timed and lock.held_s is not None and lock.held_s >= limits.max_block_s
        heavy = bool(rewrote) or scanned
        if not (long_held or heavy):
            continue
        level = "error" if long_held or (heavy and large) else "warning"
        held = f"held {lock.held_s:.2f} s" if limits.timed and lock.held_s is not None else "hold time not measured"
        if long_held:
            held += f" (limit {limits.max_block_s * 1000:.0f} ms)"
        message = f"{lock.mode} on {table.name} ({table.describe()}) {held}: {describe_blocks(lock.mode)}"
        if rewrote:
            message += f"; rewrote {', '.join(rewrote)}"
        if scanned:
            message += "; scanned the whole table to validate or build"
        if heavy:
            rule = human_size(limits.large_table_bytes)
            message += (f" (a table of at least {rule})" if large else
                        f" (below the {rule} size rule)" if table.bytes is not None else " (its size is unknown)")
        kind = "rewrite" if rewrote else "scan" if scanned else "lock"
        out.append(Finding(level, kind, stmt.revision, stmt.file, stmt.line, message, safer(stmt, lock, kind),
                           stmt.sql, table.name, lock.held_s))
    return out


def failed(stmt: Statement, why: str, *, schema_only: bool = False) -> Finding:
    if schema_only:
        return Finding("error", "failed", stmt.revision, stmt.file, stmt.line,
                       f"the statement failed on the schema-only copy: {why} - the copy has no rows, so a data "
                       "migration that needs them may fail here and not in production", "rehearse on a full copy "
                       "(without --schema-only) to tell; the revisions after it were not rehearsed", stmt.sql)
    return Finding("error", "failed", stmt.revision, stmt.file, stmt.line,
                   f"the statement failed on the copy, so the deploy would fail here: {why}",
                   "fix the revision (the copy has production's data: constraints, duplicates, NULLs)", stmt.sql)


def _index_of(relation: str, stmt: Statement, table_oid: int) -> bool:
    return any(lk.relation == relation and lk.table_oid == table_oid for lk in stmt.locks)


_CONCURRENT_INDEX = ("op.create_index(..., postgresql_concurrently=True) inside "
                     "`with op.get_context().autocommit_block():` (SHARE UPDATE EXCLUSIVE: blocks no query)")

#: statement shape -> the safer sequence (own texts: Squawk's table is for its rules, these follow the facts)
_SAFER = [
    (re.compile(r"\bCREATE\s+(UNIQUE\s+)?INDEX\b(?!\s+CONCURRENTLY)", re.IGNORECASE), _CONCURRENT_INDEX),
    (re.compile(r"\bDROP\s+INDEX\b(?!\s+CONCURRENTLY)", re.IGNORECASE),
     "op.drop_index(..., postgresql_concurrently=True) inside `with op.get_context().autocommit_block():`"),
    (re.compile(r"\bFOREIGN\s+KEY\b(?!.*\bNOT\s+VALID\b)", re.IGNORECASE | re.DOTALL),
     ("add the foreign key with postgresql_not_valid=True (no scan, a brief lock), then "
      "op.execute('ALTER TABLE ... VALIDATE CONSTRAINT ...') in a separate revision (SHARE UPDATE EXCLUSIVE: "
      "blocks no query)")),
    (re.compile(r"\bADD\s+CONSTRAINT\b.*\bCHECK\b(?!.*\bNOT\s+VALID\b)", re.IGNORECASE | re.DOTALL),
     ("add the CHECK constraint NOT VALID (no scan), then VALIDATE CONSTRAINT it in a separate revision "
      "(SHARE UPDATE EXCLUSIVE: blocks no query)")),
    (re.compile(r"\bSET\s+NOT\s+NULL\b", re.IGNORECASE),
     ("add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it in a later revision (SHARE UPDATE EXCLUSIVE: "
      "blocks no query), then SET NOT NULL: PostgreSQL 12+ uses the validated check and skips the scan")),
    (re.compile(r"\bUNIQUE\b", re.IGNORECASE),
     ("CREATE UNIQUE INDEX CONCURRENTLY in an autocommit block, then ALTER TABLE ... ADD CONSTRAINT ... UNIQUE "
      "USING INDEX")),
    (re.compile(r"\bPRIMARY\s+KEY\b", re.IGNORECASE),
     "create a unique index CONCURRENTLY first, then ALTER TABLE ... ADD PRIMARY KEY USING INDEX"),
    (re.compile(r"\bALTER\s+COLUMN\b.*\bTYPE\b", re.IGNORECASE | re.DOTALL),
     ("add a new column of the new type, backfill it in batches, move readers and writers, drop the old column "
      "in a later release")),
    (re.compile(r"\bADD\s+(COLUMN\s+)?.*\bDEFAULT\b", re.IGNORECASE | re.DOTALL),
     ("add the column without the volatile default (a constant default or none: no rewrite), SET DEFAULT for new "
      "rows, then backfill the old rows in batches, each batch its own transaction")),
    (re.compile(r"^\s*(UPDATE|DELETE|INSERT)\b", re.IGNORECASE),
     ("backfill in batches (a few thousand rows per transaction) from a script or separate revisions, "
      "so no lock is held for long")),
]


def safer(stmt: Statement, lock: Lock, kind: str) -> str:
    for pattern, text in _SAFER:
        if pattern.search(stmt.sql):
            return text
    if kind == "lock":
        return (f"the {lock.mode} lock is held until the revision commits: put this statement in a revision of its "
                "own so the slow statements after it run without the lock")
    return "split the change so that no blocking lock covers a full-table rewrite or scan"


def _count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} M"
    return f"{n:,}"
