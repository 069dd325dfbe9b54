"""Which backup a rehearsal restores, whether a deploy rehearses (:func:`deploy_decision`), and when it stops."""

from __future__ import annotations

from sqlalchemy.engine import URL

from ..backup import BackupInfo, checked_store, find_backup, list_backups
from ..errors import ENV_PY_FIX, DbopsError, RehearsalFailed
from ..postgres import clients
from ..settings import Settings
from ..storage import Store
from ..ui import SILENT, UI
from ..units import human_size
from .model import RehearsalReport


def choose_backup(settings: Settings, store: Store, key: str | None, *,
                  ui: UI = SILENT) -> tuple[BackupInfo, str | None]:
    """The backup named, else the newest verified one, else the newest complete one; (backup, a warning or None)."""
    if key not in (None, "", "latest"):
        return find_backup(settings, key, store=store, ui=ui), None
    backups = [b for b in list_backups(settings, store=store) if b.complete]
    verified = [b for b in backups if b.verified]
    if verified:
        return verified[0], None
    info = find_backup(settings, None, store=store, ui=ui)  # the newest complete one, or the "no backup" error
    return info, (f"no verified backup of {settings.env}: rehearsing on {info.key}, the newest complete one "
                  f"(its checksum is checked while it is restored; `inv verify-backup --env {settings.env}` "
                  "marks one verified)")


def deploy_decision(settings: Settings, wanted: bool | None, backup_key: str | None, *,
                    server_url: URL | None = None) -> tuple[bool, str, BackupInfo | None]:
    """Whether the deploy rehearses, why, and on which backup: (run, why, backup).

    ``wanted``: True (--rehearse), False (--no-rehearse) or None: on by default
    when the backup is at most ``DBOPS_REHEARSE_AUTO_MB`` and a server to
    rehearse on is at hand.  ``backup_key``: the backup the deploy just took;
    None under ``--plan``, which rehearses on the newest backup.
    """
    if wanted is False:
        return False, "--no-rehearse", None
    try:
        store = checked_store(settings)
        info, _ = choose_backup(settings, store, backup_key)
    except DbopsError as exc:
        if backup_key is None:  # --plan before the first backup: nothing to restore yet
            return False, (f"no backup to rehearse on yet ({exc.message}); the deploy rehearses on the one it "
                           "takes"), None
        raise
    size, limit = info.size, settings.rehearse_auto_mb
    shown = human_size(size)
    if wanted:
        return True, "--rehearse", info
    if limit <= 0:
        return False, "off by default (DBOPS_REHEARSE_AUTO_MB=0); --rehearse runs it", info
    if size > limit * 1024 * 1024:
        return False, (f"the backup is {shown}, above DBOPS_REHEARSE_AUTO_MB={limit:g} MiB, so restoring it is not "
                       f"cheap; --rehearse runs it anyway, or `inv rehearse --env {settings.env} --schema-only` "
                       "rehearses on the schema with production's sizes"), info
    if server_url is None:
        major = info.manifest.server_major
        if not major or clients.server_bin(major, settings.client_places) is None:
            return False, (f"on by default for a backup of {shown}, but no PostgreSQL {major or '?'} server programs "
                           f"are installed here (`inv pg-clients --major {major or 'N'}`, or --rehearse-server "
                           "URL)"), info
    return True, f"on by default: the backup is {shown}, at most DBOPS_REHEARSE_AUTO_MB={limit:g} MiB", info


#: the findings that say nothing was rehearsed at all (env.py ran the migration elsewhere): the fix is env.py's
NOTHING_RAN = ("nothing-captured", "not-applied")


def stop_if_unsafe(report: RehearsalReport, *, allow_unsafe: bool = False) -> None:
    """Raise RehearsalFailed when the report has error-level findings (unless ``allow_unsafe``)."""
    if report.errors and not allow_unsafe:
        if any(f.kind in NOTHING_RAN for f in report.errors):
            raise RehearsalFailed(report, hint=f"{ENV_PY_FIX}; then run it again (nothing was rehearsed: "
                                  "this is not a risk that --allow-unsafe accepts)")
        raise RehearsalFailed(report)
