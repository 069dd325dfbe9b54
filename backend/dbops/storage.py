"""Object storage for backups: S3 (any S3-compatible store, via boto3) or a local folder.

One interface, two stores.  :func:`open_store` picks one from ``BACKUP_URL``:
``s3://bucket/prefix`` is S3, ``file:///path`` or a plain path is a folder on
disk holding the same keys.  Both offer:

- :meth:`Store.open_writer`: a streaming writer (S3 multipart upload with a
  fixed part size and a bounded number of parts in flight; a ``.partial`` file
  renamed into place on disk).  ``complete()`` checks the stored size equals
  the bytes written; ``abort()`` leaves nothing behind.
- :meth:`Store.list`, :meth:`Store.open_read` (a stream), :meth:`Store.put_json`,
  :meth:`Store.get_json`, :meth:`Store.delete`, :meth:`Store.incomplete_uploads`.

Every failure is a :class:`~dbops.errors.StorageError` naming the store, the
operation and the fix.  Credentials come from boto3's standard chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles, instance roles)
and are never part of a message.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from .errors import ConfigError, StorageError
from .settings import Settings

log = logging.getLogger(__name__)

MiB = 1024 * 1024
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

    def put_json(self, key: str, data: dict) -> None:
        self.put_bytes(key, json.dumps(data, indent=2, sort_keys=True).encode() + b"\n", content_type="application/json")

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


# ---------------------------------------------------------------------------
# local folder
# ---------------------------------------------------------------------------
PARTIAL = ".partial"


class LocalStore(Store):
    """Backups as files under a folder; the same keys as on S3."""

    def __init__(self, root: Path, prefix: str = ""):
        self.root = Path(root).resolve()
        self.prefix = prefix.strip("/")

    def describe(self) -> str:
        return str(self.root)

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
        return _FileWriter(self, key, self._path(key))

    def list(self, prefix: str) -> list[ObjectInfo]:
        base = self._path(prefix) if prefix else self.root
        # prefix may end inside a name ("x/2024"): walk its folder, filter by key
        folder = base if base.is_dir() else base.parent
        if not folder.is_dir():
            return []
        out = []
        for path in folder.rglob("*"):
            if not path.is_file() or path.name.endswith(PARTIAL):
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                st = path.stat()
                out.append(ObjectInfo(key, st.st_size, dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc)))
        return sorted(out, key=lambda o: o.key)

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError:
            raise StorageError(self.describe(), f"reading {key}", "no such backup",
                               hint="see `inv backups --env ENV` for the available keys") from None

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + PARTIAL)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def incomplete_uploads(self, prefix: str) -> list[Upload]:
        folder = self._path(prefix) if prefix else self.root
        folder = folder if folder.is_dir() else folder.parent
        if not folder.is_dir():
            return []
        out = []
        for p in folder.rglob("*" + PARTIAL):
            key = p.relative_to(self.root).as_posix()[: -len(PARTIAL)]
            if p.is_file() and key.startswith(prefix):
                started = dt.datetime.fromtimestamp(p.stat().st_mtime, dt.timezone.utc)
                out.append(Upload(key, started, str(p)))
        return sorted(out, key=lambda u: u.key)

    def abort_upload(self, upload: Upload) -> None:
        path = self._path(upload.key + PARTIAL)
        if str(path) != upload.upload_id:
            raise StorageError(self.describe(), f"aborting {upload.key}", "the upload is not this store's")
        path.unlink(missing_ok=True)


class _FileWriter(Writer):
    def __init__(self, store: LocalStore, key: str, path: Path):
        self.store = store
        self.key = key
        self.path = path
        self.tmp = path.with_name(path.name + PARTIAL)
        self.bytes_written = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: BinaryIO | None = open(self.tmp, "wb")

    def write(self, data: bytes) -> None:
        assert self._fh is not None, "write after complete/abort"
        try:
            self._fh.write(data)
        except OSError as exc:
            raise StorageError(self.store.describe(), f"writing {self.key}", exc.strerror or str(exc)) from None
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


# ---------------------------------------------------------------------------
# S3
# ---------------------------------------------------------------------------
_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken", "403"}
_MISSING_BUCKET = {"NoSuchBucket"}


class S3Store(Store):
    """An S3 bucket (AWS or any S3-compatible store) through boto3."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        sse: str | None = "AES256",
        abort_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.sse = sse
        self.abort_timeout = abort_timeout
        config = Config(
            # non-AWS stores reject or mangle the newer default checksums
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=PARTS_IN_FLIGHT + 2,
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        self.client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region, config=config)

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    # -- errors --------------------------------------------------------------
    def error(self, operation: str, exc: BaseException) -> StorageError:
        """A StorageError that says what failed and how to fix it (never a credential)."""
        from botocore.exceptions import (
            ClientError,
            ConnectionClosedError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        where = self.describe()
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return StorageError(where, operation, "no AWS credentials found",
                                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)")
        if isinstance(exc, (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError)):
            return StorageError(where, operation, f"the store is unreachable ({type(exc).__name__})",
                                hint="check AWS_ENDPOINT_URL_S3 / the network, and that the store is running")
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", "?"))
            message = str(err.get("Message", "")) or code
            if code in _AUTH_CODES:
                return StorageError(where, operation, f"access denied ({code}: {message})",
                                    hint="check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and the key's "
                                    f"permissions on bucket {self.bucket}")
            if code in _MISSING_BUCKET or (code in ("404", "NotFound") and operation.startswith("checking bucket")):
                return StorageError(where, operation, f"bucket {self.bucket!r} does not exist",
                                    hint=f"create bucket {self.bucket!r} or fix the bucket in BACKUP_URL")
            if code in ("InvalidArgument", "NotImplemented", "InvalidEncryptionAlgorithmError") and self.sse:
                return StorageError(where, operation, f"{code}: {message}",
                                    hint="if the store rejects server-side encryption, set BACKUP_SSE=off")
            return StorageError(where, operation, f"{code}: {message}")
        return StorageError(where, operation, f"{type(exc).__name__}: {exc}")

    def _call(self, operation: str, fn: Callable, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self.error(operation, exc) from None

    def _sse_args(self) -> dict:
        return {"ServerSideEncryption": self.sse} if self.sse else {}

    # -- interface -------------------------------------------------------------
    def check(self) -> None:
        self._call(f"checking bucket {self.bucket}", self.client.head_bucket, Bucket=self.bucket)

    def open_writer(self, key: str, *, part_size: int, on_part: Callable[[int, int], None] | None = None) -> Writer:
        return _MultipartWriter(self, key, part_size, on_part)

    def list(self, prefix: str) -> list[ObjectInfo]:
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    out.append(ObjectInfo(obj["Key"], int(obj["Size"]), obj["LastModified"]))
        except (BotoCoreError, ClientError) as exc:
            raise self.error(f"listing {prefix or '/'}", exc) from None
        return sorted(out, key=lambda o: o.key)

    def open_read(self, key: str) -> BinaryIO:
        resp = self._call(f"reading {key}", self.client.get_object, Bucket=self.bucket, Key=key)
        return _S3Body(self, key, resp["Body"])

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self.error(f"reading {key}", exc) from None
        except Exception as exc:  # BotoCoreError
            raise self.error(f"reading {key}", exc) from None

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        self._call(f"writing {key}", self.client.put_object, Bucket=self.bucket, Key=key, Body=data,
                   ContentType=content_type, **self._sse_args())

    def get_bytes(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self.error(f"reading {key}", exc) from None
        except Exception as exc:
            raise self.error(f"reading {key}", exc) from None

    def delete(self, key: str) -> None:
        self._call(f"deleting {key}", self.client.delete_object, Bucket=self.bucket, Key=key)

    def incomplete_uploads(self, prefix: str) -> list[Upload]:
        from botocore.exceptions import BotoCoreError, ClientError

        out = []
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket,
                                                                                     Prefix=prefix):
                for u in page.get("Uploads", []) or []:
                    out.append(Upload(u["Key"], u["Initiated"], u["UploadId"]))
        except (BotoCoreError, ClientError) as exc:
            raise self.error("listing multipart uploads", exc) from None
        return sorted(out, key=lambda u: u.key)

    def abort_upload(self, upload: Upload) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload.key, UploadId=upload.upload_id)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) not in ("NoSuchUpload", "404"):
                raise self.error(f"aborting the upload of {upload.key}", exc) from None
        except Exception as exc:
            raise self.error(f"aborting the upload of {upload.key}", exc) from None


