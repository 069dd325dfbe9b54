"""A local folder as a backup store: the same keys as on S3, files written via ``.partial`` and renamed."""

from __future__ import annotations

import datetime as dt
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..errors import StorageError
from .base import ObjectInfo, Store, Upload, Writer

PARTIAL = ".partial"


class LocalStore(Store):
    """Backups as files under a folder; the same keys as on S3."""

    def __init__(self, root: Path, prefix: str = ""):
        self.root = Path(root).resolve()
        self.prefix = prefix.strip("/")

    def describe(self) -> str:
        return str(self.root)

    def names(self, name: str) -> bool:
        """Whether the folder (or the prefix in it) already ends in ``name`` (``/srv/backups/prod`` names ``prod``)."""
        return super().names(name) if self.prefix else self.root.name == name

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root != path and self.root not in path.parents:
            raise StorageError(self.describe(), f"using key {key!r}", "the key leaves the backup folder")
        return path

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                self.describe(), "creating the backup folder", exc.strerror or str(exc),
                hint="set BACKUP_URL to a writable folder or an s3:// URL",
            ) from None
        if not os.access(self.root, os.W_OK):
            raise StorageError(self.describe(), "writing", "the folder is not writable",
                               hint="fix its permissions or set BACKUP_URL to another folder")

    def open_writer(self, key: str, *, part_size: int, on_part: Callable[[int, int], None] | None = None) -> Writer:
        try:
            return _FileWriter(self, key, self._path(key))
        except OSError as exc:
            raise _failed(self, f"writing {key}", exc) from None

    def _folder(self, prefix: str) -> Path | None:
        """The folder to walk for keys under ``prefix`` (which may end inside a name: "x/2024"); None: none."""
        base = self._path(prefix) if prefix else self.root
        folder = base if base.is_dir() else base.parent
        return folder if folder.is_dir() else None

    def list(self, prefix: str) -> list[ObjectInfo]:
        folder = self._folder(prefix)
        if folder is None:
            return []
        out = []
        for path in folder.rglob("*"):
            if not path.is_file() or path.name.endswith(PARTIAL):
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                st = path.stat()
                out.append(ObjectInfo(key, st.st_size, dt.datetime.fromtimestamp(st.st_mtime, dt.UTC)))
        return sorted(out, key=lambda o: o.key)

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise StorageError(self.describe(), f"reading {key}", "no such backup",
                               hint="see `inv backups --env ENV` for the available keys") from None

    def open_range(self, key: str, start: int, end: int) -> BinaryIO:
        body = self.open_read(key)
        body.seek(start)
        return _Slice(body, end - start)  # type: ignore[return-value]

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        """Write ``key`` whole or not at all: via a ``.partial`` file, removed again when the write fails."""
        path = self._path(key)
        tmp = path.with_name(path.name + PARTIAL)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _failed(self, f"writing {key}", exc) from None

    def put_if_absent(self, key: str, data: bytes, *, content_type: str = "application/json") -> bool:
        """The bytes written whole to a private file, then hard-linked to the key: the link fails when it exists."""
        path = self._path(key)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}{PARTIAL}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            return True
        except OSError as exc:
            raise _failed(self, f"writing {key} (if absent)", exc) from None
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _failed(self, f"reading {key}", exc) from None

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise _failed(self, f"deleting {key}", exc) from None

    def incomplete_uploads(self, prefix: str) -> list[Upload]:
        folder = self._folder(prefix)
        if folder is None:
            return []
        out = []
        for p in folder.rglob("*" + PARTIAL):
            key = p.relative_to(self.root).as_posix()[: -len(PARTIAL)]
            if p.is_file() and key.startswith(prefix):
                started = dt.datetime.fromtimestamp(p.stat().st_mtime, dt.UTC)
                out.append(Upload(key, started, str(p)))
        return sorted(out, key=lambda u: u.key)

    def abort_upload(self, upload: Upload) -> None:
        path = self._path(upload.key + PARTIAL)
        if str(path) != upload.upload_id:
            raise StorageError(self.describe(), f"aborting {upload.key}", "the upload is not this store's")
        path.unlink(missing_ok=True)


def _failed(store: LocalStore, operation: str, exc: OSError) -> StorageError:
    """An OSError of the folder as a StorageError: what failed, why (no space, permission), how to fix it."""
    why = exc.strerror or str(exc)
    hint = ("free space in the backup folder, or set BACKUP_URL to another folder or an s3:// URL"
            if exc.errno == errno.ENOSPC else "fix the folder's permissions or set BACKUP_URL to another folder")
    return StorageError(store.describe(), operation, why, hint=hint)


class _Slice:
    """``limit`` bytes of an open file from where it stands (one ranged read)."""

    def __init__(self, fh: BinaryIO, limit: int):
        self.fh, self.left = fh, limit

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.fh.close()


class _FileWriter(Writer):
    def __init__(self, store: LocalStore, key: str, path: Path):
        self.store = store
        self.key = key
        self.path = path
        self.tmp = path.with_name(path.name + PARTIAL)
        self.bytes_written = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: BinaryIO | None = open(self.tmp, "wb")  # noqa: SIM115 - open until complete() or abort()

    def write(self, data: bytes) -> None:
        assert self._fh is not None, "write after complete/abort"
        try:
            self._fh.write(data)
        except OSError as exc:
            raise _failed(self.store, f"writing {self.key}", exc) from None
        self.bytes_written += len(data)

    def complete(self) -> int:
        assert self._fh is not None, "complete after abort"
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
            size = self.tmp.stat().st_size
            if size != self.bytes_written:
                raise StorageError(self.store.describe(), f"writing {self.key}",
                                   f"the file holds {size} bytes, {self.bytes_written} were written")
            self.tmp.replace(self.path)
        except OSError as exc:
            self.abort()
            raise StorageError(self.store.describe(), f"writing {self.key}", exc.strerror or str(exc)) from None
        except StorageError:
            self.abort()
            raise
        return size

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.tmp.unlink(missing_ok=True)
