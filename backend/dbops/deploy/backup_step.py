"""The backup step: hands off to the backup layer (:mod:`dbops.backup`)."""

from __future__ import annotations

from sqlalchemy.engine import URL

from .. import backup
from ..settings import Settings
from ..ui import SILENT, UI


def take(settings: Settings, url: URL, revision: str | None, *, ui: UI = SILENT) -> dict:
    """Stream a backup to BACKUP_URL; returns {key, sha256, size, revision, manifest_key} for the report."""
    r = backup.create_backup(settings, url, ui=ui)
    return {"key": r.key, "sha256": r.sha256, "size": r.size, "revision": r.revision or revision,
            "manifest_key": r.manifest_key}


def store_beside(settings: Settings, backup_info: dict | None, name: str, data: bytes) -> str | None:
    """Store an artifact (dry-run SQL, report) next to the report's backup; None without a backup."""
    return backup.store_beside(settings, str(backup_info["key"]), name, data) if backup_info else None