class _S3Body:
    """The body of a GET, with errors turned into StorageError."""

    def __init__(self, store: S3Store, key: str, body):
        self.store, self.key, self.body = store, key, body

    def read(self, n: int = -1) -> bytes:
        try:
            return self.body.read(n if n >= 0 else None)
        except Exception as exc:
            raise self.store.error(f"reading {self.key}", exc) from None

    def close(self) -> None:
        self.body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _MultipartWriter(Writer):
    """A multipart upload with fixed-size parts, at most PARTS_IN_FLIGHT uploading while the next one fills."""

    def __init__(self, store: S3Store, key: str, part_size: int, on_part: Callable[[int, int], None] | None):
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part size {part_size} outside {MIN_PART_SIZE}..{MAX_PART_SIZE}")
        self.store = store
        self.key = key
        self.part_size = part_size
        self.on_part = on_part
        self.bytes_written = 0
        self._part: bytearray | None = None  # the part being filled, allocated once at its full size
        self._buffered = 0
        self._parts: dict[int, str] = {}
        self._futures: list[Future] = []
        self._slots = threading.Semaphore(PARTS_IN_FLIGHT)
        self._error: BaseException | None = None
        self._pool = ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        self._done = False
        resp = store._call(
            f"starting the upload of {key}",
            store.client.create_multipart_upload,
            Bucket=store.bucket,
            Key=key,
            ContentType="application/octet-stream",
            **store._sse_args(),
        )
        self.upload_id = resp["UploadId"]

    # -- filling parts -------------------------------------------------------
    def write(self, data: bytes) -> None:
        self._raise_pending()
        self.bytes_written += len(data)
        view = memoryview(data)
        while view:
            if self._part is None:
                self._part = bytearray(self.part_size)
            n = min(len(view), self.part_size - self._buffered)
            self._part[self._buffered : self._buffered + n] = view[:n]
            self._buffered += n
            view = view[n:]
            if self._buffered == self.part_size:
                self._flush_part()

    def _flush_part(self) -> None:
        """Hand the filled buffer (no copy) to an uploader; the last, short part is trimmed in place."""
        part = self._part if self._part is not None else bytearray()
        del part[self._buffered :]
        self._part = None
        self._buffered = 0
        self._submit(part)

    def _submit(self, body: bytearray) -> None:
        number = len(self._futures) + 1
        if number > MAX_PARTS:
            raise StorageError(self.store.describe(), f"uploading {self.key}",
                               f"the dump outgrew {MAX_PARTS} parts of {self.part_size // MiB} MiB",
                               hint="the database grew past its estimate; run the backup again (it re-estimates)")
        # blocks while PARTS_IN_FLIGHT parts are uploading: memory stays bounded
        while not self._slots.acquire(timeout=1):
            self._raise_pending()
        self._raise_pending()
        self._futures.append(self._pool.submit(self._upload, number, body))

    def _upload(self, number: int, body: bytearray) -> None:
        try:
            if self._error is not None:
                return
            resp = self.store._call(
                f"uploading part {number} of {self.key}",
                self.store.client.upload_part,
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=body,
            )
            self._parts[number] = resp["ETag"]
            if self.on_part is not None:
                self.on_part(number, len(body))
        except BaseException as exc:  # noqa: BLE001 - handed to the writing thread
            if self._error is None:
                self._error = exc
        finally:
            self._slots.release()

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    # -- finishing -------------------------------------------------------------
    def complete(self) -> int:
        self._raise_pending()
        if self._buffered or not self._futures:
            self._flush_part()
        for fut in self._futures:
            fut.result()
        self._pool.shutdown(wait=True)
        self._raise_pending()
        parts = [{"PartNumber": n, "ETag": self._parts[n]} for n in sorted(self._parts)]
        self.store._call(
            f"completing the upload of {self.key}",
            self.store.client.complete_multipart_upload,
            Bucket=self.store.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": parts},
        )
        self._done = True
        size = self.store.size(self.key)
        if size != self.bytes_written:
            self.store.delete(self.key)
            raise StorageError(
                self.store.describe(), f"checking {self.key}",
                f"the stored object has {size} bytes but {self.bytes_written} were streamed; it was deleted",
                hint="run the backup again; if it repeats, the store is dropping data",
            )
        return size

    def abort(self) -> None:
        """Abort the multipart upload, retrying for ``abort_timeout`` seconds if the store is down."""
        if self._done:
            return
        self._done = True
        if self._error is None:
            self._error = StorageError(self.store.describe(), f"uploading {self.key}", "aborted")
        self._pool.shutdown(wait=True, cancel_futures=True)
        try:
            for attempt in Retrying(
                stop=stop_after_delay(self.store.abort_timeout),
                wait=wait_exponential(multiplier=0.2, max=5),
                retry=retry_if_exception_type(StorageError),
                reraise=True,
            ):
                with attempt:
                    self._abort_once()
        except StorageError as exc:
            raise StorageError(
                self.store.describe(), f"aborting the upload of {self.key}", exc.reason,
                hint=f"an incomplete multipart upload ({self.key}) may be left; remove it with "
                "`aws s3api abort-multipart-upload` or a bucket lifecycle rule",
            ) from None

    def _abort_once(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.store.client.abort_multipart_upload(Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("NoSuchUpload", "404"):
                return
            raise self.store.error(f"aborting the upload of {self.key}", exc) from None
        except Exception as exc:
            raise self.store.error(f"aborting the upload of {self.key}", exc) from None


# ---------------------------------------------------------------------------
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
        return S3Store(where, prefix, endpoint_url=settings.backup_endpoint_url, region=settings.backup_region,
                       sse=settings.backup_sse, abort_timeout=abort_timeout)
    return LocalStore(Path(where), prefix)
