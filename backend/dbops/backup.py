"""Backups that are proven restorable: create, list, prune, restore, verify.

This module only orchestrates: :mod:`dbops.pgdump` runs pg_dump/pg_restore,
:mod:`dbops.storage` talks to S3 or the backup folder, :mod:`dbops.postgres`
to the server.  Each public function takes the settings first and returns a
result dataclass; ``tasks.py`` prints it.

Layout of a backup under ``BACKUP_URL``::

    <prefix>/<env>/<UTC timestamp>_<alembic revision>.dump           pg_dump -Fc, streamed
    <prefix>/<env>/<UTC timestamp>_<alembic revision>.manifest.json  written only after the dump was checked
    <prefix>/<env>/<UTC timestamp>_<alembic revision>.verified.json  written by verify-backup

A dump without its manifest is not a backup: listing shows it as incomplete,
restore refuses it, and prune never touches it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from . import postgres
from .postgres import dump as pgdump
from .console import TerminalProgress as Progress  # TEMPORARY
from .errors import (
    ChecksumMismatch,
    CheckFailed,
    ConfirmationRequired,
    DbopsError,
    StorageError,
    ToolFailed,
    UsageError,
)
from .redact import mask_url
from .settings import Settings, normalize_database_url
from .storage import MiB, Store, Upload, open_store, part_size_for

log = logging.getLogger(__name__)

FORMAT = "dbops-backup/1"
CHUNK = 256 * 1024
#: how much of pg_dump's output may wait while the store is being set up (the
#: upload's part buffers do not exist yet then); one chunk once streaming
PREFETCH = 2 * MiB
DUMP_SUFFIX = ".dump"
MANIFEST_SUFFIX = ".manifest.json"
VERIFIED_SUFFIX = ".verified.json"
#: UTC, to the microsecond: two backups in the same second get different keys
_STAMP = "%Y%m%dT%H%M%S.%fZ"
_NAME = re.compile(r"^(?P<stamp>\d{8}T\d{6}\.\d{6}Z)_(?P<revision>.+)\.dump$")


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------
@dataclass
class BackupResult:
    key: str
    manifest_key: str
    sha256: str
    size: int
    revision: str
    duration_s: float
    store: str
    manifest: dict = field(repr=False, default_factory=dict)


@dataclass
class BackupInfo:
    """One backup in the store, with its manifest (None: incomplete) and verification record."""

    key: str
    size: int
    time: dt.datetime
    revision: str
    manifest: dict | None = None
    verification: dict | None = None

    @property
    def stem(self) -> str:
        return self.key[: -len(DUMP_SUFFIX)]

    @property
    def manifest_key(self) -> str:
        return self.stem + MANIFEST_SUFFIX

    @property
    def verified_key(self) -> str:
        return self.stem + VERIFIED_SUFFIX

    @property
    def complete(self) -> bool:
        return self.manifest is not None

    @property
    def verified(self) -> bool:
        """verify-backup restored it and its checksum matched the manifest's."""
        return bool(
            self.manifest and self.verification and self.verification.get("sha256") == self.manifest.get("sha256")
        )

    @property
    def duration_s(self) -> float | None:
        return self.manifest.get("duration_s") if self.manifest else None

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "time": self.time.isoformat(),
            "revision": self.revision,
            "size": self.size,
            "duration_s": self.duration_s,
            "complete": self.complete,
            "verified": self.verified,
            "verified_at": (self.verification or {}).get("verified_at"),
            "sha256": (self.manifest or {}).get("sha256"),
        }


@dataclass
class PruneResult:
    dry_run: bool
    delete: list[BackupInfo]
    keep: list[tuple[BackupInfo, str]]
    #: uploads of killed backups older than a day (aborted with --confirm)
    stale_uploads: list[Upload] = field(default_factory=list)


@dataclass
class RestoreResult:
    key: str
    target: str
    database: str
    replaced: bool
    sha256: str
    size: int
    duration_s: float


@dataclass
class VerifyResult:
    key: str
    sha256: str
    tables: dict[str, int]
    duration_s: float
    verified_key: str


