"""The backup step: hands off to the backup layer (:mod:`dbops.backup`)."""

from __future__ import annotations

from sqlalchemy.engine import URL

from .. import backup
from ..settings import Settings
from ..ui import SILENT, UI
from .report import BackupTaken


def take(settings: Settings, url: URL, revision: str | None, *, ui: UI = SILENT) -> BackupTaken:
    """Stream a backup to BACKUP_URL; returns what the report records of it."""
    r = backup.create_backup(settings, url, ui=ui)
    return BackupTaken(key=r.key, sha256=r.sha256, size=r.size, revision=r.revision or revision,
                       manifest_key=r.manifest_key)


def store_beside(settings: Settings, taken: BackupTaken | None, name: str, data: bytes) -> str | None:
    """Store an artifact (dry-run SQL, report) next to the run's backup; None without a backup."""
    return backup.store_beside(settings, taken.key, name, data) if taken else None
