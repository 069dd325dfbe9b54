"""``inv rehearse``: the pending revisions run on a restored copy of production, traced statement by statement.

:func:`rehearse` restores the newest verified backup (or the one named) into
a throwaway PostgreSQL of the source's major version, or into a scratch
database on ``--server`` (:mod:`.restored_copy`); then runs the pending revisions
there exactly as ``inv deploy`` does (:func:`dbops.migrations.upgrade.run`: the
same ``lock_timeout`` and ``statement_timeout``, one transaction per revision,
autocommit blocks), with the :mod:`.lock_trace` tracer on the connection
(:mod:`.rehearsal`).  From what it measured, :mod:`.findings` says which locks
block the application and for how long, which tables were rewritten or
scanned; Squawk lints the SQL that really ran, per revision.  The copy is
dropped at the end, whatever happened.

``schema_only`` restores the definitions only (``pg_restore --schema-only``):
locks, rewrites and scans are the same, durations are not measured, and table
sizes come from production's catalog (when it is reachable from here) and the
backup's manifest (exact row counts).

The rest, one module per job: :mod:`.model` (the report), :mod:`.policy`
(which backup, whether a deploy rehearses, when it stops), :mod:`.report`
(text, markdown, annotations, the JSON file).
"""

from __future__ import annotations

from .model import RehearsalReport, RevisionRehearsal
from .policy import NOTHING_RAN, choose_backup, deploy_decision, stop_if_unsafe
from .rehearsal import rehearse
from .report import render, show, write_json
from .restored_copy import parse_server

__all__ = [
    "NOTHING_RAN",
    "RehearsalReport",
    "RevisionRehearsal",
    "choose_backup",
    "deploy_decision",
    "parse_server",
    "rehearse",
    "render",
    "show",
    "stop_if_unsafe",
    "write_json",
]
