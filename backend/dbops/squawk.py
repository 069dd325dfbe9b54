"""Squawk, the Postgres migration linter: run on one revision's SQL, its findings classified.

The dry run (:mod:`dbops.dryrun`) hands each revision's SQL over on its own,
so a finding names its revision, and statements on a table created in the
same revision are not findings (squawk knows this for some rules; the rest
are filtered here).  Squawk reports everything as a warning; dbops classes
every rule of squawk 2.70 in one table, :data:`RULES`:

========  ====================================================================  =====================
kind      meaning                                                               gates a deploy?
========  ====================================================================  =====================
error     locks a busy table, rewrites or scans it, or loses data              yes (unless
                                                                                ``--allow-unsafe`` or
                                                                                an allow comment)
warning   a safety concern that does not block the table: compatibility with   no
          the running code (drops, renames of other objects), unusual DDL
style     a schema habit (column types, identity, schema-qualified names):     no, and not on a table
          worth a look, never a risk to a deploy                               created in the same
                                                                                revision
moot      what dbops already does (``lock_timeout`` / ``statement_timeout``    never reported
          per session, one transaction per revision, re-runnable revisions)
========  ====================================================================  =====================

The project's ``.squawk.toml`` (at the project root) is honoured: it is
passed with ``--config``, and its ``excluded_rules`` are merged with the moot
rules (squawk's ``--exclude`` would otherwise replace them).

A revision file can accept a finding with a reason, on a line of its own::

    # dbops: allow ban-drop-column: the column was unused since release 41

Every finding of that rule in that revision is then *accepted*: listed in the
report with the reason, never an error.  An allow comment without a reason
or with an unknown rule is a :class:`~dbops.errors.BadAllowComment`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import BadAllowComment, DbopsError, ToolFailed

ERROR, WARNING, STYLE, MOOT = "error", "warning", "style", "moot"


@dataclass(frozen=True)
class Rule:
    kind: str  # error | warning | style | moot
    #: the safer way (error rules), or why the kind was chosen
    safer: str = ""


#: every rule squawk 2.70 knows -> its kind and the safer way (the one classification table)
RULES: dict[str, Rule] = {
    # -- error: blocks a live table, rewrites / scans it, or loses data ------------------------------------
    "adding-required-field": Rule(ERROR, "add the column nullable (or with a constant DEFAULT), backfill in "
                                  "batches, then add a CHECK (col IS NOT NULL) NOT VALID constraint, VALIDATE it, "
                                  "and SET NOT NULL in a later revision"),
    "adding-not-nullable-field": Rule(ERROR, "add the column nullable, backfill, then SET NOT NULL after "
                                      "validating a NOT VALID CHECK constraint in a later revision"),
    "adding-field-with-default": Rule(ERROR, "add the column without the volatile default, then backfill in "
                                      "batches"),
    "adding-serial-primary-key-field": Rule(ERROR, "create a unique index CONCURRENTLY first, then ADD PRIMARY "
                                            "KEY USING INDEX"),
    "adding-foreign-key-constraint": Rule(ERROR, "add the foreign key with postgresql_not_valid=True, then "
                                          "VALIDATE CONSTRAINT in a separate revision"),
    "constraint-missing-not-valid": Rule(ERROR, "add the constraint NOT VALID (postgresql_not_valid=True), then "
                                         "op.execute('ALTER TABLE ... VALIDATE CONSTRAINT ...') in a separate "
                                         "revision"),
    "disallowed-unique-constraint": Rule(ERROR, "CREATE UNIQUE INDEX CONCURRENTLY in an autocommit_block, then "
                                         "ALTER TABLE ... ADD CONSTRAINT ... UNIQUE USING INDEX"),
    "require-concurrent-index-creation": Rule(ERROR, "op.create_index(..., postgresql_concurrently=True) inside "
                                              "`with op.get_context().autocommit_block():`"),
    "require-concurrent-index-deletion": Rule(ERROR, "op.drop_index(..., postgresql_concurrently=True) inside "
                                              "`with op.get_context().autocommit_block():`"),
    "require-concurrent-reindex": Rule(ERROR, "REINDEX ... CONCURRENTLY inside "
                                       "`with op.get_context().autocommit_block():`"),
    "require-concurrent-partition-detach": Rule(ERROR, "ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY inside "
                                                "`with op.get_context().autocommit_block():`"),
    "ban-concurrent-index-creation-in-transaction": Rule(ERROR, "run CONCURRENTLY operations inside "
                                                         "`with op.get_context().autocommit_block():`"),
    "changing-column-type": Rule(ERROR, "add a new column of the new type, backfill it, move readers and writers, "
                                 "drop the old column in a later release"),
    "renaming-column": Rule(ERROR, "add the new column, write both, move readers, drop the old one in a later "
                            "release"),
    "renaming-table": Rule(ERROR, "create the new table (or a view with the new name), move readers, drop the old "
                           "one later"),
    "ban-drop-column": Rule(ERROR, "first release code that no longer uses the column, then drop it in a later "
                            "revision (expand/contract)"),
    "ban-drop-table": Rule(ERROR, "first release code that no longer uses the table, then drop it in a later "
                           "revision"),
    "ban-drop-database": Rule(ERROR, "never drop a database from a migration"),
    "ban-drop-not-null": Rule(ERROR, "keep NOT NULL; release code that tolerates NULLs before relaxing it"),
    "ban-truncate-cascade": Rule(ERROR, "delete the rows explicitly, table by table"),
    # -- warning: a safety concern that does not block the table (mostly: the running code may break) ----------
    **{rule: Rule(WARNING, "release code that no longer depends on it first (expand/contract)") for rule in (
        "ban-drop-constraint", "ban-drop-domain", "ban-drop-extension", "ban-drop-function",
        "ban-drop-generated-expression", "ban-drop-index", "ban-drop-policy", "ban-drop-schema", "ban-drop-sequence",
        "ban-drop-type", "ban-drop-view", "ban-set-schema", "renaming-object", "ban-revoke",
    )},
    **{rule: Rule(WARNING, "check that the running code copes with the change before the deploy") for rule in (
        "ban-add-column", "ban-add-composite-attribute", "ban-add-enum-value", "ban-alter-database-options",
        "ban-alter-extension", "ban-alter-function-options", "ban-alter-generated-expression", "ban-alter-identity",
        "ban-alter-policy-condition", "ban-alter-policy-roles", "ban-alter-role-options",
        "ban-alter-row-level-security", "ban-alter-sequence-values", "ban-alter-system-options",
        "ban-alter-view-options", "ban-create-policy", "ban-detach-inheritance", "ban-disable-trigger",
        "ban-new-write-restriction", "ban-replace-view-function", "ban-replica-identity", "ban-set-default",
    )},
    "ban-create-domain-with-constraint": Rule(WARNING, "use a column CHECK constraint (added NOT VALID) instead of a "
                                              "domain constraint"),
    "ban-alter-domain-with-add-constraint": Rule(WARNING, "use column CHECK constraints (added NOT VALID) instead "
                                                 "of a domain constraint"),
    "identifier-too-long": Rule(WARNING, "PostgreSQL truncates names to 63 bytes: choose a shorter name"),
    "prefer-repack": Rule(WARNING, "rewrite the table online (pg_repack) instead of VACUUM FULL / CLUSTER"),
    # -- style: a habit, never a risk to a deploy ----------------------------------------------------------------
    "prefer-bigint-over-int": Rule(STYLE, "sa.BigInteger() for ids and counters"),
    "prefer-bigint-over-smallint": Rule(STYLE, "sa.BigInteger() for ids and counters"),
    "prefer-identity": Rule(STYLE, "sa.Identity() instead of serial"),
    "prefer-text-field": Rule(STYLE, "sa.Text() with a CHECK constraint on the length"),
    "prefer-timestamp-tz": Rule(STYLE, "sa.DateTime(timezone=True)"),
    "ban-char-field": Rule(STYLE, "sa.Text() (or sa.String() without a length)"),
    "require-enum-value-ordering": Rule(STYLE, "ADD VALUE ... BEFORE/AFTER to place the new label"),
    "require-table-schema": Rule(STYLE, "schema-qualified names (opt-in rule)"),
    # -- moot: the deploy already does it ------------------------------------------------------------------------
    "prefer-robust-stmts": Rule(MOOT, "each revision runs in its own transaction: a failed one leaves nothing"),
    "require-lock-timeout": Rule(MOOT, "the deploy sets lock_timeout for the session"),
    "require-statement-timeout": Rule(MOOT, "the deploy sets statement_timeout for the session"),
    "require-timeout-settings": Rule(MOOT, "the deploy sets lock_timeout and statement_timeout"),
    "transaction-nesting": Rule(MOOT, "alembic writes the BEGIN/COMMIT of each revision itself"),
    "ban-uncommitted-transaction": Rule(MOOT, "alembic commits each revision itself"),
}

#: rules whose risk the deploy itself removes (never passed to squawk)
EXCLUDED = tuple(rule for rule, r in RULES.items() if r.kind == MOOT)
#: rule -> the safer alternative, for the rules that stop a deploy
ERROR_RULES: dict[str, str] = {rule: r.safer for rule, r in RULES.items() if r.kind == ERROR}
STYLE_RULES = frozenset(rule for rule, r in RULES.items() if r.kind == STYLE)
#: squawk's finding for SQL it cannot parse (not a rule: it hides the other findings of that input)
SYNTAX_ERROR = "syntax-error"

#: tables of alembic itself: never findings
IGNORED_TABLES = {"alembic_version"}

#: the project's squawk config, at the project root
CONFIG_FILE = ".squawk.toml"


_CREATED = re.compile(r"\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([^\s(]+)", re.IGNORECASE)
_TARGETS = [
    re.compile(r"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?([^\s(;]+)", re.IGNORECASE),
    re.compile(r"\bINDEX\b.*?\bON\s+(?:ONLY\s+)?([^\s(;]+)", re.IGNORECASE | re.DOTALL),
    re.compile(r"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?([^\s(;,]+)", re.IGNORECASE),
    re.compile(r"\bCREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([^\s(]+)", re.IGNORECASE),
]


@dataclass
class Finding:
    revision: str | None
    rule: str
    level: str  # "error" | "warning" | "style" (see RULES)
    message: str
    alternative: str
    line: int  # 1-based, in the revision's SQL
    statement: str
    #: the revision file, and the line in it of the operation that produced the statement (when known)
    path: str | None = None
    source_line: int | None = None
    #: the reason of the revision's ``# dbops: allow <rule>: <why>`` comment: an accepted finding never gates
    accepted: str | None = None

    @property
    def is_error(self) -> bool:
        """An error that stops a deploy: error level and not accepted by an allow comment."""
        return self.level == ERROR and not self.accepted

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Allow:
    """A ``# dbops: allow <rule>: <why>`` comment in a revision file."""

    rule: str
    reason: str
    path: str
    line: int


