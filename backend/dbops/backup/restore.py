"""Restore a backup into a new database, or in place through the swap: in parallel from a fetched file,
or in one stream checked while it flows.

``--jobs N`` (default: the machine's cores): the archive is fetched into
scratch space through parallel ranged reads and checked against the manifest
(:mod:`.fetch`), then ``pg_restore --jobs N`` reads the file.  One stream
(``--jobs 1``, too little scratch space, or a restore through psql): the
object is hashed while pg_restore reads it from standard input.  Either way
the restore goes into a fresh database (pg_restore may commit before the
last byte's checksum is known); an existing one is replaced only by
:func:`dbops.backup.swap.swap_in`, after pg_restore succeeded and the
checksum matched.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from .. import clock, postgres
from ..errors import ChecksumMismatch, ConfirmationRequired, DbopsError, ToolFailed, UsageError
from ..postgres import dump as pgdump
from ..postgres import lock
from ..postgres.clients import Client
from ..redact import mask_url, reason
from ..servers import environment_url
from ..settings import ClientPlaces, Settings, normalize_database_url
from ..storage import Store
from ..ui import SILENT, UI
from ..units import rate
from . import crypt
from .catalog import CHUNK, BackupInfo, checked_store, find_backup
from .fetch import fetched_archive, plan_fetch
from .swap import database_name, swap_in

log = logging.getLogger(__name__)


@dataclass
class RestoreResult:
    key: str
    target: str
    database: str
    replaced: bool
    sha256: str
    size: int
    duration_s: float
    #: which pg_restore ran and why
    pg_restore: str = ""
    #: how it ran: the jobs, and the seconds of the fetch and of pg_restore (one stream: fetch 0)
    jobs: int = 1
    fetch_s: float = 0.0
    restore_s: float = 0.0
    #: why it ran in one stream though more jobs were asked for ("" when it did not)
    single_stream_why: str = ""


@dataclass
class Restored:
    """What :func:`restore_archive` did: the checked archive's sha256 and size, and how long each step took."""

    sha256: str
    size: int
    #: ``pg_restore --list`` lines (when asked for)
    toc: list[str] = field(default_factory=list)
    #: pg_restore's jobs (1: one stream)
    jobs: int = 1
    #: seconds: the fetch into scratch space with its checksum (0 for one stream: it overlaps the restore),
    #: the decryption of a fetched encrypted archive, and pg_restore
    fetch_s: float = 0.0
    decrypt_s: float = 0.0
    restore_s: float = 0.0
    #: why one stream ran though ``jobs`` > 1 was asked for ("" otherwise)
    single_stream_why: str = ""


def default_jobs() -> int:
    """pg_restore's jobs when none are asked for: the machine's cores (as this process may use them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def restore_commands(env: str, key: str, database: str | None) -> list[str]:
    """The printed commands that put ``env``'s database back from backup ``key``, in place.

    The first asks for the database's name before it replaces anything; the
    second is its unattended form (the name given up front).  Without a
    known database name only the first.
    """
    cmd = f"inv restore --env {env} --backup {key} --in-place"
    return [cmd] + ([f"{cmd} --yes-i-know {database}"] if database else [])


def open_backup(settings: Settings, key_or_latest: str | None, *, ui: UI = SILENT) -> tuple[Store, BackupInfo]:
    """The checked store and the complete backup named (or the latest); pg_restore must read its pg_dump's archive."""
    store = checked_store(settings)
    info = find_backup(settings, key_or_latest, store=store, ui=ui)
    crypt.check_key(settings, info)  # an encrypted backup: its key is here, before anything changes
    pgdump.check_restore_client(archive_major(info), compression=info.manifest.compression,
                                places=settings.client_places)
    return store, info


def archive_major(info: BackupInfo) -> int:
    """The major version of the pg_dump that wrote the backup (0: unknown)."""
    return info.manifest.pg_dump_major


