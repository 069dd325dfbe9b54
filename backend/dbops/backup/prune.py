"""prune-backups: which backups go, which stay and why; a dry run unless confirmed.

Never deleted: the newest backup, any younger than a day (or ``--days``), any
not verified, any without a manifest, and anything outside ``<prefix>/<env>/``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .. import clock
from ..errors import UsageError
from ..settings import Settings
from ..storage import Upload
from ..units import human_size
from .catalog import BackupInfo, env_prefix, list_backups, open_backup_store


@dataclass
class PruneResult:
    dry_run: bool
    delete: list[BackupInfo]
    keep: list[tuple[BackupInfo, str]]
    #: uploads of killed backups older than a day (aborted with --confirm)
    stale_uploads: list[Upload] = field(default_factory=list)


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
    store = open_backup_store(settings)
    prefix = env_prefix(store, settings)
    backups = list_backups(settings, store=store)
    now = clock.now()
    min_age = dt.timedelta(days=max(1, days or 1))
    delete, kept = [], []
    rank = 0  # position among complete backups: only those count towards --keep
    for i, b in enumerate(backups):
        if not b.complete:
            why = "no manifest (incomplete): never pruned"
        else:
            rank += 1
            if i == 0 or rank == 1:
                why = "newest"
            elif rank <= keep:
                why = f"within --keep {keep}"
            elif now - b.time < min_age:
                why = f"younger than {min_age.days} day(s)"
            elif not b.verified:
                why = "not verified (run verify-backup): never pruned"
            else:
                why = ""
        if why:
            kept.append((b, why))
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


def render_prune(result: PruneResult) -> str:
    """What ``inv prune-backups`` prints: what goes, what stays and why."""
    lines = []
    verb = "would delete" if result.dry_run else "deleted"
    for b in result.delete:
        lines.append(f"{verb}: {b.key} ({b.time:%Y-%m-%d %H:%M} UTC, {human_size(b.size)})")
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