_ALLOW = re.compile(r"#\s*dbops\s*:\s*allow\b(?P<rest>.*)$", re.IGNORECASE)
_ALLOW_BODY = re.compile(r"^\s+(?P<rule>[a-z0-9][a-z0-9-]*)\s*:\s*(?P<why>\S.*?)\s*$")


def allows_in(path: str | Path) -> list[Allow]:
    """The allow comments of one revision file; BadAllowComment for one without a reason or an unknown rule."""
    path = Path(path)
    out = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        m = _ALLOW.search(text)
        if not m:
            continue
        body = _ALLOW_BODY.match(m.group("rest"))
        if body is None:
            rule = (m.group("rest").strip().split(":")[0].split() or ["<rule>"])[0]
            raise BadAllowComment(str(path), number, text.strip(),
                                  f"it has no reason (write `# dbops: allow {rule}: <why this is safe here>`)")
        rule = body.group("rule")
        if rule not in RULES:
            raise BadAllowComment(str(path), number, text.strip(),
                                  f"{rule!r} is not a squawk rule dbops knows (see dbops.squawk.RULES)")
        out.append(Allow(rule, body.group("why"), str(path), number))
    return out


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


def project_config(root: str | Path | None) -> Path | None:
    """The project's ``.squawk.toml`` at ``root``, if there is one."""
    if root is None:
        return None
    path = Path(root) / CONFIG_FILE
    return path if path.is_file() else None


