"""Restore drills: the recovery time of a backup, measured step by step and recorded beside it; the status check.

:func:`drill` restores a backup (the newest by default) as verify-backup
does, into a throwaway PostgreSQL of the source's major, but the way a
restore on the bad day runs: fetched through parallel ranged reads, then
``pg_restore --jobs`` (:func:`dbops.backup.restore.restore_archive`).  It times
each step (fetch, decrypt, restore, checks: the table of contents, the
tables and every row count against the manifest) and stores a
:class:`~dbops.backup.manifest.Drill` as ``<stem>.drill.json``, passing or
not; a passing drill also writes the ``.verified.json`` verify-backup would.

:func:`drill_status` is the check a monitor or a scheduled job runs
(``inv backups --check``): the environment's last drill must be at most
``DBOPS_DRILL_MAX_AGE_HOURS`` old, have passed, and have recovered within
``DBOPS_DRILL_TARGET_S``.  Scheduling belongs to the platform (a Render cron
job, a scheduled GitHub Actions workflow): see docs/backups.md.
"""

from __future__ import annotations

import datetime as dt
import platform
import time
from dataclasses import dataclass, field

from sqlalchemy.engine import URL

from .. import clock, postgres
from ..errors import CheckFailed, DbopsError
from ..postgres import dump as pgdump
from ..servers.throwaway import programs_for_major, throwaway_server
from ..settings import Settings
from ..ui import SILENT, UI
from . import crypt
from .catalog import BackupInfo, checked_store, find_backup, list_backups
from .contents import restored_contents
from .manifest import Drill, Verification
from .restore import default_jobs, restore_archive, restore_client
from .verify import differences


def drill(settings: Settings, key_or_latest: str | None = None, *, jobs: int | None = None,
          ui: UI = SILENT) -> Drill:
    """Restore a backup into a throwaway server of the source's major, check it, time every step, record it.

    Returns the stored :class:`Drill`.  A drill whose restore or checks fail
    is recorded too (``ok`` false, with the problems) and then raised
    (:class:`CheckFailed`, or the restore's own error); a drill that could not
    start (no server programs of that major, no key for an encrypted backup)
    records nothing.
    """
    jobs = default_jobs() if jobs is None else jobs
    store = checked_store(settings)
    info = find_backup(settings, key_or_latest, store=store, ui=ui)
    crypt.check_key(settings, info)
    source_major = info.manifest.server_major
    bin_dir = programs_for_major(source_major, f"backup {info.key} was not drilled", settings.client_places)
    client = restore_client(info, URL.create("postgresql"), source_major, settings.client_places)
    ui.say(f"drill {info.key}: a throwaway PostgreSQL {source_major} from {bin_dir}; pg_restore --jobs {jobs}: "
           f"{client.describe()}")
    record = Drill(key=info.key, sha256=info.manifest.sha256, jobs=jobs, pg_restore=client.describe(),
                   host=platform.node())
    t0 = time.monotonic()
    with throwaway_server(bin_dir, prefix="dbops-drill-") as server:
        url = postgres.create_database(server.url(), "drill")
        record.server_s = round(time.monotonic() - t0, 3)
        try:
            done = restore_archive(settings, store, info, url, ui=ui, list_toc=True, client=client, jobs=jobs)
        except DbopsError as exc:
            _store(settings, store, info, record, [f"restore failed: {exc.message}"])
            raise
        record.jobs, record.single_stream_why = done.jobs, done.single_stream_why
        record.fetch_s, record.decrypt_s, record.restore_s = done.fetch_s, done.decrypt_s, done.restore_s
        t1 = time.monotonic()
        restored, server_version = restored_contents(url)
        problems = differences(info.manifest.tables, restored, pgdump.toc_tables(done.toc))
        record.checks_s = round(time.monotonic() - t1, 3)
    record.server_version = server_version
    record.server_major = postgres.major_version(server_version)
    record.tables, record.rows = len(restored), sum(restored.values())
    _store(settings, store, info, record, problems)
    if problems:
        raise CheckFailed(
            f"drill of backup {info.key}: it did not restore to what its manifest describes "
            f"({len(problems)} problem(s)); recorded in {info.drill_key}",
            details="\n".join(problems),
            hint="do not rely on this backup; take a new one with `inv backup` and drill it",
        )
    store.put_json(info.verified_key, Verification(
        key=info.key, sha256=done.sha256, size=done.size, verified_at=record.drilled_at,
        duration_s=record.recovery_s, tables=restored, pg_restore_version=client.version,
        pg_restore=client.describe(), server_version=server_version, server_major=record.server_major,
    ).to_dict())
    return record