# ---------------------------------------------------------------------------
# backup
# ---------------------------------------------------------------------------
def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def env_prefix(store: Store, settings: Settings) -> str:
    """``<prefix>/<env>/``: everything this environment's backups may touch."""
    return store.key(settings.env) + "/"


_TABLES_SQL = sa.text(
    """
    SELECT n.nspname AS schema, c.relname AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r'
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
    ORDER BY 1, 2
    """
)


def table_row_counts(conn: Connection) -> dict[str, int]:
    """``{"schema.table": rows}`` for every user table (extension tables excluded)."""
    counts = {}
    for schema, name in conn.execute(_TABLES_SQL).all():
        qualified = f"{postgres.quote_ident(schema)}.{postgres.quote_ident(name)}"
        counts[f"{schema}.{name}"] = int(conn.execute(sa.text(f"SELECT count(*) FROM {qualified}")).scalar_one())
    return counts


def _checked_store(settings: Settings) -> Store:
    store = open_store(settings)
    store.check()
    return store


class _InBackground(threading.Thread):
    """Run ``fn(*args)`` in a thread; ``result()`` returns its value or raises its exception."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True, name=getattr(fn, "__name__", "background"))
        self.fn, self.args = fn, args
        self.value = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.fn(*self.args)
        except BaseException as exc:  # noqa: BLE001 - re-raised by result()
            self.error = exc

    def result(self):
        self.join()
        if self.error is not None:
            raise self.error
        return self.value


class _Prefetch(threading.Thread):
    """Reads pg_dump's output into a bounded queue, so pg_dump runs while the consumer is not ready yet."""

    _EOF = b""

    def __init__(self, proc, *, limit: int):
        super().__init__(daemon=True, name="pg_dump-reader")
        import queue

        self.proc = proc
        self.queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=max(1, limit // CHUNK))
        self._stopped = threading.Event()
        self.start()

    def run(self) -> None:
        import queue

        while not self._stopped.is_set():
            try:
                item: bytes | BaseException = self.proc.read(CHUNK)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                item = exc
            while not self._stopped.is_set():
                try:
                    self.queue.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if not isinstance(item, bytes) or item == self._EOF:
                return

    def streaming(self) -> None:
        """The upload is open: from now on at most one chunk waits (memory stays bounded by the parts)."""
        self.queue.maxsize = 1

    def read(self) -> bytes:
        """The next chunk (b"" at the end); re-raises a read error."""
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self._stopped.set()


class _Counter(threading.Thread):
    """Counts rows in the dump's snapshot while pg_dump streams (same transaction, so the counts match)."""

    def __init__(self, conn: Connection):
        super().__init__(daemon=True, name="row-counts")
        self.conn = conn
        self.counts: dict[str, int] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.counts = table_row_counts(self.conn)
        except BaseException as exc:  # noqa: BLE001 - re-raised by result()
            self.error = exc

    def result(self) -> dict[str, int]:
        self.join()
        if self.error is not None:
            raise CheckFailed(f"counting rows for the manifest failed: {self.error}") from self.error
        assert self.counts is not None
        return self.counts


def database_url_for(settings: Settings) -> URL:
    """The environment's database, started if it is a local one; pooled endpoints refused before connecting."""
    from .servers import server_for

    if settings.database_url is not None:  # create_backup checks it: refused if pooled, then connected once
        postgres.refuse_pooled(settings.database_url, variable=settings.database_url_var)
        return settings.database_url
    return server_for(settings).start()


def alembic_revisions(conn: Connection) -> tuple[str, ...]:
    """The database's Alembic revision(s), read from ``alembic_version`` (empty: never migrated).

    The same rows ``MigrationContext.get_current_heads()`` reads, without
    loading Alembic's migration machinery (about 12 MB) into the backup process.
    """
    exists = conn.execute(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar_one()
    if not exists:
        return ()
    return tuple(sorted(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()))


def _rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MiB:,.1f} MiB at {nbytes / MiB / max(seconds, 1e-6):,.1f} MiB/s"


def create_backup(
    settings: Settings,
    url: URL,
    *,
    progress: bool = True,
    part_size: int | None = None,
    on_part: Callable[[int, int], None] | None = None,
) -> BackupResult:
    """pg_dump ``url`` in custom format, streamed to the backup store, checked, then its manifest written.

    Checks first (nothing is written before they pass): not a pooled endpoint,
    the server answers, pg_dump is at least the server's major version, the
    store is reachable.  The dump and the row counts share one exported
    snapshot.  Any failure aborts the upload and leaves no manifest.

    ``part_size`` overrides the size chosen from ``pg_database_size``;
    ``on_part(number, size)`` is called after each part is stored.
    """
    postgres.refuse_pooled(url, variable=settings.database_url_var)
    engine = postgres.make_engine(url, connect_timeout=settings.connect_timeout_s)
    try:
        server_version = postgres.check_connection(
            url, engine=engine,
            hint=f"check {settings.database_url_var} and that the server accepts connections from here",
        )
        server_major = postgres.major_version(server_version)
        dump_major, dump_version = pgdump.check_dump_client(server_major, server_version)

        conn = engine.connect().execution_options(isolation_level="REPEATABLE READ")
        try:
            conn.begin()
            conn.execute(sa.text("SET TRANSACTION READ ONLY"))
            snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            revisions = alembic_revisions(conn)
            revision = "+".join(revisions) or "base"
            db_size = int(conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one())
            started = _now()
            size_of_part = part_size or part_size_for(db_size)
            # pg_dump starts while the store is still being set up (boto3's import and the bucket
            # check take a few hundred ms); its first bytes wait in a small bounded buffer.
            # Nothing is written to the store before the store check passed.
            proc = pgdump.dump(url, timeout=settings.backup_timeout_s, snapshot=snapshot,
                               compress=settings.backup_compression)
            source = _Prefetch(proc, limit=PREFETCH)
            store_ready = _InBackground(_checked_store, settings)  # boto3 import + bucket check, beside pg_dump
            try:
                store = store_ready.result()
                key = store.key(settings.env, f"{started.strftime(_STAMP)}_{revision}{DUMP_SUFFIX}")
                if store.size(key) is not None:  # two backups in the same microsecond
                    raise UsageError(f"backup {key} already exists", hint="run the backup again")
            except BaseException:
                proc.kill()
                source.stop()
                raise
            stream = _stream_dump(store, key, proc, source, conn, size_of_part, progress, on_part)
        finally:
            conn.close()
    finally:
        engine.dispose()

    sha256, size, counts = stream
    finished = _now()
    manifest = {
        "format": FORMAT,
        "key": key,
        "env": settings.env,
        "database": url.database,
        "revision": revision,
        "revisions": list(revisions),
        "sha256": sha256,
        "size": size,
        "server_version": server_version,
        "server_major": server_major,
        "pg_dump_version": dump_version,
        "pg_dump_major": dump_major,
        "compression": settings.backup_compression,
        "database_size": db_size,
        "part_size": size_of_part,
        "sse": getattr(store, "sse", None),
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_s": round((finished - started).total_seconds(), 3),
        "tables": counts,
    }
    manifest_key = key[: -len(DUMP_SUFFIX)] + MANIFEST_SUFFIX
    try:
        store.put_json(manifest_key, manifest)
    except StorageError:
        _quietly(store.delete, key)
        raise
    return BackupResult(key, manifest_key, sha256, size, revision, manifest["duration_s"], store.describe(), manifest)


def _stream_dump(store, key, proc, source, conn, part_size, progress, on_part):
    """pg_dump → sha256 → multipart writer; returns (sha256, size, row counts) after every check passed."""
    show = Progress() if progress else None
    try:
        writer = store.open_writer(key, part_size=part_size, on_part=on_part)
    except BaseException:
        proc.kill()
        source.stop()
        raise
    source.streaming()
    try:
        counter = _Counter(conn)
        counter.start()
        digest = hashlib.sha256()
        streamed = 0
        t0 = time.monotonic()
        while True:
            chunk = source.read()
            if not chunk:
                break
            digest.update(chunk)
            writer.write(chunk)
            streamed += len(chunk)
            if show:
                show.update(f"backup {key}: {_rate(streamed, time.monotonic() - t0)}")
        proc.wait()
        counts = counter.result()
        size = writer.complete()
        if size != streamed:  # complete() checks the store's size against what it was given
            raise StorageError(store.describe(), f"checking {key}", f"{size} bytes stored, {streamed} streamed")
    except BaseException as exc:
        proc.kill()
        source.stop()
        try:
            writer.abort()
        except StorageError as abort_exc:
            if isinstance(exc, DbopsError):
                extra = f"also: {abort_exc.message}" + (f" ({abort_exc.hint})" if abort_exc.hint else "")
                exc.details = f"{exc.details}\n{extra}" if exc.details else extra
        if show:
            show.done()
        if isinstance(exc, ToolFailed) and exc.hint is None:
            exc.hint = "nothing was stored: the upload was aborted and no manifest was written"
        raise
    if show:
        show.done(f"backup {key}: {_rate(size, time.monotonic() - t0)}")
    return digest.hexdigest(), size, counts


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except DbopsError as exc:
        log.warning("%s", exc.message)


# ---------------------------------------------------------------------------
# list and prune
# ---------------------------------------------------------------------------
def list_backups(settings: Settings, *, store: Store | None = None) -> list[BackupInfo]:
    """Every backup of ``settings.env``, newest first (incomplete ones too, with ``manifest`` None)."""
    store = store or open_store(settings)
    prefix = env_prefix(store, settings)
    objects = {o.key: o for o in store.list(prefix)}
    out = []
    for key, obj in objects.items():
        if not key.endswith(DUMP_SUFFIX) or "/" in key[len(prefix):]:
            continue
        name = key[len(prefix):]
        m = _NAME.match(name)
        stamp = dt.datetime.strptime(m.group("stamp"), _STAMP).replace(tzinfo=dt.timezone.utc) if m else obj.modified
        info = BackupInfo(key, obj.size, stamp, m.group("revision") if m else "?")
        if info.manifest_key in objects:
            info.manifest = store.get_json(info.manifest_key)
        if info.verified_key in objects:
            info.verification = store.get_json(info.verified_key)
        out.append(info)
    return sorted(out, key=lambda b: (b.time, b.key), reverse=True)


def find_backup(settings: Settings, key_or_latest: str | None, *, store: Store) -> BackupInfo:
    """The backup named by key (full key or file name) or ``latest``: the newest complete one."""
    backups = list_backups(settings, store=store)
    where = f"{store.describe()} ({settings.env})"
    if key_or_latest in (None, "", "latest"):
        complete = [b for b in backups if b.complete]
        if not complete:
            raise UsageError(f"no complete backup in {where}", hint=f"run `inv backup --env {settings.env}` first")
        return complete[0]
    for b in backups:
        if key_or_latest in (b.key, b.key.rsplit("/", 1)[-1], b.stem, b.stem.rsplit("/", 1)[-1]):
            if not b.complete:
                raise UsageError(
                    f"backup {b.key} has no manifest: it is incomplete or was interrupted, and cannot be trusted",
                    hint="pick another one from `inv backups --env " + settings.env + "`",
                )
            return b
    raise UsageError(f"no backup {key_or_latest!r} in {where}",
                     hint=f"see `inv backups --env {settings.env}` for the keys, or use latest")


def prune_backups(settings: Settings, *, keep: int, days: int | None = None, confirm: bool = False) -> PruneResult:
    """Delete old backups beyond the newest ``keep`` (and older than ``days``); a dry run unless ``confirm``.

    Never deleted: the newest backup, any younger than a day (or ``days``), any
    not verified (verify-backup matched its manifest's checksum), any without a
    manifest, and anything outside ``<prefix>/<env>/``.  Unfinished uploads
    older than a day (a backup killed outright) are aborted too.
    """
    if keep < 1:
        raise UsageError(f"--keep must be at least 1, got {keep}", hint="the newest backup is always kept")
    if days is not None and days < 1:
        raise UsageError(f"--days must be at least 1, got {days}")
    store = open_store(settings)
    prefix = env_prefix(store, settings)
    backups = list_backups(settings, store=store)
    now = _now()
    min_age = dt.timedelta(days=max(1, days or 1))
    delete, kept = [], []
    rank = 0  # position among complete backups: only those count towards --keep
    for i, b in enumerate(backups):
        if not b.complete:
            reason = "no manifest (incomplete): never pruned"
        else:
            rank += 1
        if not b.complete:
            pass
        elif i == 0 or rank == 1:
            reason = "newest"
        elif rank <= keep:
            reason = f"within --keep {keep}"
        elif now - b.time < min_age:
            reason = f"younger than {min_age.days} day(s)"
        elif not b.verified:
            reason = "not verified (run verify-backup): never pruned"
        else:
            reason = ""
        if reason:
            kept.append((b, reason))
        else:
            delete.append(b)
    stale = [u for u in store.incomplete_uploads(prefix) if now - u.started >= dt.timedelta(days=1)]
    if confirm:
        for u in stale:  # a backup killed outright (SIGKILL, OOM) could not abort its own upload
            if u.key.startswith(prefix):
                store.abort_upload(u)
        for b in delete:
            for key in (b.key, b.manifest_key, b.verified_key):
                if not key.startswith(prefix):  # belt and braces: stay inside our own prefix
                    raise UsageError(f"refusing to delete {key}: outside {prefix}")
                store.delete(key)
    return PruneResult(dry_run=not confirm, delete=delete, keep=kept, stale_uploads=stale)


# ---------------------------------------------------------------------------
# restore
# ---------------------------------------------------------------------------
def _stream_restore(
    store: Store, info: BackupInfo, sinks: list[pgdump.Restore], *, progress: bool, label: str
) -> tuple[str, int]:
    """Stream the object into every sink, hashing it; raise ChecksumMismatch at the end if it differs.

    ``sinks[0]`` must read everything; later sinks (``pg_restore --list``) may
    stop reading once they have what they need.
    """
    assert info.manifest is not None
    show = Progress() if progress else None
    digest = hashlib.sha256()
    size = 0
    t0 = time.monotonic()
    main, extra = sinks[0], list(sinks[1:])
    body = store.open_read(info.key)
    try:
        while True:
            chunk = body.read(CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
            if not main.write(chunk):
                main.wait()  # it stopped reading: raises ToolFailed with its stderr
                raise ToolFailed(main.name, None, main.stderr_tail or "stopped reading the archive early")
            extra = [s for s in extra if s.write(chunk)]
            if show:
                show.update(f"{label}: {_rate(size, time.monotonic() - t0)}")
    finally:
        body.close()
        if show:
            show.done()
    actual = digest.hexdigest()
    if actual != info.manifest["sha256"] or size != info.manifest["size"]:
        for s in sinks:
            s.kill()
        raise ChecksumMismatch(
            info.key,
            f"sha256 {info.manifest['sha256'][:16]}… ({info.manifest['size']} bytes)",
            f"sha256 {actual[:16]}… ({size} bytes)",
            hint="the object was changed or damaged after the backup; restore another backup",
        )
    for s in sinks:
        s.wait()
    if show:
        show.done(f"{label}: {_rate(size, time.monotonic() - t0)}, checksum ok")
    return actual, size


def _restore_into(settings: Settings, store: Store, info: BackupInfo, url: URL, *, progress: bool,
                  list_toc: bool = False) -> tuple[str, int, list[str]]:
    sinks = [pgdump.restore(url, timeout=settings.backup_timeout_s)]
    if list_toc:
        sinks.append(pgdump.list_archive(timeout=settings.backup_timeout_s))
    try:
        sha, size = _stream_restore(store, info, sinks, progress=progress, label=f"restore {info.key}")
    except BaseException:
        for s in sinks:
            s.kill()
        raise
    return sha, size, (sinks[1].stdout_lines if list_toc else [])


def _stamp() -> str:
    return _now().strftime("%Y%m%d%H%M%S")


def _db_name(base: str, suffix: str) -> str:
    return f"{base[: 63 - len(suffix)]}{suffix}"


def restore_backup(
    settings: Settings,
    key_or_latest: str | None,
    target_url: URL | str | None,
    *,
    in_place_confirmed_name: str | None = None,
    source_url: URL | None = None,
    progress: bool = True,
) -> RestoreResult:
    """Restore a backup, checking its checksum while streaming.

    ``target_url`` None: a new database ``<db>_restored_<time>`` beside the
    environment's database.  An existing target database (the source in place,
    or any other) is only replaced when ``in_place_confirmed_name`` equals its
    name: the backup is restored into a fresh database first and swapped in only
    after pg_restore succeeded and the checksum matched, so a failure leaves the
    live database untouched and nothing a later migration created survives.
    """
    store = open_store(settings)
    store.check()
    info = find_backup(settings, key_or_latest, store=store)
    pgdump.check_restore_client(int(info.manifest.get("pg_dump_major") or 0))
    if target_url is None:
        if source_url is None:
            source_url = database_url_for(settings)
        base = source_url.database or info.manifest.get("database") or "restored"
        target = source_url.set(database=_db_name(base, f"_restored_{_stamp()}"))
    elif isinstance(target_url, URL):
        target = target_url
    else:
        target = normalize_database_url(target_url, variable="--target-url")
    name = target.database
    with postgres.admin_connection(target, timeout=settings.connect_timeout_s) as conn:
        exists = postgres.database_exists(conn, name)
    if exists and in_place_confirmed_name != name:
        raise ConfirmationRequired(
            name,
            f"restoring into {mask_url(target)} would replace the existing database {name!r}: "
            "everything in it now is lost",
            hint=f"type the database name when asked, or pass --yes-i-know {name}; "
            "leave out --target-url to restore into a new database instead",
        )
    t0 = time.monotonic()
    work = _db_name(name, f"__restoring_{_stamp()}") if exists else name
    postgres.create_database(target, work)
    try:
        sha, size, _ = _restore_into(settings, store, info, target.set(database=work), progress=progress)
        if exists:
            _swap_in(target, name, work)
    except BaseException as exc:
        _drop_quietly(target, work)
        if isinstance(exc, DbopsError) and exc.hint is None:
            exc.hint = (f"the live database {name!r} was not touched; " if exists else "") + \
                f"the partial restore ({work}) was dropped"
        raise
    return RestoreResult(info.key, mask_url(target), name, exists, sha, size, round(time.monotonic() - t0, 3))


def _drop_quietly(url: URL, name: str) -> None:
    try:
        postgres.drop_database(url, name)
    except DbopsError as exc:
        log.warning("could not drop %s: %s", name, exc.message)


def _swap_in(url: URL, name: str, fresh: str) -> None:
    """Replace database ``name`` by ``fresh``: close its sessions, rename it aside, rename fresh in, drop it."""
    q = postgres.quote_ident
    old = _db_name(name, f"__replaced_{_stamp()}")
    with postgres.admin_connection(url) as conn:
        owner = conn.execute(
            sa.text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :n"), {"n": name}
        ).scalar_one()
        conn.execute(sa.text(f"ALTER DATABASE {q(name)} ALLOW_CONNECTIONS false"))
        try:
            for attempt in Retrying(stop=stop_after_delay(15), wait=wait_fixed(0.2), reraise=True,
                                    retry=retry_if_exception_type(sa.exc.OperationalError)):
                with attempt:
                    conn.execute(
                        sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = :n AND pid <> pg_backend_pid()"),
                        {"n": name},
                    )
                    conn.execute(sa.text(f"ALTER DATABASE {q(name)} RENAME TO {q(old)}"))
        except BaseException:
            conn.execute(sa.text(f"ALTER DATABASE {q(name)} ALLOW_CONNECTIONS true"))
            raise
        try:
            conn.execute(sa.text(f"ALTER DATABASE {q(fresh)} RENAME TO {q(name)}"))
        except BaseException:
            conn.execute(sa.text(f"ALTER DATABASE {q(old)} RENAME TO {q(name)}"))
            conn.execute(sa.text(f"ALTER DATABASE {q(name)} ALLOW_CONNECTIONS true"))
            raise
        try:
            conn.execute(sa.text(f"ALTER DATABASE {q(name)} OWNER TO {q(owner)}"))
        except sa.exc.DBAPIError as exc:
            log.warning("restored database %s keeps the restoring user as owner: %s", name, exc.orig)
        conn.execute(sa.text(f"DROP DATABASE {q(old)} WITH (FORCE)"))


# ---------------------------------------------------------------------------
# verify
# ---------------------------------------------------------------------------
def verify_backup(settings: Settings, key_or_latest: str | None = None, *, progress: bool = True) -> VerifyResult:
    """Restore a backup into a throwaway local Postgres and prove it complete; then mark it verified.

    Checks: the checksum while streaming, ``pg_restore --list`` names every
    table of the manifest, the restored database has exactly the manifest's
    tables, each with the manifest's row count.  Writes ``<stem>.verified.json``.
    """
    from .servers.embedded import FAST_OPTIONS, EmbeddedServer

    store = open_store(settings)
    store.check()
    info = find_backup(settings, key_or_latest, store=store)
    pgdump.check_restore_client(int(info.manifest.get("pg_dump_major") or 0))
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dbops-verify-") as tmp:
        os.chmod(tmp, 0o711)  # the server runs as an unprivileged user when we are root
        server = EmbeddedServer(Path(tmp) / "pg", port=0, options=FAST_OPTIONS)
        try:
            server.start()
            url = postgres.create_database(server.url(), "verify")
            sha, size, toc = _restore_into(settings, store, info, url, progress=progress, list_toc=True)
            engine = postgres.make_engine(url)
            try:
                with engine.connect() as conn:
                    restored = table_row_counts(conn)
            finally:
                engine.dispose()
        finally:
            server.destroy()
    expected = info.manifest.get("tables") or {}
    problems = []
    listed = pgdump.toc_tables(toc)
    for table in sorted(expected):
        if table not in listed:
            problems.append(f"{table}: not in the archive's table of contents (pg_restore --list)")
        if table not in restored:
            problems.append(f"{table}: missing after restore")
        elif restored[table] != expected[table]:
            problems.append(f"{table}: {restored[table]} rows restored, the manifest says {expected[table]}")
    for table in sorted(set(restored) - set(expected)):
        problems.append(f"{table}: restored but not in the manifest")
    if problems:
        raise CheckFailed(
            f"backup {info.key} did not restore to what its manifest describes ({len(problems)} problem(s))",
            details="\n".join(problems),
            hint="do not rely on this backup; take a new one with `inv backup` and verify it",
        )
    duration = round(time.monotonic() - t0, 3)
    record = {
        "key": info.key,
        "sha256": sha,
        "size": size,
        "verified_at": _now().isoformat(),
        "duration_s": duration,
        "tables": restored,
        "pg_restore_version": pgdump.client_version("pg_restore")[1],
    }
    store.put_json(info.verified_key, record)
    return VerifyResult(info.key, sha, restored, duration, info.verified_key)


def render_backups(backups: list[BackupInfo]) -> str:
    """The table ``inv backups`` prints."""
    from .console import table

    rows = []
    for b in backups:
        dur = f"{b.duration_s:.1f}s" if b.duration_s is not None else "-"
        state = "yes" if b.verified else ("no" if b.complete else "INCOMPLETE (no manifest)")
        rows.append([b.time.strftime("%Y-%m-%d %H:%M:%S UTC"), b.revision, _human(b.size), dur, state,
                     b.key.rsplit("/", 1)[-1]])
    return table(["time", "revision", "size", "duration", "verified", "name"], rows)


def render_prune(result: PruneResult) -> str:
    """What ``inv prune-backups`` prints: what goes, what stays and why."""
    lines = []
    verb = "would delete" if result.dry_run else "deleted"
    for b in result.delete:
        lines.append(f"{verb}: {b.key} ({b.time:%Y-%m-%d %H:%M} UTC, {_human(b.size)})")
    for b, why in result.keep:
        lines.append(f"keep: {b.key} ({why})")
    for u in result.stale_uploads:
        lines.append(f"{'would abort' if result.dry_run else 'aborted'}: unfinished upload {u.key} "
                     f"(started {u.started:%Y-%m-%d %H:%M} UTC)")
    if result.dry_run:
        lines.append(f"dry run: {len(result.delete)} backup(s) would be deleted; add --confirm to delete them")
    else:
        lines.append(f"{len(result.delete)} backup(s) deleted, {len(result.keep)} kept")
    return "\n".join(lines)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


__all__ = [
    "BackupInfo",
    "BackupResult",
    "PruneResult",
    "RestoreResult",
    "VerifyResult",
    "create_backup",
    "find_backup",
    "list_backups",
    "prune_backups",
    "render_backups",
    "render_prune",
    "ConfirmationRequired",
    "restore_backup",
    "verify_backup",
]
