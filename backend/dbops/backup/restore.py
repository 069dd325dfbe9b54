"""Restore a backup, checking its checksum while streaming: into a new database, or in place through the swap.

pg_restore may commit before the last byte's checksum is known, so a restore
always goes into a fresh database; an existing one is replaced only by
:func:`dbops.backup.swap.swap_in`, after pg_restore succeeded and the
checksum matched.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass

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
from .catalog import CHUNK, BackupInfo, checked_store, find_backup
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
                 schema_only: bool = False) -> tuple[str, int, list[str]]:
    """pg_restore the backup into the (empty) database ``url``: (sha256, size, ``pg_restore --list`` lines).

    ``client``: the pg_restore to run (:func:`restore_client`; by default the one
    for ``url``'s server, asked here).  ``list_toc`` also streams the same bytes
    into ``pg_restore --list``; ``schema_only`` restores the definitions without the data.
    """
    if client is None:
        client = restore_client(info, url, _server_major(settings, url), settings.client_places)
    sinks = [pgdump.restore(url, timeout=settings.backup_timeout_s, client=client, schema_only=schema_only)]
    if schema_only:  # pg_restore stops reading after the definitions: the checksum still reads every byte
        sinks.insert(0, _Drain())
    toc = pgdump.list_archive(timeout=settings.backup_timeout_s, client=client) if list_toc else None
    if toc is not None:
        sinks.append(toc)
    try:
        sha, size = _stream(store, info, sinks, ui=ui, label=f"restore {info.key}")
    except BaseException:
        for s in sinks:
            s.kill()
        raise
    return sha, size, (toc.stdout_lines if toc is not None else [])


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


def _stream(store: Store, info: BackupInfo, sinks: list[pgdump.Restore], *, ui: UI, label: str) -> tuple[str, int]:
    """Stream the object into every sink, hashing it; raise ChecksumMismatch at the end if it differs.

    ``sinks[0]`` must read everything; later sinks (``pg_restore --list``) may
    stop reading once they have what they need.
    """
    assert info.manifest is not None
    show = ui.progress()
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
            show.update(f"{label}: {rate(size, time.monotonic() - t0)}")
    finally:
        body.close()
        show.done()
    actual, manifest = digest.hexdigest(), info.manifest
    if actual != manifest.sha256 or size != manifest.size:
        for s in sinks:
            s.kill()
        raise ChecksumMismatch(
            info.key,
            f"sha256 {manifest.sha256[:16]}… ({manifest.size} bytes)",
            f"sha256 {actual[:16]}… ({size} bytes)",
            hint="the object was changed or damaged after the backup; restore another backup",
        )
    for s in sinks:
        s.wait()
    show.done(f"{label}: {rate(size, time.monotonic() - t0)}, checksum ok")
    return actual, size


def restore_backup(
    settings: Settings,
    key_or_latest: str | None,
    target_url: URL | str | None,
    *,
    in_place_confirmed_name: str | None = None,
    source_url: URL | None = None,
    in_place: bool = False,
    ui: UI = SILENT,
) -> RestoreResult:
    """Restore a backup, checking its checksum while streaming.

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
    store, info = open_backup(settings, key_or_latest, ui=ui)
    if in_place:
        target = source_url or environment_url(settings)
    elif target_url is None:
        if source_url is None:
            source_url = environment_url(settings)
        base = source_url.database or info.manifest.database or "restored"
        target = source_url.set(database=database_name(base, f"_restored_{clock.stamp()}"))
    elif isinstance(target_url, URL):
        target = target_url
    else:
        target = normalize_database_url(target_url, variable="--target-url")
        postgres.refuse_pooled(target, variable="--target-url")
    name = target.database
    with postgres.admin_connection(target, timeout=settings.connect_timeout_s) as conn:
        exists = postgres.database_exists(conn, name)
        server_major = postgres.major_version(conn.execute(sa.text("SHOW server_version")).scalar_one())
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
        return _restore_and_swap(settings, store, info, target, name, work, exists, client, t0, ui)


def _restore_and_swap(settings: Settings, store: Store, info: BackupInfo, target: URL, name: str, work: str,
                      exists: bool, client, t0: float, ui: UI) -> RestoreResult:
    try:
        sha, size, _ = restore_into(settings, store, info, target.set(database=work), ui=ui, client=client)
        if exists:
            swap_in(target, name, work)
    except BaseException as exc:
        _drop_quietly(target, work)
        if isinstance(exc, DbopsError) and exc.hint is None:  # what the cleanup did: a new error, the same kind
            raise exc.with_context(hint=(f"the live database {name!r} was not touched; " if exists else "")
                                   + f"the partial restore ({work}) was dropped") from exc
        raise
    return RestoreResult(info.key, mask_url(target), name, exists, sha, size, round(time.monotonic() - t0, 3),
                         client.describe())


def _server_major(settings: Settings, url: URL) -> int:
    with postgres.connect(url, name="dbops restore", timeout=settings.connect_timeout_s) as conn:
        return postgres.major_version(conn.execute(sa.text("SHOW server_version")).scalar_one())


def _drop_quietly(url: URL, name: str) -> None:
    try:
        postgres.drop_database(url, name)
    except DbopsError as exc:
        log.warning("could not drop %s: %s", name, exc.message)