def _config_excluded(config: Path) -> list[str]:
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DbopsError(f"{config} cannot be read: {exc}",
                         hint="fix the file (squawk's config: https://squawkhq.com/docs/cli)") from None
    excluded = data.get("excluded_rules", [])
    if not isinstance(excluded, list) or not all(isinstance(r, str) for r in excluded):
        raise DbopsError(f"{config}: excluded_rules must be a list of rule names",
                         hint='for example: excluded_rules = ["prefer-text-field"]')
    return excluded


def _run(sql: str, argv: list[str], cwd: Path | None) -> list[dict]:
    try:
        proc = subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=60, cwd=cwd, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed("squawk", None, "") from exc
    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
    # squawk exits 1 when it has findings; anything else (or 1 without a report: a config error) is its failure
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not proc.stdout.strip()):
        raise ToolFailed("squawk", proc.returncode, tail,
                         hint="check the project's .squawk.toml" if "onfiguration" in tail else None)
    out = proc.stdout
    try:
        return json.loads(out or "[]")
    except json.JSONDecodeError as exc:
        raise DbopsError(f"squawk printed something that is not JSON: {out[:200]!r}") from exc


def lint_sql(sql: str, *, revision: str | None = None, pg_version: str | None = None,
             config: str | Path | None = None) -> list[Finding]:
    """Squawk's findings for one revision's SQL, classified and filtered (see the module's table).

    ``config`` is the project's ``.squawk.toml`` (:func:`project_config`): passed to squawk, its
    ``excluded_rules`` merged with the moot ones.  Statements squawk cannot parse are blanked and the rest
    linted again (a syntax error hides every other finding of its input); each is a warning.
    """
    if not sql.strip():
        return []
    config = Path(config).resolve() if config else None
    excluded = list(EXCLUDED) + (_config_excluded(config) if config else [])
    argv = [squawk_path(), "--reporter", "json", "--stdin-filepath", f"{revision or 'migration'}.sql",
            "--exclude", ",".join(dict.fromkeys(excluded))]
    if config:
        argv += ["--config", str(config)]
    if pg_version:
        argv += ["--pg-version", pg_version]
    cwd = config.parent if config else None
    statements = _statements(sql)
    raw = _run(sql, argv, cwd)
    unparsed = []
    if any(item.get("rule_name") == SYNTAX_ERROR for item in raw):
        bad = {_statement_at(statements, int(item.get("line", 0))) for item in raw
               if item.get("rule_name") == SYNTAX_ERROR}
        bad.discard(None)
        lines = sql.splitlines()
        for first, last, text in bad:
            unparsed.append((first, text))
            for i in range(first, last + 1):
                lines[i] = ""
        raw = [item for item in _run("\n".join(lines) + "\n", argv, cwd) if item.get("rule_name") != SYNTAX_ERROR]
    created = created_tables(sql)
    findings = [Finding(revision, SYNTAX_ERROR, WARNING, "squawk cannot parse this statement: it was not linted",
                        "check it by hand (or run it in a rehearsal)", first + 1, text)
                for first, text in sorted(unparsed)]
    for item in raw:
        rule = item.get("rule_name") or "?"
        start = int(item.get("line", 0))
        found = _statement_at(statements, start)
        statement = found[2] if found else ""
        table = statement_table(statement)
        if table in IGNORED_TABLES:
            continue
        kind = RULES.get(rule, Rule(WARNING)).kind
        if table in created and (kind == STYLE or not _CREATED.search(statement)):
            continue  # a table this very revision creates: nobody uses it yet, and its style is its own
        if kind == MOOT:
            continue
        alternative = RULES[rule].safer if rule in RULES and kind == ERROR else (item.get("help") or
                                                                                   RULES.get(rule, Rule("")).safer)
        findings.append(Finding(revision, rule, kind, item.get("message") or "", alternative, start + 1, statement))
    return findings


def _statement_at(statements: list[tuple[int, int, str]], line: int) -> tuple[int, int, str] | None:
    return next((s for s in statements if s[0] <= line <= s[1]), None)


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
        where = f"line {f.line}" + (f" ({Path(f.path).name}:{f.source_line})" if f.path and f.source_line else "")
        level = "accepted" if f.accepted else f.level
        lines.append(f"[{level}] {f.revision or '-'} {where}: {f.rule}: {f.message}")
        lines.append(f"    statement:  {' '.join(f.statement.split())[:160]}")
        if f.accepted:
            lines.append(f"    accepted:   {f.accepted}")
        elif f.alternative:
            lines.append(f"    safer:      {f.alternative}")
    errors = sum(f.is_error for f in findings)
    accepted = sum(bool(f.accepted) for f in findings)
    style = sum(f.level == STYLE and not f.accepted for f in findings)
    warnings = len(findings) - errors - accepted - style
    lines.append(f"squawk: {errors} error(s), {warnings} warning(s), {style} style note(s)"
                 + (f", {accepted} accepted" if accepted else ""))
    return "\n".join(lines)
