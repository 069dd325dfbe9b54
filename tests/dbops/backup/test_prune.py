"""The local folder store and the pruning rules: what goes, what stays, what is never touched."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from dbops import backup

from .helpers import FIRST_REV, settings_for


def test_local_folder_store_and_pruning_rules(project, app_db):
    folder = project / "backups"
    settings = settings_for(project, app_db, backup_url=str(folder), env="local")
    result = backup.create_backup(settings, settings.database_url)
    backup.verify_backup(settings)
    env_dir = folder / "local"
    stem = result.key.rsplit("/", 1)[-1][: -len(".dump")]

    def clone(stamp: str, *, manifest=True, verified=True):
        new = f"{stamp}_{FIRST_REV}"
        shutil.copy(env_dir / f"{stem}.dump", env_dir / f"{new}.dump")
        if manifest:
            shutil.copy(env_dir / f"{stem}.manifest.json", env_dir / f"{new}.manifest.json")
        if verified:
            shutil.copy(env_dir / f"{stem}.verified.json", env_dir / f"{new}.verified.json")
        return f"local/{new}.dump"

    import datetime as dt

    recent = clone((dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y%m%dT%H%M%S.%fZ"))
    old_verified = [clone("20200101T000000.000000Z"), clone("20200102T000000.000000Z"),
                    clone("20200103T000000.000000Z")]
    old_unverified = clone("20200104T000000.000000Z", verified=False)
    old_incomplete = clone("20200105T000000.000000Z", manifest=False, verified=False)
    outside = folder / "prod" / "20200101T000000Z_x.dump"  # another environment's prefix
    outside.parent.mkdir()
    outside.write_bytes(b"not ours")

    killed = env_dir / "20200106T000000Z_x.dump.partial"  # what a backup killed with SIGKILL leaves
    killed.write_bytes(b"half a dump")
    os.utime(killed, (time.time() - 3 * 86400,) * 2)
    just_started = env_dir / "29990101T000000Z_x.dump.partial"  # a backup running right now
    just_started.write_bytes(b"in progress")

    listed = backup.list_backups(settings)
    assert [b.key for b in listed] == [result.key, recent, old_incomplete, old_unverified, *old_verified[::-1]]
    assert [b.complete for b in listed] == [True, True, False, True, True, True, True]

    dry = backup.prune_backups(settings, keep=1, confirm=False)
    assert dry.dry_run and [b.key for b in dry.delete] == old_verified[::-1]
    assert all((folder / k).exists() for k in old_verified)  # a dry run deletes nothing
    assert "would delete" in backup.render_prune(dry) and "add --confirm" in backup.render_prune(dry)
    assert [u.key for u in dry.stale_uploads] == ["local/20200106T000000Z_x.dump"] and killed.exists()

    kept = backup.prune_backups(settings, keep=3, confirm=False)  # newest, recent and old_unverified count
    assert [b.key for b in kept.delete] == old_verified[::-1]
    assert {b.key: why for b, why in kept.keep}[old_unverified] == "within --keep 3"
    assert [b.key for b in backup.prune_backups(settings, keep=4).delete] == old_verified[::-1][1:]

    done = backup.prune_backups(settings, keep=1, confirm=True)
    reasons = {b.key: why for b, why in done.keep}
    assert reasons[result.key] == "newest"
    assert reasons[recent] == "younger than 1 day(s)"
    assert "never pruned" in reasons[old_unverified] and "never pruned" in reasons[old_incomplete]
    for key in old_verified:
        for suffix in (".dump", ".manifest.json", ".verified.json"):
            assert not (folder / key.replace(".dump", suffix)).exists()
    assert [b.key for b in backup.list_backups(settings)] == [result.key, recent, old_incomplete, old_unverified]
    assert outside.exists()
    assert not killed.exists() and just_started.exists()
    with pytest.raises(Exception, match="--keep must be at least 1"):
        backup.prune_backups(settings, keep=0)
