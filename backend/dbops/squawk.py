"""Squawk, the Postgres migration linter: run on one revision's SQL, its findings classified.

The dry run (:mod:`dbops.dryrun`) hands each revision's SQL over on its own,
so a finding names its revision, and statements on a table created in the
same revision are not findings (squawk knows this for some rules; the rest
are filtered here).  Squawk reports everything as a warning; dbops classes the
rules that lock a busy table or lose data as **errors** (they stop a deploy
unless ``--allow-unsafe``) and gives each finding the safer alternative.

Rules dbops makes moot are left out: the deploy sets ``lock_timeout`` and
``statement_timeout`` for the session, and every revision runs in its own
transaction (so ``IF NOT EXISTS`` robustness is not needed to re-run it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import DbopsError, ToolFailed

#: rules whose risk the deploy itself removes
EXCLUDED = ("prefer-robust-stmts", "require-lock-timeout", "require-statement-timeout", "transaction-nesting")

#: rule -> the safer alternative, for rules that block a live table or lose data (error level)
ERROR_RULES: dict[str, str] = {
    "adding-required-field": "add the column nullable (or with a constant DEFAULT), backfill in batches, then add "
    "a CHECK (col IS NOT NULL) NOT VALID constraint, VALIDATE it, and SET NOT NULL in a later revision",
    "adding-not-nullable-field": "add the column nullable, backfill, then SET NOT NULL after validating a "
    "NOT VALID CHECK constraint in a later revision",
    "adding-field-with-default": "add the column without the volatile default, then backfill in batches",
    "adding-serial-primary-key-field": "create a unique index CONCURRENTLY first, then ADD PRIMARY KEY USING INDEX",
    "adding-foreign-key-constraint": "add the foreign key with postgresql_not_valid=True, then VALIDATE CONSTRAINT "
    "in a separate revision",
    "constraint-missing-not-valid": "add the constraint NOT VALID (postgresql_not_valid=True), then "
    "op.execute('ALTER TABLE ... VALIDATE CONSTRAINT ...') in a separate revision",
    "disallowed-unique-constraint": "CREATE UNIQUE INDEX CONCURRENTLY in an autocommit_block, then ALTER TABLE ... "
    "ADD CONSTRAINT ... UNIQUE USING INDEX",
    "require-concurrent-index-creation": "op.create_index(..., postgresql_concurrently=True) inside "
    "`with op.get_context().autocommit_block():`",
    "require-concurrent-index-deletion": "op.drop_index(..., postgresql_concurrently=True) inside "
    "`with op.get_context().autocommit_block():`",
    "ban-concurrent-index-creation-in-transaction": "run CONCURRENTLY operations inside "
    "`with op.get_context().autocommit_block():`",
    "changing-column-type": "add a new column of the new type, backfill it, move readers and writers, drop the "
    "old column in a later release",
    "renaming-column": "add the new column, write both, move readers, drop the old one in a later release",
    "renaming-table": "create the new table (or a view with the new name), move readers, drop the old one later",
    "ban-drop-column": "first release code that no longer uses the column, then drop it in a later revision "
    "(expand/contract)",
    "ban-drop-table": "first release code that no longer uses the table, then drop it in a later revision",
    "ban-drop-database": "never drop a database from a migration",
    "ban-drop-not-null": "keep NOT NULL; release code that tolerates NULLs before relaxing it",
    "ban-truncate-cascade": "delete the rows explicitly, table by table",
    "adding-primary-key-constraint": "create a unique index CONCURRENTLY, then ADD PRIMARY KEY USING INDEX",
}

#: tables of alembic itself: never findings
IGNORED_TABLES = {"alembic_version"}


_CREATED = re.compile(r"\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([^\s(]+)", re.I)
_TARGETS = [
    re.compile(r"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?([^\s(;]+)", re.I),
    re.compile(r"\bINDEX\b.*?\bON\s+(?:ONLY\s+)?([^\s(;]+)", re.I | re.S),
    re.compile(r"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?([^\s(;,]+)", re.I),
    re.compile(r"\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([^\s(]+)", re.I),
]


@dataclass
class Finding:
    revision: str | None
    rule: str
    level: str  # "error" | "warning"
    message: str
    alternative: str
    line: int  # 1-based, in the revision's SQL
    statement: str

    @property
    def is_error(self) -> bool:
        return self.level == "error"

    def as_dict(self) -> dict:
        return asdict(self)


def _table_name(raw: str) -> str:
    name = raw.strip().rstrip(";,").split(".")[-1]
    return name.strip('"').lower()


def created_tables(sql: str) -> set[str]:
    return {_table_name(m) for m in _CREATED.findall(sql)}


def statement_table(statement: str) -> str | None:
    for pattern in _TARGETS:
        m = pattern.search(statement)
        if m:
            return _table_name(m.group(1))
    return None


def squawk_path() -> str:
    found = shutil.which("squawk") or str(Path(sys.executable).parent / "squawk")
    if not Path(found).is_file():
        raise DbopsError(
            "squawk not found",
            details=f"looked on $PATH and in {Path(sys.executable).parent}",
            hint="pip install squawk-cli",
        )
    return found


def lint_sql(sql: str, *, revision: str | None = None, pg_version: str | None = None) -> list[Finding]:
    """Squawk's findings for one revision's SQL, classified and filtered."""
    if not sql.strip():
        return []
    argv = [squawk_path(), "--reporter", "json", "--stdin-filepath", f"{revision or 'migration'}.sql",
            "--exclude", ",".join(EXCLUDED)]
    if pg_version:
        argv += ["--pg-version", pg_version]
    try:
        proc = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed("squawk", None, "") from exc
    # squawk exits 1 when it has findings; anything else is a failure of squawk itself
    if proc.returncode not in (0, 1):
        raise ToolFailed("squawk", proc.returncode, "\n".join(proc.stderr.strip().splitlines()[-15:]))
    out = proc.stdout
    try:
        raw = json.loads(out or "[]")
    except json.JSONDecodeError as exc:
        raise DbopsError(f"squawk printed something that is not JSON: {out[:200]!r}") from exc
    statements = _statements(sql)
    created = created_tables(sql)
    findings = []
    for item in raw:
        rule = item.get("rule_name") or "?"
        start = int(item.get("line", 0))
        statement = next((text for first, last, text in statements if first <= start <= last), "")
        table = statement_table(statement)
        if table in IGNORED_TABLES:
            continue
        if table in created and not _CREATED.search(statement):
            continue  # a statement on a table this very revision creates: nobody uses it yet
        level = "error" if rule in ERROR_RULES or str(item.get("level", "")).lower() == "error" else "warning"
        alternative = ERROR_RULES.get(rule) or item.get("help") or ""
        findings.append(Finding(revision, rule, level, item.get("message") or "", alternative, start + 1, statement))
    return findings


def _statements(sql: str) -> list[tuple[int, int, str]]:
    """(first line, last line, text) of each statement (0-based lines; alembic ends each with ';')."""
    out, first, buf = [], None, []
    for i, line in enumerate(sql.splitlines()):
        if first is None:
            if not line.strip() or line.lstrip().startswith("--"):
                continue
            first = i
        buf.append(line)
        if line.rstrip().endswith(";"):
            out.append((first, i, "\n".join(buf).strip()))
            first, buf = None, []
    if buf:
        out.append((first, first + len(buf) - 1, "\n".join(buf).strip()))
    return out


def render_findings(findings: Sequence[Finding]) -> str:
    if not findings:
        return "squawk: no findings"
    lines = []
    for f in findings:
        lines.append(f"[{f.level}] {f.revision or '-'} line {f.line}: {f.rule}: {f.message}")
        lines.append(f"    statement:  {' '.join(f.statement.split())[:160]}")
        if f.alternative:
            lines.append(f"    safer:      {f.alternative}")
    errors = sum(f.is_error for f in findings)
    lines.append(f"squawk: {errors} error(s), {len(findings) - errors} warning(s)")
    return "\n".join(lines)
