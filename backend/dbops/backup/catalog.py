"""The backups in a store: key layout, manifests, :class:`BackupInfo`, listing and finding them.

Layout of a backup under ``BACKUP_URL``::

    <prefix>/<env>/<UTC timestamp>_<alembic revision>.dump           pg_dump -Fc, streamed
    <prefix>/<env>/<UTC timestamp>_<alembic revision>.manifest.json  written only after the dump was checked
    <prefix>/<env>/<UTC timestamp>_<alembic revision>.verified.json  written by verify-backup
    <prefix>/<env>/<UTC timestamp>_<alembic revision>.drill.json     written by drill (its recovery time)

A ``BACKUP_URL`` that already ends in the environment's name (``s3://bucket/prod`` for prod) is that
environment's folder: its backups are ``prod/<timestamp>_...``, not ``prod/prod/...`` (:func:`env_key`).

A dump without its manifest is not a backup: listing shows it as incomplete,
restore refuses it, and prune never touches it.  A manifest that cannot be
read (not JSON, not an object, cut short) marks its backup damaged: listed
as such with a warning and treated like an incomplete one, so one damaged
object never blocks listing, ``latest``, restoring another backup or pruning.  Artifacts of a deploy (its
dry-run SQL, its report) are stored beside the backup it took.  The table
``inv backups`` prints is :func:`render_backups`.
"""

from __future__ import annotations

import datetime as dt
import logging
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from .. import clock
from ..errors import StorageError, UsageError
from ..formats import text_table
from ..settings import Settings
from ..storage import Store, open_store
from ..ui import SILENT, UI
from ..units import human_size
from .manifest import Drill, Manifest, Verification

log = logging.getLogger(__name__)

#: backups are read and written in chunks of this size
CHUNK = 256 * 1024
DUMP_SUFFIX = ".dump"
MANIFEST_SUFFIX = ".manifest.json"
VERIFIED_SUFFIX = ".verified.json"
DRILL_SUFFIX = ".drill.json"
#: a dump's file name: ``clock.STAMP`` (UTC, to the microsecond: two backups in the same second get
#: different keys), then the revision
_NAME = re.compile(r"^(?P<stamp>\d{8}T\d{6}\.\d{6}Z)_(?P<revision>.+)\.dump$")


@dataclass
class BackupInfo:
    """One backup in the store, with its manifest (None: incomplete) and verification record."""

    key: str
    size: int
    time: dt.datetime
    revision: str
    manifest: Manifest | None = None
    verification: Verification | None = None
    #: the last restore drill of this backup (None: never drilled)
    drill: Drill | None = None
    #: why the manifest could not be read (the backup is then treated as incomplete)
    damaged: str | None = None

    @property
    def stem(self) -> str:
        return self.key[: -len(DUMP_SUFFIX)]

    @property
    def manifest_key(self) -> str:
        return manifest_key(self.key)

    @property
    def verified_key(self) -> str:
        return self.stem + VERIFIED_SUFFIX

    @property
    def drill_key(self) -> str:
        return self.stem + DRILL_SUFFIX

    @property
    def complete(self) -> bool:
        return self.manifest is not None

    @property
    def verified(self) -> bool:
        """verify-backup restored it and its checksum matched the manifest's."""
        return bool(self.manifest and self.verification and self.verification.sha256 == self.manifest.sha256)

    @property
    def duration_s(self) -> float | None:
        return self.manifest.duration_s if self.manifest else None

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "time": clock.iso(self.time, precise=True),
            "revision": self.revision,
            "size": self.size,
            "duration_s": self.duration_s,
            "complete": self.complete,
            "verified": self.verified,
            "verified_at": self.verification.verified_at if self.verification else None,
            "sha256": self.manifest.sha256 if self.manifest else None,
            "damaged": self.damaged,
            "drill": self.drill.to_dict() if self.drill else None,
        }


def env_key(store: Store, settings: Settings, *parts: str) -> str:
    """A key under ``<prefix>/<env>``; a location that already ends in the environment's name
    (``BACKUP_URL=s3://bucket/prod`` for prod) is not given it twice: ``prod/<name>``, not ``prod/prod/<name>``."""
    return store.key(*parts) if store.names(settings.env) else store.key(settings.env, *parts)