def restore_client(info: BackupInfo, url: URL, server_major: int, places: ClientPlaces | None = None) -> Client:
    """The pg_restore for this backup and a PostgreSQL ``server_major`` target; raises before anything changes.

    ``places``: where to look for it first (the settings' ``client_places``).
    """
    return pgdump.check_restore_client(archive_major(info), server_major, url,
                                       compression=info.manifest.compression, places=places)


def restore_into(settings: Settings, store: Store, info: BackupInfo, url: URL, *, ui: UI = SILENT,
                 list_toc: bool = False, client: Client | None = None,
                 schema_only: bool = False, jobs: int = 1) -> tuple[str, int, list[str]]:
    """pg_restore the backup into the (empty) database ``url``: (sha256, size, ``pg_restore --list`` lines).

    :func:`restore_archive` without the timings.
    """
    done = restore_archive(settings, store, info, url, ui=ui, list_toc=list_toc, client=client,
                           schema_only=schema_only, jobs=jobs)
    return done.sha256, done.size, done.toc


def restore_archive(settings: Settings, store: Store, info: BackupInfo, url: URL, *, ui: UI = SILENT,
                    list_toc: bool = False, client: Client | None = None, schema_only: bool = False,
                    jobs: int = 1) -> Restored:
    """pg_restore the backup into the (empty) database ``url``, checked against the manifest.

    ``jobs`` > 1: fetched into scratch space and checked first, then
    ``pg_restore --jobs``; one stream instead (with one line to ``ui`` saying
    why) when the scratch folder lacks the room, the restore goes through psql,
    or only the definitions are restored.  ``client``: the pg_restore to run
    (:func:`restore_client`; by default the one for ``url``'s server, asked
    here).  ``list_toc`` also reads ``pg_restore --list`` of the same bytes;
    ``schema_only`` restores the definitions without the data.
    """
    if client is None:
        client = restore_client(info, url, _server_major(settings, url), settings.client_places)
    why = ""
    if jobs > 1:
        folder, why = plan_fetch(settings, info)
        if client.via is not None:
            why = f"the archive goes in through psql {client.via.major}, which reads one stream"
        elif schema_only:
            why = "only the definitions are restored"
        if not why:
            return _restore_file(settings, store, info, url, folder, client, jobs=jobs, list_toc=list_toc, ui=ui)
        ui.say(f"restore: one stream instead of --jobs {jobs}: {why}")
    t0 = time.monotonic()
    sinks = [pgdump.restore(url, timeout=settings.backup_timeout_s, client=client, schema_only=schema_only)]
    if schema_only:  # pg_restore stops reading after the definitions: the checksum still reads every byte
        sinks.insert(0, _Drain())
    toc = pgdump.list_archive(timeout=settings.backup_timeout_s, client=client) if list_toc else None
    if toc is not None:
        sinks.append(toc)
    try:
        sha, size = _stream(settings, store, info, sinks, ui=ui, label=f"restore {info.key}")
    except BaseException:
        for s in sinks:
            s.kill()
        raise
    return Restored(sha, size, toc.stdout_lines if toc is not None else [], jobs=1,
                    restore_s=round(time.monotonic() - t0, 3), single_stream_why=why)


def _restore_file(settings: Settings, store: Store, info: BackupInfo, url: URL, folder: Path, client: Client, *,
                  jobs: int, list_toc: bool, ui: UI) -> Restored:
    """Fetch the archive into ``folder`` (checked), then ``pg_restore --jobs`` from the file."""
    with fetched_archive(settings, store, info, folder, ui=ui) as fetched:
        t0 = time.monotonic()
        ui.say(f"restore: pg_restore --jobs {jobs} from the fetched archive")
        run = pgdump.restore_file(url, fetched.path, jobs=jobs, timeout=settings.backup_timeout_s, client=client)
        try:
            run.wait()
        except BaseException:
            run.kill()
            raise
        restore_s = time.monotonic() - t0
        toc = pgdump.list_file(fetched.path, timeout=settings.backup_timeout_s, client=client) if list_toc else []
    ui.say(f"restore {info.key}: pg_restore --jobs {jobs} took {restore_s:.1f}s")
    return Restored(fetched.sha256, fetched.size, toc, jobs=jobs, fetch_s=fetched.fetch_s,
                    decrypt_s=fetched.decrypt_s, restore_s=round(restore_s, 3))


