"""Object storage for backups: the interface every store implements, and part sizes.

Two stores implement it, one module each: :mod:`.s3` (any S3-compatible
store, via boto3) and :mod:`.folder` (a local folder holding the same keys).
Both offer:

- :meth:`Store.open_writer`: a streaming writer (S3 multipart upload with a
  fixed part size and a bounded number of parts in flight; a ``.partial`` file
  renamed into place on disk).  ``complete()`` checks the stored size equals
  the bytes written; ``abort()`` leaves nothing behind.
- :meth:`Store.list`, :meth:`Store.open_read` (a stream), :meth:`Store.open_range`
  (a stream of one byte range), :meth:`Store.put_json`, :meth:`Store.get_json`,
  :meth:`Store.delete`, :meth:`Store.incomplete_uploads`.
- :meth:`Store.download`, built on ``open_range`` here once for every store:
  an object into a local file through parallel ranged reads on a bounded
  thread pool, hashed in order while the parts arrive (the restore's fetch).

Every failure is a :class:`~dbops.errors.StorageError` naming the store, the
operation and the fix.
"""

from __future__ import annotations

import abc
import datetime as dt
import hashlib
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import StorageError
from ..units import MiB

#: S3 rules: parts are 5 MiB..5 GiB (the last may be smaller), at most 10,000 of them
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
#: parts uploading while the next one fills: memory is (1 + this) parts.  One keeps up with pg_dump
#: (compression is the bottleneck) and keeps the backup process under 100 MB; see docs/backups.md
PARTS_IN_FLIGHT = 1
#: the restore's fetch: ranged reads of this size, at most FETCH_WORKERS at a time, each read and written
#: in FETCH_CHUNK pieces (memory: FETCH_WORKERS * FETCH_CHUNK, whatever the object's size)
FETCH_PART = 16 * MiB
FETCH_WORKERS = 4
FETCH_CHUNK = 256 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: dt.datetime


@dataclass(frozen=True)
class Upload:
    """An upload that was started and neither completed nor aborted (a crashed or killed backup)."""

    key: str
    started: dt.datetime
    #: the S3 UploadId; the ``.partial`` file's path for the folder store
    upload_id: str


class Writer(abc.ABC):
    """A streaming upload: ``write`` bytes, then ``complete`` (checked) or ``abort`` (nothing left)."""

    key: str
    bytes_written: int = 0

    @abc.abstractmethod
    def write(self, data: bytes) -> None: ...

    @abc.abstractmethod
    def complete(self) -> int:
        """Finish the upload; return the stored size after checking it equals the bytes written."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard everything written so far. Safe to call twice or after a failure."""


