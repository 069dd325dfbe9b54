"""Object storage for backups: :func:`open_store` opens the store a backup location names.

``("s3", bucket, prefix)`` is S3 (:mod:`.s3`), ``("file", folder, "")`` a
folder on disk (:mod:`.folder`); both implement :class:`.base.Store`.  The
location is BACKUP_URL as the settings parse it
(:meth:`dbops.settings.Settings.backup_location`); this package knows nothing
of settings.  The S3 module (and boto3) is imported only when an S3 store is
opened.
"""

from __future__ import annotations

from pathlib import Path

from .base import MAX_PARTS, MiB, ObjectInfo, Store, Upload, Writer, part_size_for

__all__ = ["MAX_PARTS", "MiB", "ObjectInfo", "Store", "Upload", "Writer", "open_store", "part_size_for"]


def open_store(location: tuple[str, str, str], *, endpoint_url: str | None = None, region: str | None = None,
               sse: str | None = None, abort_timeout: float = 60.0) -> Store:
    """The store at ``location`` (kind, bucket or folder, prefix); not contacted yet: call ``check()``.

    ``endpoint_url``, ``region`` and ``sse`` (server-side encryption) are the S3 store's; a folder ignores them.
    """
    kind, where, prefix = location
    if kind == "s3":
        from .s3 import S3Store  # boto3 is imported only for an S3 store

        return S3Store(where, prefix, endpoint_url=endpoint_url, region=region, sse=sse,
                       abort_timeout=abort_timeout)
    from .folder import LocalStore  # beside the S3 import: each store's module only when it is opened

    return LocalStore(Path(where), prefix)
