"""Object storage for backups: :func:`open_store` picks the store ``BACKUP_URL`` names.

``s3://bucket/prefix`` is S3 (:mod:`.s3`), ``file:///path`` or a plain path a
folder on disk (:mod:`.folder`); both implement :class:`.base.Store`.  The S3
module (and boto3) is imported only when an S3 store is opened.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..settings import Settings
from .base import MAX_PARTS, MiB, ObjectInfo, Store, Upload, Writer, part_size_for

__all__ = ["MAX_PARTS", "MiB", "ObjectInfo", "Store", "Upload", "Writer", "open_store", "parse_backup_url",
           "part_size_for"]


def parse_backup_url(url: str, *, root: Path | None = None) -> tuple[str, str, str]:
    """(kind, bucket-or-folder, prefix) of a BACKUP_URL: ``s3://b/p``, ``file:///dir`` or a path."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError("BACKUP_URL", "names no bucket", hint="use s3://bucket/prefix")
        if "@" in parts.netloc:
            raise ConfigError("BACKUP_URL", "must not carry credentials",
                              hint="use s3://bucket/prefix and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")
        return "s3", parts.netloc, parts.path.strip("/")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError("BACKUP_URL", f"names the host {parts.netloc!r}; file:// URLs are local paths only",
                              hint=f"use file:///{parts.netloc}{parts.path} (three slashes) for a local path")
        if not parts.path:
            raise ConfigError("BACKUP_URL", "names no folder", hint="use file:///absolute/path")
        return "file", parts.path, ""
    if parts.scheme and len(parts.scheme) > 1:
        raise ConfigError("BACKUP_URL", f"uses the unsupported scheme {parts.scheme!r}",
                          hint="use s3://bucket/prefix, file:///path or a plain path")
    path = Path(url)
    if not path.is_absolute() and root is not None:
        path = root / path
    return "file", str(path), ""


def open_store(settings: Settings, *, abort_timeout: float = 60.0) -> Store:
    """The store for ``settings.backup_url`` (not contacted yet: call ``check()``)."""
    if not settings.backup_url:
        var = f"{settings.env.upper()}_BACKUP_URL"
        raise ConfigError(var, "is not set, so there is nowhere to keep backups",
                          hint=f"export {var}=s3://bucket/prefix (or BACKUP_URL for every environment)")
    kind, where, prefix = parse_backup_url(settings.backup_url, root=settings.root)
    if kind == "s3":
        from .s3 import S3Store  # boto3 is imported only for an S3 store

        return S3Store(where, prefix, endpoint_url=settings.backup_endpoint_url, region=settings.backup_region,
                       sse=settings.backup_sse, abort_timeout=abort_timeout)
    from .folder import LocalStore

    return LocalStore(Path(where), prefix)
