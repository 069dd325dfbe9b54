"""The backup step: hands off to the backup layer (:mod:`dbops.backup`)."""

from __future__ import annotations

import posixpath

from sqlalchemy.engine import URL

from ..settings import Settings


def take(settings: Settings, url: URL, revision: str | None) -> dict:
    """Stream a backup to BACKUP_URL; returns {key, sha256, size, revision, manifest_key} for the report."""
    from .. import backup

    r = backup.create_backup(settings, url, progress=True)
    return {"key": r.key, "sha256": r.sha256, "size": r.size, "revision": r.revision or revision,
            "manifest_key": r.manifest_key}


def store_beside(settings: Settings, backup_info: dict | None, name: str, data: bytes) -> str | None:
    """Store an artifact (dry-run SQL, report) next to the backup, in the same store; returns its key."""
    if not backup_info:
        return None
    from ..storage import open_store

    target_key = posixpath.join(posixpath.dirname(str(backup_info["key"])), name)
    content_type = "application/json" if name.endswith(".json") else "text/plain"
    open_store(settings).put_bytes(target_key, data, content_type=content_type)
    return target_key