class Store(abc.ABC):
    """Where backups live. Keys are ``/``-separated and relative to the bucket or folder."""

    #: key prefix from BACKUP_URL ("" for none); callers put their keys under it
    prefix: str = ""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where this store is, safe to print (no credentials)."""

    @abc.abstractmethod
    def check(self) -> None:
        """Fail early (StorageError) when the store is unreachable, the bucket is missing or access is denied."""

    @abc.abstractmethod
    def open_writer(self, key: str, *, part_size: int, on_part: Callable[[int, int], None] | None = None) -> Writer: ...

    @abc.abstractmethod
    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every complete object whose key starts with ``prefix``."""

    @abc.abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A stream of the object's bytes (``read(n)``, ``close()``)."""

    @abc.abstractmethod
    def open_range(self, key: str, start: int, end: int) -> BinaryIO:
        """A stream of the object's bytes ``start`` up to (not including) ``end``."""

    @abc.abstractmethod
    def size(self, key: str) -> int | None:
        """The object's size, or None when it does not exist."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None: ...

    def put_if_absent(self, key: str, data: bytes, *, content_type: str = "application/json") -> bool:
        """Write ``key`` only when no object has that key (a claim): True when written, False when it existed.

        One writer wins even when many try at once: S3's conditional write (``If-None-Match: *``), a folder's
        hard link.  A store without one says so rather than pretend."""
        raise NotImplementedError(f"{type(self).__name__} has no conditional write")

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""

    @abc.abstractmethod
    def delete(self, key: str) -> None: ...

    @abc.abstractmethod
    def incomplete_uploads(self, prefix: str) -> list[Upload]:
        """Uploads under ``prefix`` that were started and neither completed nor aborted."""

    @abc.abstractmethod
    def abort_upload(self, upload: Upload) -> None:
        """Discard an incomplete upload (what a killed backup could not clean up itself)."""

    # -- shared helpers ------------------------------------------------------
    def key(self, *parts: str) -> str:
        """A key under this store's prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p and p.strip("/"))

    def names(self, name: str) -> bool:
        """Whether the location already ends in ``name`` (``s3://bucket/prod`` names ``prod``)."""
        return bool(self.prefix) and self.prefix.rstrip("/").rsplit("/", 1)[-1] == name

    def download(self, key: str, path: Path, *, size: int, part_size: int = FETCH_PART,
                 workers: int = FETCH_WORKERS, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
        """Copy the object (``size`` bytes) into the file ``path`` through parallel ranged reads: (sha256, bytes).

        Parts of ``part_size`` are read by at most ``workers`` threads and
        written where they belong (``os.pwrite``); this thread hashes the file
        in order as the parts arrive, so the checksum is ready with the last
        part.  ``on_bytes(total)`` hears of the progress.  Any failure (the
        store gone, a short part, Ctrl-C) stops every worker and raises; the
        caller removes the file.  The object must not be shorter than ``size``.
        """
        return _Download(self, key, path, size, part_size, max(1, workers), on_bytes).run()

    def put_json(self, key: str, data: dict) -> None:
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        self.put_bytes(key, text.encode(), content_type="application/json")

    def get_json(self, key: str) -> dict | None:
        raw = self.get_bytes(key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise StorageError(self.describe(), f"reading {key}", f"not valid JSON ({exc})") from None


class _Download:
    """One :meth:`Store.download`: workers fill parts of the file, the caller's thread hashes them in order."""

    def __init__(self, store: Store, key: str, path: Path, size: int, part_size: int, workers: int,
                 on_bytes: Callable[[int], None] | None):
        self.store, self.key, self.path, self.size = store, key, path, size
        self.parts = [(start, min(start + part_size, size)) for start in range(0, size, part_size)]
        self.workers = min(workers, max(1, len(self.parts)))
        self.on_bytes = on_bytes
        self.done = [False] * len(self.parts)
        self.fetched = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.changed = threading.Condition()

    def run(self) -> tuple[str, int]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fetch")
        try:
            for n in range(len(self.parts)):
                pool.submit(self._part, fd, n)
            return self._hash(fd)
        except BaseException:
            self.stop.set()
            raise
        finally:
            self.stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            os.close(fd)

    def _part(self, fd: int, n: int) -> None:
        start, end = self.parts[n]
        try:
            if self.stop.is_set():
                return
            body = self.store.open_range(self.key, start, end)
            try:
                pos = start
                while pos < end and not self.stop.is_set():
                    chunk = body.read(min(FETCH_CHUNK, end - pos))
                    if not chunk:
                        raise StorageError(self.store.describe(), f"reading {self.key}",
                                           f"the object ended at byte {pos}, {self.size} were expected")
                    os.pwrite(fd, chunk, pos)
                    pos += len(chunk)
                    with self.changed:
                        self.fetched += len(chunk)
                        self.changed.notify_all()
            finally:
                body.close()
            with self.changed:
                self.done[n] = not self.stop.is_set()
                self.changed.notify_all()
        except BaseException as exc:  # handed to the hashing thread
            if isinstance(exc, OSError):
                exc = StorageError(str(self.path), f"writing the fetched {self.key}", exc.strerror or str(exc),
                                   hint="free space there, or set DBOPS_SCRATCH_DIR to a folder with room")
            with self.changed:
                if self.error is None:
                    self.error = exc
                self.stop.set()
                self.changed.notify_all()

    def _hash(self, fd: int) -> tuple[str, int]:
        digest = hashlib.sha256()
        shown = 0
        for n, (start, end) in enumerate(self.parts):
            with self.changed:
                while not self.done[n] and self.error is None:
                    self.changed.wait(timeout=1)
                    if self.on_bytes is not None and self.fetched != shown:
                        shown = self.fetched
                        self.on_bytes(shown)
                if self.error is not None:
                    raise self.error
            pos = start
            while pos < end:
                data = os.pread(fd, min(FETCH_CHUNK * 4, end - pos), pos)
                if not data:
                    raise StorageError(str(self.path), f"hashing the fetched {self.key}", f"the file ends at {pos}")
                digest.update(data)
                pos += len(data)
        if self.on_bytes is not None:
            self.on_bytes(self.size)
        return digest.hexdigest(), self.size


def part_size_for(expected_bytes: int, *, minimum: int = MIN_PART_SIZE) -> int:
    """A fixed part size that keeps ``2 * expected_bytes`` under the 10,000-part limit.

    The expected size is the database size; a custom-format dump is nearly
    always smaller, and the factor 2 leaves room for the rest.  Rounded up to
    whole MiB, at least ``minimum`` (5 MiB, the S3 floor: up to a 25 GB database).
    """
    need = -(-2 * max(expected_bytes, 0) // (MAX_PARTS - 1))
    size = max(minimum, MIN_PART_SIZE, need)
    size = -(-size // MiB) * MiB
    return min(size, MAX_PART_SIZE)
