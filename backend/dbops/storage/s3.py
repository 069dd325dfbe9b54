"""An S3 bucket as a backup store (AWS or any S3-compatible store), through boto3.

The multipart upload (:class:`MultipartWriter`) streams fixed-size parts with
a bounded number in flight, so memory is bounded by the parts, not by the
dump.  Every botocore error becomes a :class:`~dbops.errors.StorageError`
that says what failed and how to fix it.  Credentials come from boto3's
standard chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles,
instance roles) and are never part of a message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from ..errors import StorageError
from .base import (
    FETCH_WORKERS,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    PARTS_IN_FLIGHT,
    MiB,
    ObjectInfo,
    Store,
    Upload,
    Writer,
)


def _code(exc: BaseException) -> str:
    """The error code of a botocore ClientError ("" for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


_RAISE = object()
#: codes meaning "no such object / upload": an answer, not a failure
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
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
            # the upload's parts in flight, or the restore's ranged reads, and one request beside them
            max_pool_connections=max(PARTS_IN_FLIGHT, FETCH_WORKERS) + 2,
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

    def call(self, operation: str, fn: Callable, *, missing: object = _RAISE, **kwargs):
        """``fn(**kwargs)``; any failure becomes StorageError, except that "no such object/upload" returns
        ``missing`` when one is given."""
        try:
            return fn(**kwargs)
        except Exception as exc:  # botocore's errors, and anything the HTTP layer raises
            if missing is not _RAISE and _code(exc) in _MISSING:
                return missing
            raise self.error(operation, exc) from None

    def sse_args(self) -> dict:
        return {"ServerSideEncryption": self.sse} if self.sse else {}

    # -- interface -------------------------------------------------------------
    def check(self) -> None:
        self.call(f"checking bucket {self.bucket}", self.client.head_bucket, Bucket=self.bucket)

    def open_writer(self, key: str, *, part_size: int, on_part: Callable[[int, int], None] | None = None) -> Writer:
        return MultipartWriter(self, key, part_size, on_part)

    def _pages(self, operation: str, what: str, prefix: str, item: str) -> list[dict]:
        """Every ``item`` entry of every page of a list operation."""
        def collect() -> list[dict]:
            pages = self.client.get_paginator(operation).paginate(Bucket=self.bucket, Prefix=prefix)
            return [entry for page in pages for entry in (page.get(item) or [])]

        return self.call(what, collect)

    def list(self, prefix: str) -> list[ObjectInfo]:
        found = self._pages("list_objects_v2", f"listing {prefix or '/'}", prefix, "Contents")
        return sorted((ObjectInfo(o["Key"], int(o["Size"]), o["LastModified"]) for o in found), key=lambda o: o.key)

    def open_read(self, key: str) -> BinaryIO:
        resp = self.call(f"reading {key}", self.client.get_object, Bucket=self.bucket, Key=key)
        return _S3Body(self, key, resp["Body"])

    def open_range(self, key: str, start: int, end: int) -> BinaryIO:
        """One ranged GET (``Range: bytes=start-(end-1)``); a store that ignores the range is refused."""
        what = f"reading bytes {start}-{end - 1} of {key}"
        resp = self.call(what, self.client.get_object, Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        if int(resp.get("ContentLength", -1)) != end - start:
            resp["Body"].close()
            raise StorageError(self.describe(), what, f"the store answered {resp.get('ContentLength')} bytes, "
                               f"not the {end - start} asked for (the object is shorter than its manifest says, "
                               "or the store ignores ranges)",
                               hint="restore with --jobs 1 (one stream, no ranged reads), or another backup")
        return _S3Body(self, key, resp["Body"])

    def size(self, key: str) -> int | None:
        head = self.call(f"reading {key}", self.client.head_object, missing=None, Bucket=self.bucket, Key=key)
        return None if head is None else int(head["ContentLength"])

    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        self.call(f"writing {key}", self.client.put_object, Bucket=self.bucket, Key=key, Body=data,
                   ContentType=content_type, **self.sse_args())

    def put_if_absent(self, key: str, data: bytes, *, content_type: str = "application/json") -> bool:
        try:  # S3's conditional write: a second writer of the key gets 412 PreconditionFailed
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                                   IfNoneMatch="*", **self.sse_args())
        except Exception as exc:  # botocore's errors: a lost race is an answer, anything else a StorageError
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise self.error(f"writing {key} (if absent)", exc) from None
        return True

    def get_bytes(self, key: str) -> bytes | None:
        return self.call(f"reading {key}", lambda: self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read(),
                         missing=None)

    def delete(self, key: str) -> None:
        self.call(f"deleting {key}", self.client.delete_object, Bucket=self.bucket, Key=key)

    def incomplete_uploads(self, prefix: str) -> list[Upload]:
        found = self._pages("list_multipart_uploads", "listing multipart uploads", prefix, "Uploads")
        return sorted((Upload(u["Key"], u["Initiated"], u["UploadId"]) for u in found), key=lambda u: u.key)

    def abort_upload(self, upload: Upload) -> None:
        self.abort_multipart(upload.key, upload.upload_id)

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload; one that is gone already counts as aborted."""
        self.call(f"aborting the upload of {key}", self.client.abort_multipart_upload, missing=None,
                  Bucket=self.bucket, Key=key, UploadId=upload_id)


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


class MultipartWriter(Writer):
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
        #: full-size part buffers whose upload finished, filled again (no new memory, no page faults)
        self._free: list[bytearray] = []
        self._buffered = 0
        self._parts: dict[int, str] = {}
        self._futures: list[Future] = []
        self._slots = threading.Semaphore(PARTS_IN_FLIGHT)
        self._error: BaseException | None = None
        self._pool = ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        self._done = False
        resp = store.call(
            f"starting the upload of {key}",
            store.client.create_multipart_upload,
            Bucket=store.bucket,
            Key=key,
            ContentType="application/octet-stream",
            **store.sse_args(),
        )
        self.upload_id = resp["UploadId"]

    # -- filling parts -------------------------------------------------------
    def write(self, data: bytes) -> None:
        self._raise_pending()
        self.bytes_written += len(data)
        view = memoryview(data)
        while view:
            if self._part is None:
                self._part = self._free.pop() if self._free else bytearray(self.part_size)
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
            resp = self.store.call(
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
            if len(body) == self.part_size:
                self._free.append(body)  # done with it: the next part is filled into it
        except BaseException as exc:  # handed to the writing thread
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
        self.store.call(
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
        self.store.abort_multipart(self.key, self.upload_id)