class _Drain:
    """A sink that reads everything and keeps nothing (ahead of a pg_restore that may stop reading early)."""

    name = "checksum"
    stderr_tail = ""

    def write(self, data: bytes) -> bool:
        return True

    def wait(self) -> None:
        pass

    def kill(self) -> None:
        pass


class _Hashing:
    """The stored object's stream, hashed as it is read (before any decryption)."""

    def __init__(self, body):
        self.body, self.digest, self.size = body, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self.body.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data

    def close(self) -> None:
        self.body.close()


def _stream(settings: Settings, store: Store, info: BackupInfo, sinks: list[pgdump.Restore], *, ui: UI,
            label: str) -> tuple[str, int]:
    """Stream the object (decrypted when the manifest says so) into every sink, hashing it; raise
    ChecksumMismatch at the end if it differs.

    ``sinks[0]`` must read everything; later sinks (``pg_restore --list``) may
    stop reading once they have what they need.
    """
    assert info.manifest is not None
    show = ui.progress()
    size = 0
    t0 = time.monotonic()
    main, extra = sinks[0], list(sinks[1:])
    raw = _Hashing(store.open_read(info.key))
    body = crypt.open_plain(settings, info, raw)
    plain = hashlib.sha256() if body is not raw else None  # encrypted: the archive's own checksum too
    try:
        while True:
            chunk = body.read(CHUNK)
            if not chunk:
                break
            if plain is not None:
                plain.update(chunk)
            size += len(chunk)
            if not main.write(chunk):
                main.wait()  # it stopped reading: raises ToolFailed with its stderr
                raise ToolFailed(main.name, None, main.stderr_tail or "stopped reading the archive early")
            extra = [s for s in extra if s.write(chunk)]
            show.update(f"{label}: {rate(raw.size, time.monotonic() - t0)}")
    finally:
        body.close()
        show.done()
    actual, manifest = raw.digest.hexdigest(), info.manifest
    if (actual != manifest.sha256 or raw.size != manifest.size or size != manifest.archive_size
            or (plain is not None and plain.hexdigest() != manifest.archive_sha256)):
        for s in sinks:
            s.kill()
        raise ChecksumMismatch(
            info.key,
            f"sha256 {manifest.sha256[:16]}… ({manifest.size} bytes)",
            f"sha256 {actual[:16]}… ({raw.size} bytes)",
            hint="the object was changed or damaged after the backup; restore another backup",
        )
    for s in sinks:
        s.wait()
    show.done(f"{label}: {rate(raw.size, time.monotonic() - t0)}, checksum ok")
    return actual, raw.size


