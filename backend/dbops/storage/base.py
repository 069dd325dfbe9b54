"""Object storage for backups: the interface every store implements, and part sizes.

Two stores implement it, one module each: :mod:`.s3` (any S3-compatible
store, via boto3) and :mod:`.folder` (a local folder holding the same keys).
Both offer:

- :meth:`Store.open_writer`: a streaming writer (S3 multipart upload with a
  fixed part size and a bounded number of parts in flight; a ``.partial`` file
  renamed into place on disk).  ``complete()`` checks the stored size equals
  the bytes written; ``abort()`` leaves nothing behind.
- :meth:`Store.list`, :meth:`Store.open_read` (a stream), :meth:`Store.put_json`,
  :meth:`Store.get_json`, :meth:`Store.delete`, :meth:`Store.incomplete_uploads`.

Every failure is a :class:`~dbops.errors.StorageError` naming the store, the
operation and the fix.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
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
    def size(self, key: str) -> int | None:
        """The object's size, or None when it does not exist."""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None: ...

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
