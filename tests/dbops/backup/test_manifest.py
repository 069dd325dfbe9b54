"""dbops.backup.manifest: the typed manifest reads what every version of dbops wrote, and writes the same JSON."""

from __future__ import annotations

import json

from dbops.backup.manifest import Manifest, Verification

WRITTEN = {  # a manifest as `inv backup` writes it (keys in its order)
    "format": "dbops-backup/1", "key": "prod/20261206T101010.123456Z_abc.dump", "env": "prod", "database": "app",
    "revision": "abc", "revisions": ["abc"], "sha256": "f" * 64, "size": 1234, "server_version": "15.18",
    "server_major": 15, "pg_dump_version": "18.6", "pg_dump_major": 18, "pg_dump_path": "/x/pg_dump",
    "pg_dump_why": "the server's major", "pg_dump_ssl": True, "compression": "gzip:1", "database_size": 999,
    "part_size": 8388608, "sse": None, "started_at": "2026-12-06T10:10:10Z", "finished_at": "2026-12-06T10:10:11Z",
    "duration_s": 1.2, "tables": {"public.users": 50},
}


def test_a_written_manifest_reads_back_to_the_same_json():
    manifest = Manifest.from_dict(WRITTEN)
    assert manifest.server_major == 15 and manifest.tables == {"public.users": 50}
    assert json.dumps(manifest.to_dict()) == json.dumps(WRITTEN)


def test_an_older_or_odd_manifest_reads_with_what_it_lacks_unknown():
    oldest = Manifest.from_dict({"sha256": "a" * 64, "size": 10})
    assert (oldest.server_major, oldest.pg_dump_major, oldest.tables, oldest.compression) == (0, 0, {}, None)
    odd = Manifest.from_dict({"sha256": "a" * 64, "size": 10, "server_major": "fifteen", "tables": ["users"]})
    assert (odd.server_major, odd.tables) == (0, {})  # unknown, as a reader of the dict took a missing one


def test_a_verification_record_round_trips():
    record = {"key": "k", "sha256": "s", "size": 1, "verified_at": "t", "duration_s": 2.0, "tables": {"a": 1},
              "pg_restore_version": "18.6", "pg_restore": "/x", "server_version": "15.18", "server_major": 15}
    assert Verification.from_dict(record).to_dict() == record