def _store(settings: Settings, store, info: BackupInfo, record: Drill, problems: list[str]) -> None:
    """Finish the record (time, recovery time, outcome) and store it beside the backup."""
    record.drilled_at = clock.iso(precise=True)
    record.ok = not problems
    record.problems = list(problems)
    steps = (record.fetch_s, record.decrypt_s, record.restore_s, record.checks_s)
    record.recovery_s = round(sum(s or 0.0 for s in steps), 3) if record.ok else None
    store.put_json(info.drill_key, record.to_dict())


@dataclass
class DrillStatus:
    """``inv backups --check``: whether the environment's last drill is recent, passed and fast enough."""

    ok: bool
    #: the backup whose drill is the newest (None: never drilled) and that drill
    key: str | None
    drill: Drill | None
    #: what is wrong, one line each (empty when ``ok``)
    problems: list[str] = field(default_factory=list)
    max_age_h: float = 0.0
    target_s: float = 0.0

    def to_dict(self) -> dict:
        return {"ok": self.ok, "key": self.key, "drill": self.drill.to_dict() if self.drill else None,
                "problems": list(self.problems), "max_age_h": self.max_age_h, "target_s": self.target_s}


def drill_status(settings: Settings, backups: list[BackupInfo] | None = None, *,
                 now: dt.datetime | None = None) -> DrillStatus:
    """The environment's last drill (of any complete backup) against ``DBOPS_DRILL_MAX_AGE_HOURS`` and
    ``DBOPS_DRILL_TARGET_S``.  ``backups``: :func:`list_backups`' answer when the caller has it."""
    backups = list_backups(settings) if backups is None else backups
    max_age, target = settings.drill_max_age_h, settings.drill_target_s
    drilled = [b for b in backups if b.complete and b.drill is not None and b.drill.drilled_at
               and b.drill.sha256 == b.manifest.sha256]
    if not drilled:
        newest = next((b.key for b in backups if b.complete), None)
        why = (f"no backup of --env {settings.env} was ever drilled" if newest else
               f"--env {settings.env} has no complete backup to drill")
        return DrillStatus(False, None, None, [why], max_age, target)
    last = max(drilled, key=lambda b: b.drill.drilled_at)
    d = last.drill
    problems = []
    age_h = ((now or clock.now()) - dt.datetime.fromisoformat(d.drilled_at)).total_seconds() / 3600
    if age_h > max_age:
        problems.append(f"the last drill ({last.key}) is {age_h:.1f} hours old; DBOPS_DRILL_MAX_AGE_HOURS is "
                        f"{max_age:g}")
    if not d.ok:
        problems.append(f"the last drill ({last.key}) failed: {'; '.join(d.problems) or 'see its record'}")
    elif d.recovery_s is not None and d.recovery_s > target:
        problems.append(f"the last drill ({last.key}) recovered in {d.recovery_s:.1f}s, over "
                        f"DBOPS_DRILL_TARGET_S ({target:g}s)")
    return DrillStatus(not problems, last.key, d, problems, max_age, target)


def check_drills(settings: Settings, backups: list[BackupInfo] | None = None, *, ui: UI = SILENT) -> DrillStatus:
    """:func:`drill_status`, told to ``ui`` when it passes; :class:`CheckFailed` (exit 1) naming each problem
    and the command that fixes it when it does not."""
    status = drill_status(settings, backups)
    if not status.ok:
        raise CheckFailed(
            f"drill check of --env {settings.env}: {status.problems[0]}",
            details="\n".join(status.problems[1:]) or None,
            hint=f"run `inv drill --env {settings.env}` (a scheduled job should: see docs/backups.md); "
            "DBOPS_DRILL_MAX_AGE_HOURS and DBOPS_DRILL_TARGET_S set the limits",
        )
    d = status.drill
    ui.ok(f"drill check: the last drill ({status.key}, {(d.drilled_at or '')[:16].replace('T', ' ')} UTC) passed "
          f"and recovered in {d.recovery_s:.1f}s (target {status.target_s:g}s, at most {status.max_age_h:g} hours old)")
    return status
