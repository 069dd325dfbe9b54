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

**An empty capture is an error, never "no findings".**  A revision whose
``upgrade()`` does something but of which the copy's connection ran no
statement (``nothing-captured``), or an upgrade that ended without an error
while the copy's revision, read on dbops' own connection, is not the head
(``not-applied``): the migration ran somewhere else (an env.py with an engine
of its own), so nothing was measured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ENV_PY_FIX, NOT_SEEN
from ..findings import ERROR, REHEARSE, SAFER, WARNING, Finding
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
        level = ERROR if long_held or (heavy and large) else WARNING
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
        out.append(Finding(REHEARSE, level, kind, message, safer(stmt, lock, kind), stmt.revision, stmt.file,
                           stmt.line, stmt.sql, table=table.name, held_s=lock.held_s))
    return out


def failed(stmt: Statement, why: str, *, schema_only: bool = False) -> Finding:
    if schema_only:
        return Finding(REHEARSE, ERROR, "failed",
                       f"the statement failed on the schema-only copy: {why} - the copy has no rows, so a data "
                       "migration that needs them may fail here and not in production", SAFER["failed-schema-only"],
                       stmt.revision, stmt.file, stmt.line, stmt.sql)
    return Finding(REHEARSE, ERROR, "failed", f"the statement failed on the copy, so the deploy would fail here: {why}",
                   SAFER["failed"], stmt.revision, stmt.file, stmt.line, stmt.sql)


def upgrade_failed(revision: str, file: str, failure: str) -> Finding:
    """The upgrade failed on the copy and no statement's failure says where: a finding on the last revision."""
    return Finding(REHEARSE, ERROR, "failed", f"the upgrade failed on the copy: {failure}", SAFER["upgrade-failed"],
                   revision, file)


def nothing_captured(revision: str, file: str, line: int) -> Finding:
    """A revision whose ``upgrade()`` does something, of which the copy's connection ran no statement."""
    return Finding(REHEARSE, ERROR, "nothing-captured",
                   f"nothing was captured: upgrade() has operations (line {line}), but dbops' connection to the copy "
                   "ran no statement of this revision, so nothing was measured or linted - that is not a clean "
                   f"result; {NOT_SEEN}", f"{ENV_PY_FIX}; in the revision, run SQL through op.execute() or "
                   "op.get_bind(), not a raw DBAPI cursor", revision, file, line)


def not_applied(revision: str, file: str, before: list[str], after: list[str], heads: list[str]) -> Finding:
    """The upgrade on the copy ended without an error, but the copy's revision is not the head."""
    return Finding(REHEARSE, ERROR, "not-applied",
                   f"the upgrade ended without an error, but the copy's revision, read on dbops' own connection, is "
                   f"{', '.join(after) or '(empty)'} (before: {', '.join(before) or '(empty)'}), not the head "
                   f"{', '.join(heads)}: the pending revisions did not run on the copy", ENV_PY_FIX, revision, file)


def _index_of(relation: str, stmt: Statement, table_oid: int) -> bool:
    return any(lk.relation == relation and lk.table_oid == table_oid for lk in stmt.locks)


#: statement shape -> the safer sequence (the rehearsal follows the facts: a statement's shape, not a rule)
_SHAPES = [
    (re.compile(r"\bCREATE\s+(UNIQUE\s+)?INDEX\b(?!\s+CONCURRENTLY)", re.IGNORECASE), "concurrent-index"),
    (re.compile(r"\bDROP\s+INDEX\b(?!\s+CONCURRENTLY)", re.IGNORECASE), "concurrent-index-drop"),
    (re.compile(r"\bFOREIGN\s+KEY\b(?!.*\bNOT\s+VALID\b)", re.IGNORECASE | re.DOTALL), "foreign-key-not-valid"),
    (re.compile(r"\bADD\s+CONSTRAINT\b.*\bCHECK\b(?!.*\bNOT\s+VALID\b)", re.IGNORECASE | re.DOTALL),
     "constraint-not-valid"),
    (re.compile(r"\bSET\s+NOT\s+NULL\b", re.IGNORECASE), "set-not-null"),
    (re.compile(r"\bUNIQUE\b", re.IGNORECASE), "unique-using-index"),
    (re.compile(r"\bPRIMARY\s+KEY\b", re.IGNORECASE), "primary-key-using-index"),
    (re.compile(r"\bALTER\s+COLUMN\b.*\bTYPE\b", re.IGNORECASE | re.DOTALL), "new-column-type"),
    (re.compile(r"\bADD\s+(COLUMN\s+)?.*\bDEFAULT\b", re.IGNORECASE | re.DOTALL), "volatile-default"),
    (re.compile(r"^\s*(UPDATE|DELETE|INSERT)\b", re.IGNORECASE), "batches"),
]


def safer(stmt: Statement, lock: Lock, kind: str) -> str:
    for pattern, shape in _SHAPES:
        if pattern.search(stmt.sql):
            return SAFER[shape]
    if kind == "lock":
        return SAFER["own-revision"].format(mode=lock.mode)
    return SAFER["split-change"]


def _count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} M"
    return f"{n:,}"