def restore_backup(
    settings: Settings,
    key_or_latest: str | None,
    target_url: URL | str | None,
    *,
    in_place_confirmed_name: str | None = None,
    source_url: URL | None = None,
    in_place: bool = False,
    jobs: int | None = None,
    ui: UI = SILENT,
) -> RestoreResult:
    """Restore a backup: fetched and checked, then ``pg_restore --jobs`` (``jobs``, default
    :func:`default_jobs`); in one stream checked while it flows when ``jobs`` is 1 or there is no room.

    ``target_url`` None: a new database ``<db>_restored_<time>`` beside the
    environment's database (``source_url``, by default the environment's URL).
    An existing target database (the source in place, or any other) is only
    replaced when ``in_place_confirmed_name`` equals its name: the backup is
    restored into a fresh database first and swapped in only after pg_restore
    succeeded and the checksum matched, so a failure leaves the live database
    untouched and nothing a later migration created survives.
    """
    if in_place and target_url is not None:
        raise UsageError("--in-place and --target-url name two different targets",
                         hint="--in-place replaces the environment's own database; leave out one of them")
    # the store (boto3 builds its client: ~0.5 s of CPU) and the catalog are read beside the target's checks
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="open-backup") as pool:
        opening = pool.submit(open_backup, settings, key_or_latest, ui=ui)
        try:
            target = _target(settings, target_url, source_url, in_place,
                             lambda: opening.result()[1].manifest.database)
            name = target.database
            with postgres.admin_connection(target, timeout=settings.connect_timeout_s) as conn:
                exists = postgres.database_exists(conn, name)
                server_major = postgres.major_version(conn.execute(sa.text("SHOW server_version")).scalar_one())
        except BaseException:
            opening.result()  # both failed: the backup's error first, as when it was looked at first
            raise
        store, info = opening.result()
    client = restore_client(info, target, server_major, settings.client_places)  # before anything changes
    ui.say(f"pg_restore: {client.describe()}")
    if exists and in_place_confirmed_name != name:
        raise ConfirmationRequired(
            name,
            f"restoring into {mask_url(target)} would replace the existing database {name!r}: "
            "everything in it now is lost",
            hint=f"type the database name when asked, or pass --yes-i-know {name}; "
            f"leave out {'--in-place' if in_place else '--target-url'} to restore into a new database instead",
        )
    t0 = time.monotonic()
    work = database_name(name, f"__restoring_{clock.stamp()}") if exists else name
    # replacing a database: hold the deploy lock on it, so no deploy runs while it is restored
    # (the swap ends every session of the live database, the lock's too, once the restore is in)
    held = lock.hold(settings, target, "restore") if exists else contextlib.nullcontext()
    with held:
        try:
            postgres.create_database(target, work)
        except sa.exc.DBAPIError as exc:
            raise DbopsError(
                f"cannot create the database {work!r} to restore into on {mask_url(target)}: {reason(exc, target)}",
                hint="the restoring user needs CREATEDB on that server; nothing was changed",
            ) from None
        return _restore_and_swap(settings, store, info, target, name, work, exists, client, t0, ui,
                                 jobs=default_jobs() if jobs is None else jobs)


def _target(settings: Settings, target_url: URL | str | None, source_url: URL | None, in_place: bool,
            backup_database) -> URL:
    """The database to restore into (``backup_database()``: the backup's database name, asked only when the
    source URL names none)."""
    if in_place:
        return source_url or environment_url(settings)
    if target_url is None:
        if source_url is None:
            source_url = environment_url(settings)
        base = source_url.database or backup_database() or "restored"
        return source_url.set(database=database_name(base, f"_restored_{clock.stamp()}"))
    if isinstance(target_url, URL):
        return target_url
    target = normalize_database_url(target_url, variable="--target-url")
    postgres.refuse_pooled(target, variable="--target-url")
    return target


def _restore_and_swap(settings: Settings, store: Store, info: BackupInfo, target: URL, name: str, work: str,
                      exists: bool, client, t0: float, ui: UI, *, jobs: int) -> RestoreResult:
    try:
        done = restore_archive(settings, store, info, target.set(database=work), ui=ui, client=client, jobs=jobs)
        if exists:
            swap_in(target, name, work)
    except BaseException as exc:
        _drop_quietly(target, work)
        if isinstance(exc, DbopsError):  # what the cleanup did, beside the error's own advice: the same kind
            done = (f"the live database {name!r} was not touched; " if exists else "") \
                + f"the partial restore ({work}) was dropped"
            raise exc.with_context(hint=f"{done}; {exc.hint}" if exc.hint else done) from exc
        raise
    return RestoreResult(info.key, mask_url(target), name, exists, done.sha256, done.size,
                         round(time.monotonic() - t0, 3), client.describe(), jobs=done.jobs, fetch_s=done.fetch_s,
                         restore_s=done.restore_s, single_stream_why=done.single_stream_why)


def _server_major(settings: Settings, url: URL) -> int:
    with postgres.connect(url, name="dbops restore", timeout=settings.connect_timeout_s) as conn:
        return postgres.major_version(conn.execute(sa.text("SHOW server_version")).scalar_one())


def _drop_quietly(url: URL, name: str) -> None:
    try:
        postgres.drop_database(url, name)
    except DbopsError as exc:
        log.warning("could not drop %s: %s", name, exc.message)