def env_prefix(store: Store, settings: Settings) -> str:
    """``<prefix>/<env>/`` (:func:`env_key`): everything this environment's backups may touch.

    An empty or root prefix (the whole bucket or folder) is refused: listing, pruning or restoring must never
    reach another environment's backups or anything else kept there.
    """
    key = env_key(store, settings)
    if not key.strip("/") or not settings.env.strip("/") or "/" in settings.env or ".." in key.split("/"):
        raise UsageError(
            f"refusing to use {store.describe()}: the environment's prefix {key + '/'!r} is empty or the root, "
            "so it would reach every object there",
            hint="each environment keeps its backups under <BACKUP_URL>/<env>/; set --env to an environment's name "
            "and BACKUP_URL to s3://bucket/prefix or a folder; nothing was listed or deleted",
        )
    return key + "/"


#: the endings of a file's name that a BACKUP_URL may name by mistake (a dump, an archive, a manifest)
_FILE_ENDINGS = (".dump", ".sql", ".gz", ".zst", ".lz4", ".tar", ".bak", ".backup", ".json", ".zip", ".age")


def refuse_file_location(settings: Settings, store: Store | None = None) -> None:
    """Refuse a BACKUP_URL that names a file rather than a folder or bucket (``s3://bucket/prod/db.dump``).

    Checked: a local path that is a file (or lies under one), a name ending like a file's (.dump, .sql,
    .gz …) and, given the ``store``, an S3 object stored at exactly the prefix (one HEAD request).
    """
    kind, where, prefix = settings.backup_location()
    shown = f"s3://{where}/{prefix}".rstrip("/") if kind == "s3" else where
    problem = None
    if kind == "file":
        path = Path(where)
        problem = next((f"{p} is a file" for p in (path, *path.parents) if p.is_file()), None)
    last = (prefix or where).rstrip("/").rsplit("/", 1)[-1]
    if problem is None and last.lower().endswith(_FILE_ENDINGS):
        problem = f"{last!r} is the name of a file"
    if problem is None and kind == "s3" and prefix and store is not None and store.size(prefix) is not None:
        problem = f"an object {prefix!r} is stored there"
    if problem:
        raise UsageError(
            f"BACKUP_URL names a file, not a folder or bucket: {shown} ({problem})",
            hint=f"set {settings.env.upper()}_BACKUP_URL (or BACKUP_URL) to the folder that holds the backups, "
            "e.g. s3://bucket/backups; dbops keeps <folder>/<env>/<time>_<revision>.dump under it",
        )


def dump_key(store: Store, settings: Settings, started: dt.datetime, revision: str) -> str:
    """The key of a dump started at ``started`` of a database at ``revision``."""
    return env_key(store, settings, f"{clock.stamp(started)}_{revision}{DUMP_SUFFIX}")


def manifest_key(key: str) -> str:
    """The manifest's key beside the dump ``key``."""
    return key[: -len(DUMP_SUFFIX)] + MANIFEST_SUFFIX


def open_backup_store(settings: Settings) -> Store:
    """The store BACKUP_URL names, with the S3 endpoint, region and encryption of ``settings`` (not contacted yet).

    A BACKUP_URL that names a file by its path or its name is refused here (:func:`refuse_file_location`).
    """
    refuse_file_location(settings)
    return open_store(settings.backup_location(), endpoint_url=settings.backup_endpoint_url,
                      region=settings.backup_region, sse=settings.backup_sse)


def checked_store(settings: Settings) -> Store:
    """The backup store, its bucket (or folder) and credentials checked."""
    store = open_backup_store(settings)
    store.check()
    refuse_file_location(settings, store)
    return store


def list_backups(settings: Settings, *, store: Store | None = None) -> list[BackupInfo]:
    """Every backup of ``settings.env``, newest first (incomplete ones too, with ``manifest`` None)."""
    store = store or open_backup_store(settings)
    prefix = env_prefix(store, settings)
    refuse_file_location(settings, store)
    objects = {o.key: o for o in store.list(prefix)}
    out = []
    for key, obj in objects.items():
        if not key.endswith(DUMP_SUFFIX) or "/" in key[len(prefix):]:
            continue
        m = _NAME.match(key[len(prefix):])
        if m:
            when = dt.datetime.strptime(m.group("stamp"), clock.STAMP).replace(tzinfo=dt.UTC)
            info = BackupInfo(key, obj.size, when, m.group("revision"))
        else:  # not named by us: its modification time, revision unknown
            info = BackupInfo(key, obj.size, obj.modified, "?")
        if info.manifest_key in objects:
            record, info.damaged = _record(store, info.manifest_key)
            info.manifest = Manifest.from_dict(record) if record is not None else None
        if info.verified_key in objects and info.manifest is not None:
            record, _ = _record(store, info.verified_key)
            info.verification = Verification.from_dict(record) if record is not None else None
        if info.drill_key in objects and info.manifest is not None:
            record, _ = _record(store, info.drill_key)
            info.drill = Drill.from_dict(record) if record is not None else None
        out.append(info)
    return sorted(out, key=lambda b: (b.time, b.key), reverse=True)


