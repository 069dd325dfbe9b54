"""Backups that are proven restorable: create, list, prune, restore, verify (``inv backup`` and friends).

One module per job: :mod:`.manifest` (the typed manifest and verification
records), :mod:`.catalog` (keys, listing),
:mod:`.contents` (row counts, the revision), :mod:`.create` (the streamed
backup), :mod:`.restore` with :mod:`.fetch` (the parallel restore's download),
:mod:`.swap` (the in-place swap), :mod:`.verify`, :mod:`.drill` (restore drills, the status check),
:mod:`.prune`.  :mod:`dbops.postgres.dump` runs pg_dump/pg_restore,
:mod:`dbops.storage` talks to S3 or the backup folder.  Each public function
takes the settings first, returns a result dataclass and talks only through
the ``ui`` it is handed; ``tasks.py`` shows the result.
"""

from __future__ import annotations

from .catalog import (
    BackupInfo,
    checked_store,
    find_backup,
    list_backups,
    render_backups,
    store_beside,
    unfinished_uploads,
)
from .contents import alembic_revisions, table_row_counts
from .create import BackupResult, create_backup
from .drill import DrillStatus, check_drills, drill, drill_status
from .manifest import Drill, Manifest, Verification
from .prune import PruneResult, prune_backups, render_prune
from .restore import RestoreResult, restore_backup, restore_client, restore_commands, restore_into
from .verify import VerifyResult, verify_backup

__all__ = [
    "BackupInfo",
    "BackupResult",
    "Drill",
    "DrillStatus",
    "Manifest",
    "PruneResult",
    "RestoreResult",
    "Verification",
    "VerifyResult",
    "alembic_revisions",
    "check_drills",
    "checked_store",
    "create_backup",
    "drill",
    "drill_status",
    "find_backup",
    "list_backups",
    "prune_backups",
    "render_backups",
    "render_prune",
    "restore_backup",
    "restore_client",
    "restore_commands",
    "restore_into",
    "store_beside",
    "table_row_counts",
    "unfinished_uploads",
    "verify_backup",
]
