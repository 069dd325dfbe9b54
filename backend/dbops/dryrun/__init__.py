"""The dry run: the SQL each revision would run (``alembic upgrade prev:rev --sql``), linted by Squawk.

The guide's "dry run" step.  Used by the deploy's dry-run step, by ``inv
lint``, by ``inv rehearse`` (on the SQL it captured) and by ``inv sync`` for
the revision it has just generated.  Nothing here prints but through the UI
it is handed.  One module per job:

- :mod:`.model` — :class:`RevisionSql` (one revision's SQL and where it came from) and :class:`DryRun`;
- :mod:`.offline` — offline rendering, each statement with the line of the revision file that wrote it;
- :mod:`.source` — the line of the operation for captured SQL (a search of ``upgrade()``'s calls), and
  whether ``upgrade()`` does anything (an empty capture of one that does is an error, never "no findings");
- :mod:`.lint` — Squawk on each revision (:func:`lint_revisions`), ``inv lint`` (:func:`lint_pending`),
  ``inv sync``'s hook (:func:`lint_revision_file`);
- :mod:`.report` — ``inv lint``'s text, JSON and markdown and its GitHub annotations.
"""

from __future__ import annotations

from .lint import lint_pending, lint_revision_file, lint_revisions, pending_revisions, revision_id
from .model import CAPTURED, NONE, OFFLINE, DryRun, RevisionSql
from .offline import OFFLINE_URL, captured_sql, render_sql
from .report import findings_text, lint_annotations, lint_report, sql_text
from .source import first_operation, source_line_for

__all__ = [
    "CAPTURED",
    "NONE",
    "OFFLINE",
    "OFFLINE_URL",
    "DryRun",
    "RevisionSql",
    "captured_sql",
    "findings_text",
    "first_operation",
    "lint_annotations",
    "lint_pending",
    "lint_report",
    "lint_revision_file",
    "lint_revisions",
    "pending_revisions",
    "render_sql",
    "revision_id",
    "source_line_for",
    "sql_text",
]
