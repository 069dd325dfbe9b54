"""The backup step: hands off to the backup layer (:mod:`dbops.backup`, issue 4).

Until that layer is merged, a ``file://``/path BACKUP_URL is served by a
plain ``pg_dump -Fc`` here so the pipeline is usable and testable; S3 needs
the backup layer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import URL

from .. import pgtools
from ..errors import ConfigError
from ..settings import Settings


def take(settings: Settings, url: URL, revision: str | None) -> dict:
    """Back up the database; returns {key, sha256, size, revision, manifest_key}."""
    try:
        from .. import backup
    except ImportError:
        backup = None
    if backup is not None and hasattr(backup, "create_backup"):
        r = backup.create_backup(settings, url, progress=True)
        return {
            "key": r.key,
            "sha256": r.sha256,
            "size": r.size,
            "revision": getattr(r, "revision", revision),
            "manifest_key": getattr(r, "manifest_key", None),
        }
    return _file_backup(settings, url, revision)


def local_dir(backup_url: str | None, settings: Settings) -> Path | None:
    """The directory of a file:// or path BACKUP_URL (None for s3:// and others)."""
    if not backup_url:
        return settings.backups_dir
    parts = urlsplit(backup_url)
    if parts.scheme == "file":
        return Path(parts.path)
    if parts.scheme == "":
        return Path(backup_url)
    return None


def _file_backup(settings: Settings, url: URL, revision: str | None) -> dict:
    directory = local_dir(settings.backup_url, settings)
    if directory is None:
        raise ConfigError(
            "BACKUP_URL",
            f"{urlsplit(settings.backup_url or '').scheme}:// backups need the backup layer (dbops.backup)",
            hint="use a file:// BACKUP_URL, or install a dbops with the backup layer",
        )
    directory.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{settings.env}_{stamp}_{revision or 'base'}.dump"
    pgtools.run(
        [str(pgtools.find("pg_dump")), "-Fc", "-f", str(path), *pgtools.conninfo_args(url), pgtools.dbname_arg(url)],
        timeout=3600,
        env=pgtools.libpq_env(url),
    )
    data = path.read_bytes()
    return {"key": str(path), "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "revision": revision,
            "manifest_key": None}


def store_beside(settings: Settings, backup_info: dict | None, name: str, data: bytes) -> str | None:
    """Store an artifact (dry-run SQL, report) next to the backup; returns where, or None.

    Local backups: a file in the backup's folder.  Object storage: the backup
    layer's store (``dbops.storage.open_store``), same prefix as the dump.
    """
    if not backup_info:
        return None
    key = str(backup_info["key"])
    local = Path(key)
    if local.is_absolute() and local.parent.is_dir():
        target = local.parent / name
        target.write_bytes(data)
        return str(target)
    try:
        from ..storage import open_store
    except ImportError:
        return None
    import posixpath

    target_key = posixpath.join(posixpath.dirname(key), name)
    store = open_store(settings)
    content_type = "application/json" if name.endswith(".json") else "text/plain"
    store.put_bytes(target_key, data, content_type=content_type)
    return target_key
