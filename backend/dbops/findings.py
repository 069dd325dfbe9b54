"""One finding, whoever found it: Squawk on a revision's SQL, the rehearsal on a copy, compat on the old code.

:class:`Finding` is the one record the three producers create
(:func:`dbops.squawk.lint_sql`, :mod:`dbops.rehearse.findings`,
:mod:`dbops.compat.findings`) and every report reads: text, markdown, JSON
(:meth:`Finding.to_dict`, each source under the keys its JSON has always had)
and a GitHub annotation (:meth:`Finding.annotation`).

:data:`SAFER` is the one table of advice: the safer way to make each kind of
change.  Squawk's rules (:data:`dbops.squawk.RULES`), the rehearsal's statement
shapes and compat's expand/contract sequences all take their words from it,
so the same change gets the same advice wherever it is found.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .annotations import Annotation, repo_path

#: who found it
SQUAWK, REHEARSE, COMPAT = "squawk", "rehearse", "compat"
#: levels: an error stops a deploy (unless accepted); a warning and a style note never do
ERROR, WARNING, STYLE = "error", "warning", "style"
#: the level of a rehearsal's Squawk finding that an allow comment accepts
ACCEPTED = "accepted"

#: the mark of each level in a markdown table
MARKS = {ERROR: "✘ error", WARNING: "! warning", STYLE: "· style", ACCEPTED: "✔ accepted"}

_AUTOCOMMIT = "inside `with op.get_context().autocommit_block():`"
_VALIDATE = ("op.execute('ALTER TABLE ... VALIDATE CONSTRAINT ...') in a separate revision (SHARE UPDATE EXCLUSIVE: "
             "blocks no query)")
_EXPAND_CONTRACT = "release code that no longer depends on it first (expand/contract)"
_RUNNING_CODE = "check that the running code copes with the change before the deploy"

#: the safer way, one text per kind of change ("{name}" fields are filled in by the one who found it)
SAFER: dict[str, str] = {
    # -- locks, rewrites and scans: Squawk's error rules and the rehearsal's statement shapes --------------------
    "concurrent-index": f"op.create_index(..., postgresql_concurrently=True) {_AUTOCOMMIT} (SHARE UPDATE EXCLUSIVE: "
                        "blocks no query)",
    "concurrent-index-drop": f"op.drop_index(..., postgresql_concurrently=True) {_AUTOCOMMIT}",
    "concurrent-reindex": f"REINDEX ... CONCURRENTLY {_AUTOCOMMIT}",
    "concurrent-detach": f"ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY {_AUTOCOMMIT}",
    "autocommit-block": f"run CONCURRENTLY operations {_AUTOCOMMIT}",
    "foreign-key-not-valid": (f"add the foreign key with postgresql_not_valid=True (no scan, a brief lock), then "
                              f"{_VALIDATE}"),
    "constraint-not-valid": f"add the constraint NOT VALID (postgresql_not_valid=True: no scan), then {_VALIDATE}",
    "set-not-null": ("add CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT it in a later revision (SHARE UPDATE "
                     "EXCLUSIVE: blocks no query), then SET NOT NULL: PostgreSQL 12+ uses the validated check and "
                     "skips the scan"),
    "required-column": ("add the column nullable (or with a constant DEFAULT), backfill in batches, then add a CHECK "
                        "(col IS NOT NULL) NOT VALID constraint, VALIDATE it, and SET NOT NULL in a later revision"),
    "unique-using-index": (f"CREATE UNIQUE INDEX CONCURRENTLY {_AUTOCOMMIT}, then ALTER TABLE ... ADD CONSTRAINT ... "
                           "UNIQUE USING INDEX"),
    "primary-key-using-index": ("create a unique index CONCURRENTLY first, then ALTER TABLE ... ADD PRIMARY KEY "
                                "USING INDEX"),
    "new-column-type": ("add a new column of the new type, backfill it in batches, move readers and writers, drop the "
                        "old column in a later release"),
    "volatile-default": ("add the column without the volatile default (a constant default or none: no rewrite), SET "
                         "DEFAULT for new rows, then backfill the old rows in batches, each batch its own transaction"),
    "batches": ("backfill in batches (a few thousand rows per transaction) from a script or separate revisions, so no "
                "lock is held for long"),
    "own-revision": ("the {mode} lock is held until the revision commits: put this statement in a revision of its own "
                     "so the slow statements after it run without the lock"),
    "split-change": "split the change so that no blocking lock covers a full-table rewrite or scan",
    "truncate-cascade": "delete the rows explicitly, table by table",
    "repack": "rewrite the table online (pg_repack) instead of VACUUM FULL / CLUSTER",
    # -- the running code: drops, renames and narrower columns (expand/contract) --------------------------------
    "rename-column": "add the new column, write both, move readers, drop the old one in a later release",
    "rename-table": "create the new table (or a view with the new name), move readers, drop the old one later",
    "drop-column": ("first release code that no longer uses the column, then drop it in a later revision "
                    "(expand/contract)"),
    "drop-table": "first release code that no longer uses the table, then drop it in a later revision",
    "drop-database": "never drop a database from a migration",
    "drop-not-null": "keep NOT NULL; release code that tolerates NULLs before relaxing it",
    "code-first": _EXPAND_CONTRACT,
    "running-code": _RUNNING_CODE,
    "domain-check": "use column CHECK constraints (added NOT VALID) instead of a domain constraint",
    "short-name": "PostgreSQL truncates names to 63 bytes: choose a shorter name",
    # compat: the serving code's model on the new schema, step by step
    "compat-drop-table": ("expand/contract: (1) deploy code that no longer uses {model} (for a rename: code that "
                          "reads and writes the new table, kept in step with the old one by the code or a trigger), "
                          "(2) copy the rows over, (3) drop or rename {table} in a later revision, once no running "
                          "code maps it"),
    "compat-drop-column": ("expand/contract: (1) add the new column (for a rename) and deploy code that writes both "
                           "and no longer reads {model} (or drops the attribute), (2) backfill the new column, (3) "
                           "drop or rename {table}.{column} in a later revision, once no running code maps it"),
    "compat-narrowed": ("expand/contract: (1) add a new {type} column (nullable), (2) deploy code that writes both "
                        "and keeps values within {type}, (3) backfill it, checking every row fits, (4) deploy code "
                        "that reads only the new column, (5) drop {table}.{column} in a later revision"),
    "compat-set-not-null": ("expand/contract: (1) deploy code that always writes {model} (or add a server default), "
                            "(2) backfill the NULL rows, (3) then SET NOT NULL in a later revision (ADD CONSTRAINT … "
                            "CHECK ({column} IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, SET NOT NULL)"),
    "compat-new-not-null": ("expand/contract: (1) add {table}.{column} nullable (or with a server default), (2) "
                            "deploy code that writes it, (3) backfill existing rows, (4) then SET NOT NULL in a later "
                            "revision (ADD CONSTRAINT … CHECK ({column} IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, "
                            "SET NOT NULL)"),
    # -- a statement that failed or could not be linted ----------------------------------------------------------
    "failed": "fix the revision (the copy has production's data: constraints, duplicates, NULLs)",
    "failed-schema-only": ("rehearse on a full copy (without --schema-only) to tell; the revisions after it were not "
                           "rehearsed"),
    "upgrade-failed": "fix the revision",
    "unparsed": "check it by hand (or run it in a rehearsal)",
    # -- style: a habit, never a risk to a deploy ----------------------------------------------------------------
    "bigint": "sa.BigInteger() for ids and counters",
    "identity": "sa.Identity() instead of serial",
    "text-field": "sa.Text() with a CHECK constraint on the length",
    "timestamptz": "sa.DateTime(timezone=True)",
    "char-field": "sa.Text() (or sa.String() without a length)",
    "enum-ordering": "ADD VALUE ... BEFORE/AFTER to place the new label",
    "table-schema": "schema-qualified names (opt-in rule)",
}

#: the JSON keys of each source's findings (as they have always been): key -> attribute
_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    SQUAWK: (("revision", "revision"), ("rule", "kind"), ("level", "level"), ("message", "message"),
             ("alternative", "safer"), ("line", "sql_line"), ("statement", "statement"), ("path", "file"),
             ("source_line", "line"), ("accepted", "accepted")),
    REHEARSE: (("level", "level"), ("kind", "kind"), ("revision", "revision"), ("file", "file"), ("line", "line"),
               ("message", "message"), ("safer", "safer"), ("statement", "statement"), ("table", "table"),
               ("held_s", "held_s")),
    COMPAT: (("kind", "kind"), ("model", "model"), ("table", "table"), ("column", "column"), ("message", "message"),
             ("fix", "safer"), ("revision", "revision"), ("file", "file")),
}


@dataclass
class Finding:
    """What one check found in one revision, where, and the safer way."""

    #: squawk | rehearse | compat
    source: str
    #: error | warning | style (squawk) | accepted (a rehearsal's Squawk finding an allow comment accepts)
    level: str
    #: squawk: the rule; rehearse: lock | rewrite | scan | failed | squawk:<rule>; compat: what breaks
    kind: str
    message: str
    #: the safer way (from :data:`SAFER`, or the advice Squawk gives)
    safer: str = ""
    revision: str | None = None
    #: the revision file, and the line in it of the operation (when known)
    file: str | None = None
    line: int | None = None
    #: the SQL statement, and (squawk) its 1-based line in the revision's SQL
    statement: str = ""
    sql_line: int | None = None
    #: the reason of the revision's ``# dbops: allow <rule>: <why>`` comment: an accepted finding never gates
    accepted: str | None = None
    #: the table (rehearse, compat), the column and the model mapping it (compat)
    table: str | None = None
    column: str | None = None
    model: str | None = None
    #: how long the blocking lock was held (rehearse)
    held_s: float | None = None

    @property
    def is_error(self) -> bool:
        """An error that stops a deploy: error level and not accepted by an allow comment."""
        return self.level == ERROR and not self.accepted

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return self.kind, self.table, self.column

    def where(self) -> str:
        """``file:line`` of the operation, or ``(alembic)`` for a statement of alembic's own."""
        if self.file:
            return f"{self.file}:{self.line}"
        return "(alembic)"

    def mark(self) -> str:
        """The level as a markdown table shows it (an accepted finding as accepted)."""
        level = ACCEPTED if self.accepted else self.level
        return MARKS.get(level, level)

    def annotation(self, root: str | Path | None = None, *, file: str | None = None) -> Annotation:
        """The GitHub annotation on the revision file (``file`` when the finding has none; else ``<revision>.sql``)
        at the operation's line: errors and warnings as such, style and accepted ones as notices."""
        level = self.level if self.level in (ERROR, WARNING) and not self.accepted else "notice"
        text = self.message
        if self.statement:
            text += "\nstatement: " + " ".join(self.statement.split())
        if self.accepted:
            text += f"\naccepted: {self.accepted}"
        elif self.safer:
            text += f"\nsafer: {self.safer}"
        path = self.file or file
        return Annotation(level, repo_path(path, root) if path else f"{self.revision}.sql", self.line or self.sql_line,
                          f"{self.source} {self.kind} ({self.revision})", text)

    def to_dict(self) -> dict:
        return {key: getattr(self, name) for key, name in _KEYS[self.source]}
