"""prune-backups: which backups go, which stay and why; a dry run unless confirmed.

The policy keeps the union of its rules: the newest ``keep`` backups, every
backup younger than ``days`` (at least a day), and by generations the newest
backup of each of the last ``daily`` days, ``weekly`` ISO weeks and
``monthly`` months that have a backup (UTC; a period without a backup is
skipped, not counted, as restic and borg count them).

Never deleted: the newest backup, the newest verified one, any not verified,
any without a manifest (or with a damaged one), and anything outside
``<prefix>/<env>/``; an empty or root prefix is refused before anything is
listed (:func:`dbops.backup.catalog.env_prefix`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import clock
from ..errors import UsageError
from ..settings import Settings
from ..storage import Upload
from ..units import human_size
from .catalog import BackupInfo, env_prefix, list_backups, open_backup_store

#: the generations: (name, the flag, the period a backup falls in, how a period is shown)
_GENERATIONS: tuple[tuple[str, str, Callable[[dt.datetime], tuple[int, ...]], Callable[[tuple[int, ...]], str]],
                    ...] = (
    ("daily", "--daily", lambda t: (t.year, t.month, t.day), lambda p: f"{p[0]:04d}-{p[1]:02d}-{p[2]:02d}"),
    ("weekly", "--weekly", lambda t: tuple(t.isocalendar())[:2], lambda p: f"{p[0]:04d}-W{p[1]:02d}"),
    ("monthly", "--monthly", lambda t: (t.year, t.month), lambda p: f"{p[0]:04d}-{p[1]:02d}"),
)


@dataclass(frozen=True)
class RetentionPolicy:
    """What prune-backups keeps: the newest ``keep``, those younger than ``days``, and the generations."""

    keep: int = 7
    days: int | None = None
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    def describe(self) -> str:
        parts = [f"--keep {self.keep}"] + ([f"--days {self.days}"] if self.days else [])
        parts += [f"{flag} {getattr(self, name)}" for name, flag, _, _ in _GENERATIONS if getattr(self, name)]
        return " ".join(parts)


@dataclass
class PruneResult:
    dry_run: bool
    delete: list[BackupInfo]
    keep: list[tuple[BackupInfo, str]]
    #: uploads of killed backups older than a day (aborted with --confirm)
    stale_uploads: list[Upload] = field(default_factory=list)
    #: why each deleted backup goes (by key)
    why_deleted: dict[str, str] = field(default_factory=dict)
    policy: RetentionPolicy | None = None

    def to_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "policy": self.policy.describe() if self.policy else None,
            "delete": [{"key": b.key, "why": self.why_deleted.get(b.key, "")} for b in self.delete],
            "keep": [{"key": b.key, "why": why} for b, why in self.keep],
            "stale_uploads": [u.key for u in self.stale_uploads],
        }


def generations(backups: list[BackupInfo], policy: RetentionPolicy) -> dict[str, str]:
    """The backups the generation rules keep, by key, with the rule: the newest complete backup of each of the
    last ``daily`` days, ``weekly`` ISO weeks, ``monthly`` months that have one (UTC)."""
    kept: dict[str, str] = {}
    complete = sorted((b for b in backups if b.complete), key=lambda b: (b.time, b.key), reverse=True)
    for name, flag, period_of, show in _GENERATIONS:
        count = getattr(policy, name)
        seen: set[tuple[int, ...]] = set()
        for b in complete:
            period = period_of(b.time.astimezone(dt.UTC))
            if period in seen:
                continue
            if len(seen) == count:
                break
            seen.add(period)
            kept.setdefault(b.key, f"{name}: the newest of {show(period)} ({flag} {count})")
    return kept


def prune_backups(settings: Settings, *, keep: int, days: int | None = None, daily: int | None = None,
                  weekly: int | None = None, monthly: int | None = None, confirm: bool = False) -> PruneResult:
    """Delete the backups the policy does not keep; a dry run unless ``confirm``.

    ``daily``/``weekly``/``monthly`` (None: the settings' ``DBOPS_BACKUP_KEEP_*``) keep the newest backup
    of each of that many recent days, ISO weeks, months.  Never deleted: the newest backup, the newest
    verified one, any younger than a day (or ``days``), any not verified (verify-backup matched its
    manifest's checksum), any without a readable manifest, and anything outside ``<prefix>/<env>/``.
    Unfinished uploads older than a day (a backup killed outright) are aborted too.
    """
    policy = RetentionPolicy(
        keep=keep, days=days,
        daily=settings.backup_keep_daily if daily is None else daily,
        weekly=settings.backup_keep_weekly if weekly is None else weekly,
        monthly=settings.backup_keep_monthly if monthly is None else monthly,
    )
    if keep < 1:
        raise UsageError(f"--keep must be at least 1, got {keep}", hint="the newest backup is always kept")
    if days is not None and days < 1:
        raise UsageError(f"--days must be at least 1, got {days}")
    for name, flag, _, _ in _GENERATIONS:
        if getattr(policy, name) < 0:
            raise UsageError(f"{flag} must be 0 or more, got {getattr(policy, name)}")
    store = open_backup_store(settings)
    prefix = env_prefix(store, settings)  # refuses an empty or root prefix before anything is listed
    backups = list_backups(settings, store=store)
    now = clock.now()
    min_age = dt.timedelta(days=max(1, days or 1))
    by_generation = generations(backups, policy)
    newest_verified = next((b.key for b in backups if b.verified), None)
    delete, kept, why_deleted = [], [], {}
    rank = 0  # position among complete backups: only those count towards --keep
    for b in backups:
        if b.damaged:
            why = f"damaged manifest ({b.damaged}): never pruned"
        elif not b.complete:
            why = "no manifest (incomplete): never pruned"
        else:
            rank += 1
            if rank == 1:
                why = "newest"
            elif rank <= keep:
                why = f"within --keep {keep}"
            elif now - b.time < min_age:
                why = f"younger than {min_age.days} day(s)"
            elif b.key in by_generation:
                why = by_generation[b.key]
            elif b.key == newest_verified:
                why = "the newest verified backup: never pruned"
            elif not b.verified:
                why = "not verified (run verify-backup): never pruned"
            else:
                why = ""
        if why:
            kept.append((b, why))
        else:
            delete.append(b)
            why_deleted[b.key] = _why_deleted(policy, min_age)
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
    return PruneResult(dry_run=not confirm, delete=delete, keep=kept, stale_uploads=stale, why_deleted=why_deleted,
                       policy=policy)


def _why_deleted(policy: RetentionPolicy, min_age: dt.timedelta) -> str:
    """Why a backup goes: every rule that could have kept it and did not."""
    parts = [f"beyond --keep {policy.keep}", f"older than {min_age.days} day(s)"]
    generation = [f"{flag} {getattr(policy, name)}" for name, flag, _, _ in _GENERATIONS if getattr(policy, name)]
    if generation:
        parts.append(f"not the newest of its period within {', '.join(generation)}")
    return ", ".join(parts) + "; verified, and a newer verified backup exists"


def render_prune(result: PruneResult) -> str:
    """What ``inv prune-backups`` prints: what goes and why, what stays and why."""
    lines = [f"policy: {result.policy.describe()}"] if result.policy else []
    verb = "would delete" if result.dry_run else "deleted"
    for b in result.delete:
        why = result.why_deleted.get(b.key)
        lines.append(f"{verb}: {b.key} ({b.time:%Y-%m-%d %H:%M} UTC, {human_size(b.size)})"
                     + (f": {why}" if why else ""))
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