def _record(store: Store, key: str) -> tuple[dict | None, str | None]:
    """A manifest or verification record, or (None, why it is damaged); logged when damaged.

    People hear of a damaged manifest from the caller (``inv backups`` warns, the listing says DAMAGED),
    so the log's line is a diagnostic (shown under DBOPS_DEBUG=1).
    """
    try:
        record = store.get_json(key)
    except StorageError as exc:
        if "not valid JSON" not in exc.message:
            raise  # the store itself failed: that is no damaged manifest
        why = "not valid JSON"
    else:
        if isinstance(record, dict) and (
                not key.endswith(MANIFEST_SUFFIX) or (record.get("sha256") and isinstance(record.get("size"), int))):
            return record, None
        why = "not a dbops manifest (no sha256 and size)" if isinstance(record, dict) else "not a JSON object"
    log.info("damaged record %s (%s): skipped", key, why)
    return None, why


def unfinished_uploads(settings: Settings, *, store: Store | None = None):
    """Uploads of this environment that never finished (a killed backup): ``.partial`` files, open multiparts."""
    store = store or open_backup_store(settings)
    return store.incomplete_uploads(env_prefix(store, settings))


def find_backup(settings: Settings, key_or_latest: str | None, *, store: Store, ui: UI = SILENT) -> BackupInfo:
    """The backup named by key (full key or file name) or ``latest``: the newest complete one (``ui`` hears of
    each damaged one passed over)."""
    backups = list_backups(settings, store=store)
    where = f"{store.describe()} ({settings.env})"
    if key_or_latest in (None, "", "latest"):
        for b in backups:
            if b.damaged:
                ui.warn(f"{b.key}: damaged manifest ({b.damaged}); skipped")
        complete = [b for b in backups if b.complete]
        if not complete:
            raise UsageError(f"no complete backup in {where}", hint=f"run `inv backup --env {settings.env}` first")
        return complete[0]
    for b in backups:
        if key_or_latest in (b.key, b.key.rsplit("/", 1)[-1], b.stem, b.stem.rsplit("/", 1)[-1]):
            if b.damaged:
                raise UsageError(
                    f"backup {b.key} has a damaged manifest ({b.damaged}) and cannot be trusted",
                    hint="pick another one from `inv backups --env " + settings.env + "`",
                )
            if not b.complete:
                raise UsageError(
                    f"backup {b.key} has no manifest: it is incomplete or was interrupted, and cannot be trusted",
                    hint="pick another one from `inv backups --env " + settings.env + "`",
                )
            return b
    raise UsageError(f"no backup {key_or_latest!r} in {where}",
                     hint=f"see `inv backups --env {settings.env}` for the keys, or use latest")


def store_beside(settings: Settings, backup_key: str, name: str, data: bytes) -> str:
    """Store an artifact (dry-run SQL, report) next to the backup ``backup_key``, in the same store; returns its key."""
    key = posixpath.join(posixpath.dirname(backup_key), name)
    content_type = "application/json" if name.endswith(".json") else "text/plain"
    open_backup_store(settings).put_bytes(key, data, content_type=content_type)
    return key


def render_backups(backups: list[BackupInfo]) -> str:
    """The table ``inv backups`` prints."""
    rows = []
    for b in backups:
        dur = f"{b.duration_s:.1f}s" if b.duration_s is not None else "-"
        state = "yes" if b.verified else ("no" if b.complete else
                                          f"DAMAGED ({b.damaged})" if b.damaged else "INCOMPLETE (no manifest)")
        drill, recovery = drill_cells(b.drill)
        rows.append([clock.show(b.time), b.revision, human_size(b.size), dur, state, drill, recovery,
                     b.key.rsplit("/", 1)[-1]])
    return text_table(["time", "revision", "size", "duration", "verified", "last drill", "recovery", "name"], rows)


def drill_cells(drill: Drill | None) -> tuple[str, str]:
    """The ``last drill`` and ``recovery`` cells of a backup: when (UTC) and whether it passed, the recovery time."""
    if drill is None:
        return "-", "-"
    when = (drill.drilled_at or "?")[:16].replace("T", " ")
    recovery = f"{drill.recovery_s:.1f}s" if drill.recovery_s is not None else "-"
    return f"{when} {'ok' if drill.ok else 'FAILED'}", recovery
