"""The streamed backup: checks, one snapshot, pg_dump → sha256 → the store's writer, then the manifest.

Nothing is written before every check passed; any failure aborts the upload
and leaves no manifest.  Peak memory is the store writer's parts plus a few
chunks, whatever the size of the database (see docs/backups.md).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import URL

from .. import clock, postgres
from ..errors import CheckFailed, DbopsError, StorageError, ToolFailed, UsageError
from ..postgres import dump as pgdump
from ..settings import Settings
from ..storage import MiB, Store, part_size_for
from ..ui import SILENT, UI
from ..units import rate
from . import crypt
from .catalog import CHUNK, checked_store, dump_key, manifest_key
from .contents import alembic_revisions, table_row_counts
from .manifest import Manifest

log = logging.getLogger(__name__)

#: how much of pg_dump's output may wait while the store is being set up (the
#: upload's part buffers do not exist yet then): the reader's ring of CHUNK buffers
PREFETCH = 2 * MiB


@dataclass
class BackupResult:
    key: str
    manifest_key: str
    sha256: str
    size: int
    revision: str
    duration_s: float
    store: str
    manifest: Manifest = field(repr=False)


@dataclass
class StreamedDump:
    """What :func:`_stream_dump` stored: the object's sha256 and size, the row counts, the archive's own."""

    sha256: str
    size: int
    tables: dict[str, int]
    plain_sha256: str
    plain_size: int


class _Prefetch(threading.Thread):
    """Reads pg_dump's output into a bounded queue, so pg_dump runs while the consumer is not ready yet.

    A thread and a queue rather than a future: this hands over a stream of
    chunks, not one result.  A future reading ahead would either hold the
    whole dump (unbounded memory) or stop pg_dump until the store is ready.

    The chunks live in a fixed ring of ``limit // CHUNK`` buffers, filled
    with ``readinto`` and reused: no allocation (and no page faults on fresh
    memory) per chunk, and memory bounded by the ring.  A chunk handed out by
    :meth:`read` stays valid until the next :meth:`read`.
    """

    def __init__(self, proc: pgdump.Dump, *, limit: int):
        super().__init__(daemon=True, name="pg_dump-reader")
        self.proc = proc
        count = max(2, limit // CHUNK)
        self.queue: queue.Queue[memoryview | BaseException] = queue.Queue(maxsize=count)
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        for _ in range(count):
            self._free.put(bytearray(CHUNK))
        self._lent: bytearray | None = None
        self._stopped = threading.Event()
        self.start()

    def run(self) -> None:
        while not self._stopped.is_set():
            buffer = self._free.get()
            try:
                n = self.proc.readinto(buffer)
                item: memoryview | BaseException = memoryview(buffer)[:n]
            except BaseException as exc:
                item = exc
            while not self._stopped.is_set():
                try:
                    self.queue.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if not isinstance(item, memoryview) or not item:
                return

    def read(self) -> memoryview:
        """The next chunk (empty at the end), valid until the next call; re-raises a read error."""
        if self._lent is not None:
            self._free.put(self._lent)
            self._lent = None
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        self._lent = item.obj
        return item

    def stop(self) -> None:
        self._stopped.set()
        if self._lent is not None:  # a reader waiting for a free buffer sees the stop
            self._free.put(self._lent)
            self._lent = None
        self._free.put(bytearray(0))


def _return_freed_buffers() -> None:
    """Have glibc hand every freed block of 128 KiB or more straight back to the system (Linux/glibc only).

    The dump moves through 256 KiB chunks and 5+ MiB parts, allocated in one
    thread and freed in another.  glibc's default raises its mmap threshold
    after the first such free, so later buffers come from per-thread arenas that
    keep freed memory resident: about 8 MiB of peak RSS on a 1 GiB dump.  A
    fixed threshold (``mallopt(M_MMAP_THRESHOLD)``) maps and unmaps each one.
    """
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def create_backup(
    settings: Settings,
    url: URL,
    *,
    ui: UI = SILENT,
    part_size: int | None = None,
    on_part: Callable[[int, int], None] | None = None,
) -> BackupResult:
    """pg_dump ``url`` in custom format, streamed to the backup store, checked, then its manifest written.

    Checks first (nothing is written before they pass): not a pooled endpoint,
    the server answers, pg_dump is at least the server's major version, the
    store is reachable.  The dump and the row counts share one exported
    snapshot.  Any failure aborts the upload and leaves no manifest.

    ``part_size`` overrides the size chosen from ``pg_database_size``;
    ``on_part(number, size)`` is called after each part is stored.  The live
    progress line goes to ``ui.progress()``.
    """
    postgres.refuse_pooled(url, variable=settings.database_url_var)
    _return_freed_buffers()
    with ExitStack() as stack:  # closed in reverse: the threads finish, then the connection, then the engine
        engine = postgres.make_engine(url, connect_timeout=settings.connect_timeout_s)
        stack.callback(engine.dispose)
        # one connection checks the server, exports the snapshot pg_dump shares and counts the rows:
        # each connect to a remote server costs round trips (TCP, TLS, authentication) before pg_dump starts
        try:
            conn = stack.enter_context(engine.connect().execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True))
        except sa.exc.OperationalError as exc:
            raise postgres.unreachable(url, exc, settings.connect_hint) from None
        conn.begin()  # BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY, sent with the first query
        # one round trip before pg_dump starts; the rest is read in the same snapshot while it runs
        snapshot, server_version = conn.execute(
            sa.text("SELECT pg_export_snapshot(), current_setting('server_version')")).one()
        server_major = postgres.major_version(server_version)
        client = pgdump.check_dump_client(server_major, url, places=settings.client_places)
        pgdump.check_compression(client, settings.backup_compression,
                                 setting=f"{settings.env.upper()}_BACKUP_COMPRESSION")
        dump_major, dump_version = client.major, client.version
        if crypt.encrypting(settings):  # pyrage installed and every recipient valid, before pg_dump starts
            crypt.recipients(settings)
        ui.say(f"pg_dump: {client.describe()}; compression {settings.backup_compression}"
               + (f"; encrypted to {len(settings.backup_age_recipients)} age recipient(s)"
                  if crypt.encrypting(settings) else ""))

        started = clock.now()
        background = stack.enter_context(ThreadPoolExecutor(max_workers=2, thread_name_prefix="backup"))
        # pg_dump starts while the store is still being set up (boto3's import and the bucket
        # check take a few hundred ms); its first bytes wait in a small bounded buffer.
        # Nothing is written to the store before the store check passed.
        proc = pgdump.dump(url, timeout=settings.backup_timeout_s, snapshot=snapshot,
                           compress=settings.backup_compression, client=client)
        source = _Prefetch(proc, limit=PREFETCH)
        store_ready = background.submit(checked_store, settings)  # boto3 import + bucket check, beside pg_dump
        try:
            # the manifest's revision and the part size, in the dump's snapshot, while pg_dump runs
            revisions = alembic_revisions(conn)
            revision = "+".join(revisions) or "base"
            db_size = int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())
            size_of_part = part_size or part_size_for(db_size)
            store = store_ready.result()
            key = dump_key(store, settings, started, revision)
            if store.size(key) is not None:  # two backups in the same microsecond
                raise UsageError(f"backup {key} already exists", hint="run the backup again")
        except BaseException:
            proc.kill()
            source.stop()
            raise
        count_rows = partial(background.submit, table_row_counts, conn)
        dumped = _stream_dump(store, key, proc, source, count_rows, part_size=size_of_part,
                              on_part=on_part, ui=ui, encrypt=settings if crypt.encrypting(settings) else None)
        sha256, size, counts = dumped.sha256, dumped.size, dumped.tables

    finished = clock.now()
    manifest = Manifest(
        key=key,
        env=settings.env,
        database=url.database,
        revision=revision,
        revisions=list(revisions),
        sha256=sha256,
        size=size,
        server_version=server_version,
        server_major=server_major,
        pg_dump_version=dump_version,
        pg_dump_major=dump_major,
        pg_dump_path=str(client.path),
        pg_dump_why=client.why,
        pg_dump_ssl=client.ssl,
        compression=settings.backup_compression,
        database_size=db_size,
        part_size=size_of_part,
        sse=getattr(store, "sse", None),
        encryption=crypt.AGE if crypt.encrypting(settings) else None,
        recipients=list(settings.backup_age_recipients),
        plain_sha256=dumped.plain_sha256 if crypt.encrypting(settings) else None,
        plain_size=dumped.plain_size if crypt.encrypting(settings) else None,
        started_at=clock.iso(started, precise=True),
        finished_at=clock.iso(finished, precise=True),
        duration_s=round((finished - started).total_seconds(), 3),
        tables=counts,
    )
    manifest_at = manifest_key(key)
    try:
        store.put_json(manifest_at, manifest.to_dict())
    except StorageError:
        _quietly(store.delete, key)
        raise
    return BackupResult(key, manifest_at, sha256, size, revision, manifest.duration_s, store.describe(), manifest)


def _stream_dump(
    store: Store,
    key: str,
    proc: pgdump.Dump,
    source: _Prefetch,
    count_rows: Callable[[], Future[dict[str, int]]],
    *,
    part_size: int,
    on_part: Callable[[int, int], None] | None,
    ui: UI,
    encrypt: Settings | None = None,
) -> StreamedDump:
    """pg_dump → sha256 → multipart writer; returns the checksums, sizes and row counts after every check passed.

    ``encrypt``: settings whose age recipients the archive is encrypted to on the way (:mod:`.crypt`).

    ``count_rows()`` starts the row counts in the dump's snapshot (same
    transaction, so the counts match the dump) once the upload is open.
    """
    try:
        writer = store.open_writer(key, part_size=part_size, on_part=on_part)
    except BaseException:
        proc.kill()
        source.stop()
        raise
    show = ui.progress()
    try:
        counting = count_rows()
        digest = hashlib.sha256()
        stored = hashlib.sha256() if encrypt is not None else digest
        streamed = archived = 0
        t0 = time.monotonic()

        def next_chunk() -> memoryview:
            nonlocal archived
            chunk = source.read()
            if chunk:
                if encrypt is not None:
                    digest.update(chunk)
                archived += len(chunk)
                show.update(f"backup {key}: {rate(archived, time.monotonic() - t0)}")
            return chunk

        def store_chunk(chunk: bytes | memoryview) -> None:
            nonlocal streamed
            stored.update(chunk)
            writer.write(chunk)
            streamed += len(chunk)

        if encrypt is not None:  # pg_dump → age (to the recipients) → the writer
            crypt.encrypt_stream(encrypt, next_chunk, store_chunk)
        else:
            while chunk := next_chunk():
                store_chunk(chunk)
        proc.wait()
        try:
            counts = counting.result()
        except Exception as exc:
            raise CheckFailed(f"counting rows for the manifest failed: {exc}") from exc
        size = writer.complete()
        if size != streamed:  # complete() checks the store's size against what it was given
            raise StorageError(store.describe(), f"checking {key}", f"{size} bytes stored, {streamed} streamed")
    except BaseException as exc:
        proc.kill()
        source.stop()
        details = hint = None
        try:
            writer.abort()
        except StorageError as abort_exc:
            if isinstance(exc, DbopsError):
                extra = f"also: {abort_exc.message}" + (f" ({abort_exc.hint})" if abort_exc.hint else "")
                details = f"{exc.details}\n{extra}" if exc.details else extra
        show.done()
        if isinstance(exc, ToolFailed) and exc.hint is None:
            hint = "nothing was stored: the upload was aborted and no manifest was written"
        if isinstance(exc, DbopsError) and (details or hint):  # what the cleanup adds: a new error, the same kind
            raise exc.with_context(hint=hint, details=details) from exc
        raise
    show.done(f"backup {key}: {rate(size, time.monotonic() - t0)}" + (", encrypted" if encrypt else ""))
    return StreamedDump(stored.hexdigest(), size, counts, digest.hexdigest(), archived)


def _quietly(fn: Callable[..., object], *args: object) -> None:
    try:
        fn(*args)
    except DbopsError as exc:
        log.warning("%s", exc.message)
