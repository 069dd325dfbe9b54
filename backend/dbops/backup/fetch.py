"""The parallel restore's fetch: a backup's archive from the store into scratch space, checked, ready for
``pg_restore --jobs``.

``pg_restore --jobs`` cannot read standard input (it seeks in the archive
from several processes), so a parallel restore needs the archive as a file.
:func:`plan_fetch` picks the folder (``DBOPS_SCRATCH_DIR``, else the temp
folder) and checks its free space first: the stored object, the decrypted
archive when the backup is encrypted, and ``DBOPS_SCRATCH_MIN_FREE_MB`` beside
them; without that room the caller restores in one stream and says why.
:func:`fetched_archive` downloads the object through parallel ranged reads
(:meth:`dbops.storage.Store.download`, hashed in order as the parts arrive),
compares the checksum and size with the manifest *before* pg_restore reads a
byte, decrypts it when the manifest says so (:func:`dbops.backup.crypt.decrypt_file`),
and removes the whole scratch folder at the end, whatever happened (a
failure, Ctrl-C).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import scratch
from ..errors import ChecksumMismatch, NoScratchSpace
from ..settings import Settings
from ..storage import Store
from ..storage.base import FETCH_WORKERS
from ..ui import SILENT, UI
from ..units import human_size, rate
from . import crypt
from .catalog import BackupInfo

MB = 1000 * 1000


@dataclass
class Fetched:
    """The archive in scratch space, checked against the manifest."""

    #: the file pg_restore reads (the decrypted archive when the backup is encrypted)
    path: Path
    #: the stored object's sha256 and size (equal to the manifest's)
    sha256: str
    size: int
    #: seconds of the download (with its checksum) and of the decryption (0: not encrypted)
    fetch_s: float
    decrypt_s: float = 0.0


def space_needed(settings: Settings, info: BackupInfo) -> int:
    """Bytes the fetch needs free: the object, the decrypted archive beside it, and the reserve."""
    manifest = info.manifest
    archive = manifest.archive_size if crypt.is_encrypted(info) else 0
    return manifest.size + archive + settings.scratch_min_free_mb * MB


def plan_fetch(settings: Settings, info: BackupInfo) -> tuple[Path | None, str]:
    """The folder to fetch the archive into, or (None, why not in one line): too little free space there."""
    folder = scratch.scratch_folder(settings.scratch_dir)
    free = scratch.free_bytes(folder)
    need = space_needed(settings, info)
    if free is None:
        return None, f"the scratch folder {folder} cannot be used (missing or unreadable; DBOPS_SCRATCH_DIR)"
    if free < need:
        encrypted = " and its decrypted copy" if crypt.is_encrypted(info) else ""
        return None, (f"{folder} has {human_size(free)} free, the archive{encrypted} needs "
                      f"{human_size(need - settings.scratch_min_free_mb * MB)} plus DBOPS_SCRATCH_MIN_FREE_MB "
                      f"({settings.scratch_min_free_mb} MB) beside it")
    return folder, ""


@contextmanager
def fetched_archive(settings: Settings, store: Store, info: BackupInfo, folder: Path, *,
                    workers: int = FETCH_WORKERS, ui: UI = SILENT) -> Iterator[Fetched]:
    """The backup's archive as a checked file in a private folder under ``folder``, removed at the end.

    Raises :class:`ChecksumMismatch` (nothing restored yet) when the fetched
    bytes differ from the manifest, :class:`NoScratchSpace` when the space
    went meanwhile, a StorageError when the store fails.
    """
    manifest = info.manifest
    stored_size = store.size(info.key)
    if stored_size != manifest.size:
        raise _mismatch(info, f"{stored_size} bytes stored")
    with scratch.temporary_directory("dbops-restore-", purpose=f"fetching {info.key}", dir=folder) as tmp:
        stored = tmp / ("backup.dump.age" if crypt.is_encrypted(info) else "backup.dump")
        _reserve(stored, manifest.size, folder)
        show = ui.progress()
        t0 = time.monotonic()
        try:
            sha, size = store.download(info.key, stored, size=manifest.size, workers=workers,
                                       on_bytes=lambda n: show.update(
                                           f"fetch {info.key}: {rate(n, time.monotonic() - t0)}"))
        finally:
            show.done()
        fetch_s = time.monotonic() - t0
        if sha != manifest.sha256:
            raise _mismatch(info, f"sha256 {sha[:16]}… ({size} bytes)")
        ui.say(f"fetched {info.key}: {rate(size, fetch_s)} ({workers} ranged reads at a time), checksum ok")
        path, decrypt_s = stored, 0.0
        if crypt.is_encrypted(info):
            t1 = time.monotonic()
            path = tmp / "backup.dump"
            crypt.decrypt_file(settings, info, stored, path)
            stored.unlink()
            decrypt_s = time.monotonic() - t1
        yield Fetched(path, sha, size, round(fetch_s, 3), round(decrypt_s, 3))


def _mismatch(info: BackupInfo, actual: str) -> ChecksumMismatch:
    manifest = info.manifest
    return ChecksumMismatch(info.key, f"sha256 {manifest.sha256[:16]}… ({manifest.size} bytes)", actual,
                            hint="the object was changed or damaged after the backup; restore another backup "
                            "(nothing was restored)")


def _reserve(path: Path, size: int, folder: Path) -> None:
    """Allocate the file's blocks up front: a disk that fills meanwhile fails here, before a byte is fetched."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if size:
            os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                return  # a file system without fallocate: the writes find out
            raise
        raise NoScratchSpace(f"the archive ({human_size(size)})", exc.strerror or str(exc), tried=str(folder)) from None
    finally:
        os.close(fd)
