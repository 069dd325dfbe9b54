"""Squawk, the Postgres migration linter: run on one revision's SQL, its findings classified.

The dry run (:mod:`dbops.dryrun`) hands each revision's SQL over on its own,
so a finding names its revision, and statements on a table created in the
same revision are not findings (squawk knows this for some rules; the rest
are filtered here).  Squawk reports everything as a warning; dbops classes
every rule of squawk 2.70 in one table, :data:`RULES`, its safer way from
:data:`dbops.findings.SAFER`:

========  ====================================================================  =====================
level     meaning                                                               gates a deploy?
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
from dataclasses import dataclass
from pathlib import Path

from .errors import BadAllowComment, DbopsError, ToolFailed
from .findings import ERROR, SAFER, SQUAWK, STYLE, WARNING, Finding

MOOT = "moot"


@dataclass(frozen=True)
class Rule:
    level: str  # error | warning | style | moot
    #: the safer way (from :data:`dbops.findings.SAFER`)
    safer: str = ""


#: every rule squawk 2.70 knows -> its level and the safer way (the one classification table)
RULES: dict[str, Rule] = {
    # -- error: blocks a live table, rewrites / scans it, or loses data ------------------------------------
    "adding-required-field": Rule(ERROR, SAFER["required-column"]),
    "adding-not-nullable-field": Rule(ERROR, SAFER["set-not-null"]),
    "adding-field-with-default": Rule(ERROR, SAFER["volatile-default"]),
    "adding-serial-primary-key-field": Rule(ERROR, SAFER["primary-key-using-index"]),
    "adding-foreign-key-constraint": Rule(ERROR, SAFER["foreign-key-not-valid"]),
    "constraint-missing-not-valid": Rule(ERROR, SAFER["constraint-not-valid"]),
    "disallowed-unique-constraint": Rule(ERROR, SAFER["unique-using-index"]),
    "require-concurrent-index-creation": Rule(ERROR, SAFER["concurrent-index"]),
    "require-concurrent-index-deletion": Rule(ERROR, SAFER["concurrent-index-drop"]),
    "require-concurrent-reindex": Rule(ERROR, SAFER["concurrent-reindex"]),
    "require-concurrent-partition-detach": Rule(ERROR, SAFER["concurrent-detach"]),
    "ban-concurrent-index-creation-in-transaction": Rule(ERROR, SAFER["autocommit-block"]),
    "changing-column-type": Rule(ERROR, SAFER["new-column-type"]),
    "renaming-column": Rule(ERROR, SAFER["rename-column"]),
    "renaming-table": Rule(ERROR, SAFER["rename-table"]),
    "ban-drop-column": Rule(ERROR, SAFER["drop-column"]),
    "ban-drop-table": Rule(ERROR, SAFER["drop-table"]),
    "ban-drop-database": Rule(ERROR, SAFER["drop-database"]),
    "ban-drop-not-null": Rule(ERROR, SAFER["drop-not-null"]),
    "ban-truncate-cascade": Rule(ERROR, SAFER["truncate-cascade"]),
    # -- warning: a safety concern that does not block the table (mostly: the running code may break) ----------
    **{rule: Rule(WARNING, SAFER["code-first"]) for rule in (
        "ban-drop-constraint", "ban-drop-domain", "ban-drop-extension", "ban-drop-function",
        "ban-drop-generated-expression", "ban-drop-index", "ban-drop-policy", "ban-drop-schema", "ban-drop-sequence",
        "ban-drop-type", "ban-drop-view", "ban-set-schema", "renaming-object", "ban-revoke",
    )},
    **{rule: Rule(WARNING, SAFER["running-code"]) for rule in (
        "ban-add-column", "ban-add-composite-attribute", "ban-add-enum-value", "ban-alter-database-options",
        "ban-alter-extension", "ban-alter-function-options", "ban-alter-generated-expression", "ban-alter-identity",
        "ban-alter-policy-condition", "ban-alter-policy-roles", "ban-alter-role-options",
        "ban-alter-row-level-security", "ban-alter-sequence-values", "ban-alter-system-options",
        "ban-alter-view-options", "ban-create-policy", "ban-detach-inheritance", "ban-disable-trigger",
        "ban-new-write-restriction", "ban-replace-view-function", "ban-replica-identity", "ban-set-default",
    )},
    "ban-create-domain-with-constraint": Rule(WARNING, SAFER["domain-check"]),
    "ban-alter-domain-with-add-constraint": Rule(WARNING, SAFER["domain-check"]),
    "identifier-too-long": Rule(WARNING, SAFER["short-name"]),
    "prefer-repack": Rule(WARNING, SAFER["repack"]),
    # -- style: a habit, never a risk to a deploy ----------------------------------------------------------------
    "prefer-bigint-over-int": Rule(STYLE, SAFER["bigint"]),
    "prefer-bigint-over-smallint": Rule(STYLE, SAFER["bigint"]),
    "prefer-identity": Rule(STYLE, SAFER["identity"]),
    "prefer-text-field": Rule(STYLE, SAFER["text-field"]),
    "prefer-timestamp-tz": Rule(STYLE, SAFER["timestamptz"]),
    "ban-char-field": Rule(STYLE, SAFER["char-field"]),
    "require-enum-value-ordering": Rule(STYLE, SAFER["enum-ordering"]),
    "require-table-schema": Rule(STYLE, SAFER["table-schema"]),
    # -- moot: the deploy already does it ------------------------------------------------------------------------
    "prefer-robust-stmts": Rule(MOOT),  # each revision runs in its own transaction: a failed one leaves nothing
    "require-lock-timeout": Rule(MOOT),  # the deploy sets lock_timeout for the session
    "require-statement-timeout": Rule(MOOT),  # the deploy sets statement_timeout for the session
    "require-timeout-settings": Rule(MOOT),  # the deploy sets lock_timeout and statement_timeout
    "transaction-nesting": Rule(MOOT),  # alembic writes the BEGIN/COMMIT of each revision itself
    "ban-uncommitted-transaction": Rule(MOOT),  # alembic commits each revision itself
}

#: rules whose risk the deploy itself removes (never passed to squawk)
EXCLUDED = tuple(rule for rule, r in RULES.items() if r.level == MOOT)
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
    findings = [Finding(SQUAWK, WARNING, SYNTAX_ERROR, "squawk cannot parse this statement: it was not linted",
                        SAFER["unparsed"], revision, sql_line=first + 1, statement=text)
                for first, text in sorted(unparsed)]
    for item in raw:
        rule = item.get("rule_name") or "?"
        start = int(item.get("line", 0))
        found = _statement_at(statements, start)
        statement = found[2] if found else ""
        table = statement_table(statement)
        if table in IGNORED_TABLES:
            continue
        level = RULES.get(rule, Rule(WARNING)).level
        if table in created and (level == STYLE or not _CREATED.search(statement)):
            continue  # a table this very revision creates: nobody uses it yet, and its style is its own
        if level == MOOT:
            continue
        # the rules that stop a deploy get dbops' safer way; the others squawk's own help first
        safer = RULES[rule].safer if rule in RULES and level == ERROR else (item.get("help") or
                                                                            RULES.get(rule, Rule("")).safer)
        findings.append(Finding(SQUAWK, level, rule, item.get("message") or "", safer, revision, sql_line=start + 1,
                                statement=statement))
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


def tally(findings: Sequence[Finding]) -> tuple[int, int, int, int]:
    """(errors, warnings, style notes, accepted) among Squawk's findings."""
    errors = sum(f.is_error for f in findings)
    accepted = sum(bool(f.accepted) for f in findings)
    style = sum(f.level == STYLE and not f.accepted for f in findings)
    return errors, len(findings) - errors - accepted - style, style, accepted


def render_findings(findings: Sequence[Finding]) -> str:
    if not findings:
        return "squawk: no findings"
    lines = []
    for f in findings:
        where = f"line {f.sql_line}" + (f" ({Path(f.file).name}:{f.line})" if f.file and f.line else "")
        level = "accepted" if f.accepted else f.level
        lines.append(f"[{level}] {f.revision or '-'} {where}: {f.kind}: {f.message}")
        lines.append(f"    statement:  {' '.join(f.statement.split())[:160]}")
        if f.accepted:
            lines.append(f"    accepted:   {f.accepted}")
        elif f.safer:
            lines.append(f"    safer:      {f.safer}")
    errors, warnings, style, accepted = tally(findings)
    lines.append(f"squawk: {errors} error(s), {warnings} warning(s), {style} style note(s)"
                 + (f", {accepted} accepted" if accepted else ""))
    return "\n".join(lines)
