"""Retention by generations on the real store: backups stamped across months, the policy's kept set exact;
--dry-run changes nothing; the newest verified backup stays; an empty or root prefix is refused."""

from __future__ import annotations

import pytest

from dbops import backup
from dbops.errors import UsageError

from .helpers import BUCKET, FIRST_REV, inv, keys, settings_for, with_password

#: stamps of cloned backups (all verified unless said): days, ISO weeks and months in the past
STAMPS = {
    "a": "20261130T030000.000000Z",  # Mon 30 Nov, 2026-W49
    "b": "20261130T010000.000000Z",  # the same day, earlier
    "c": "20261129T030000.000000Z",  # Sun 29 Nov, 2026-W48
    "d": "20261127T030000.000000Z",  # Fri 27 Nov, 2026-W48
    "e": "20261120T030000.000000Z",  # 2026-W47
    "f": "20261115T030000.000000Z",  # 2026-W46
    "g": "20261031T030000.000000Z",  # October
    "h": "20261001T030000.000000Z",  # October, earlier
    "i": "20260915T030000.000000Z",  # September
    "j": "20260801T030000.000000Z",  # August
    "unverified": "20260701T030000.000000Z",
    "incomplete": "20260601T030000.000000Z",
}


def _listing(s3) -> dict[str, tuple[int, str]]:
    """Every object of the bucket with its size and ETag: what "the store did not change" means."""
    resp = s3.client().list_objects_v2(Bucket=BUCKET)
    return {o["Key"]: (o["Size"], o["ETag"]) for o in resp.get("Contents", [])}


def test_generations_keep_exactly_their_set_and_a_dry_run_changes_nothing(project, app_db, s3):
    settings = settings_for(project, app_db, backup_url=f"s3://{BUCKET}/team")
    newest = backup.create_backup(settings, settings.database_url)
    backup.verify_backup(settings, newest.key)
    client = s3.client()
    stem = newest.key[: -len(".dump")]
    key = {}
    for name, stamp in STAMPS.items():
        new = f"team/staging/{stamp}_{FIRST_REV}"
        key[name] = f"{new}.dump"
        suffixes = (".dump",) if name == "incomplete" else (
            (".dump", ".manifest.json") if name == "unverified" else (".dump", ".manifest.json", ".verified.json"))
        for suffix in suffixes:
            client.copy_object(Bucket=BUCKET, Key=new + suffix, CopySource={"Bucket": BUCKET, "Key": stem + suffix})
    client.put_object(Bucket=BUCKET, Key="team/staging-old/20200101T000000.000000Z_x.dump", Body=b"a neighbour")
    client.put_object(Bucket=BUCKET, Key="team/20200101T000000.000000Z_x.dump", Body=b"above the environment")
    env = {"DBOPS_PROJECT_ROOT": str(project), "STAGING_BACKUP_URL": f"s3://{BUCKET}/team",
           "STAGING_DATABASE_URL": with_password(app_db).render_as_string(hide_password=False)}

    # daily 3: today, 30 Nov (a, not b), 29 Nov; weekly 4: W50 (today), W49 (a), W48 (c), W47 (e);
    # monthly 4: December (today), November (a), October (g, not h), September (i)
    kept = {newest.key, key["a"], key["c"], key["e"], key["g"], key["i"], key["unverified"], key["incomplete"]}
    gone = {key["b"], key["d"], key["f"], key["h"], key["j"]}
    before = _listing(s3)
    r = inv("prune-backups", "--env", "staging", "--keep", "1", "--daily", "3", "--weekly", "4", "--monthly", "4",
            "--dry-run", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _listing(s3) == before  # the dry run changed nothing
    lines = r.stdout.splitlines()
    would = {line.split()[2] for line in lines if line.startswith("would delete:")}
    assert would == gone, r.stdout
    assert all("beyond --keep 1" in line and "--daily 3, --weekly 4, --monthly 4" in line
               for line in lines if line.startswith("would delete:")), r.stdout
    assert {line.split()[1] for line in lines if line.startswith("keep:")} == kept, r.stdout
    assert f"keep: {key['g']} (monthly: the newest of 2026-10 (--monthly 4))" in lines
    assert f"keep: {key['e']} (weekly: the newest of 2026-W47 (--weekly 4))" in lines
    assert f"keep: {key['c']} (daily: the newest of 2026-11-29 (--daily 3))" in lines

    r = inv("prune-backups", "--env", "staging", "--dry-run", "--confirm", env=env)
    assert r.returncode == 2 and "contradict" in r.stderr and _listing(s3) == before

    result = backup.prune_backups(settings, keep=1, daily=3, weekly=4, monthly=4, confirm=True)
    assert {b.key for b in result.delete} == gone
    assert {b.key for b in backup.list_backups(settings)} == kept
    after = set(_listing(s3))
    assert "team/staging-old/20200101T000000.000000Z_x.dump" in after  # outside the prefix: untouched
    assert "team/20200101T000000.000000Z_x.dump" in after
    assert not any(k.startswith(tuple(g[: -len(".dump")] for g in gone)) for k in after)

    # the newest verified backup is never deleted, even when no rule keeps it
    for name in ("a", "c", "e"):
        client.delete_object(Bucket=BUCKET, Key=key[name].replace(".dump", ".verified.json"))
    client.delete_object(Bucket=BUCKET, Key=newest.key.replace(".dump", ".verified.json"))
    result = backup.prune_backups(settings, keep=1, confirm=True)
    reasons = {b.key: why for b, why in result.keep}
    assert reasons[key["g"]] == "the newest verified backup: never pruned"
    assert [b.key for b in result.delete] == [key["i"]]


def test_an_empty_or_root_prefix_is_refused_and_nothing_is_listed_or_deleted(project, app_db, s3):
    settings = settings_for(project, app_db, backup_url=f"s3://{BUCKET}")
    old = "20200101T000000.000000Z_x"
    for suffix in (".dump", ".manifest.json", ".verified.json"):  # what a root-level cleanup would take
        s3.client().put_object(Bucket=BUCKET, Key=old + suffix, Body=b'{"sha256": "0", "size": 1}')
    before = _listing(s3)
    for env in ("", "/"):  # a cleanup run without an environment: the bucket's root
        rootless = settings.with_(env=env)
        with pytest.raises(UsageError, match="empty or the root"):
            backup.prune_backups(rootless, keep=1, confirm=True)
        with pytest.raises(UsageError, match="empty or the root"):
            backup.list_backups(rootless)
    assert _listing(s3) == before
    assert keys(s3) == sorted(before)
