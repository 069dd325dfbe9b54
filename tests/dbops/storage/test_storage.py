"""dbops.storage against a real SeaweedFS and a real folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from s3_server import BUCKETS, SECRET_KEY

from dbops.errors import ConfigError, StorageError
from dbops.settings import load_settings, parse_backup_url
from dbops.storage import MAX_PARTS, MiB, open_store, part_size_for
from dbops.storage.folder import LocalStore
from dbops.storage.s3 import S3Store

BUCKET = BUCKETS[0]


def s3_store(s3, **kw) -> S3Store:
    return S3Store(BUCKET, "pre/fix", endpoint_url=s3.endpoint, region="us-east-1", **kw)


def test_part_size_keeps_big_databases_under_the_part_limit():
    assert part_size_for(0) == 5 * MiB
    assert part_size_for(20 * 1024 * MiB) == 5 * MiB
    assert part_size_for(40 * 1024 * MiB) == 9 * MiB
    one_tib = 1024 * 1024 * MiB
    size = part_size_for(one_tib)
    assert size % MiB == 0
    assert 2 * one_tib / size < MAX_PARTS  # room for a dump twice the database size


def test_parse_backup_url(tmp_path: Path):
    assert parse_backup_url("s3://bucket/a/b/") == ("s3", "bucket", "a/b")
    assert parse_backup_url("file:///srv/backups") == ("file", "/srv/backups", "")
    assert parse_backup_url("backups", root=tmp_path) == ("file", str(tmp_path / "backups"), "")
    with pytest.raises(ConfigError, match="credentials"):
        parse_backup_url("s3://key:secret@bucket/x")
    with pytest.raises(ConfigError, match="unsupported scheme"):
        parse_backup_url("gs://bucket/x")


def test_local_default_and_missing_url_for_remote_envs(tmp_path: Path):
    local = open_store(load_settings("local", environ={"DBOPS_PROJECT_ROOT": str(tmp_path)}).backup_location())
    assert isinstance(local, LocalStore) and local.root == tmp_path / "backups"
    with pytest.raises(ConfigError, match="PROD_BACKUP_URL"):
        open_store(load_settings("prod", environ={"DBOPS_PROJECT_ROOT": str(tmp_path)}).backup_location())


def test_local_writer_round_trip_and_abort(tmp_path: Path):
    store = LocalStore(tmp_path / "b")
    store.check()
    w = store.open_writer("env/x.dump", part_size=5 * MiB)
    w.write(b"a" * 1000)
    assert store.list("env/") == []  # not visible until complete
    assert [u.key for u in store.incomplete_uploads("env/")] == ["env/x.dump"]
    w.write(b"b" * 24)
    assert w.complete() == 1024
    assert [o.key for o in store.list("env/")] == ["env/x.dump"]
    assert store.open_read("env/x.dump").read() == b"a" * 1000 + b"b" * 24

    w = store.open_writer("env/y.dump", part_size=5 * MiB)
    w.write(b"zzz")
    w.abort()
    assert store.size("env/y.dump") is None and store.incomplete_uploads("env/") == []

    store.put_json("env/x.manifest.json", {"sha256": "abc"})
    assert store.get_json("env/x.manifest.json") == {"sha256": "abc"}
    assert store.get_json("env/none.json") is None
    with pytest.raises(StorageError, match="leaves the backup folder"):
        store.put_bytes("../escape", b"x")


def test_s3_multipart_round_trip_is_encrypted_and_checked(s3):
    store = s3_store(s3)
    store.check()
    key = store.key("env", "big.dump")
    data = os.urandom(12 * MiB + 12345)  # 3 parts of 5 MiB (the last one short)
    stored_parts = []
    w = store.open_writer(key, part_size=5 * MiB, on_part=lambda n, size: stored_parts.append((n, size)))
    for i in range(0, len(data), MiB):
        w.write(data[i : i + MiB])
    assert w.complete() == len(data)
    assert sorted(stored_parts) == [(1, 5 * MiB), (2, 5 * MiB), (3, 2 * MiB + 12345)]
    assert key == "pre/fix/env/big.dump"
    head = s3.client().head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == len(data)
    assert head.get("ServerSideEncryption") == "AES256"
    with store.open_read(key) as body:
        assert body.read() == data
    assert [o.key for o in store.list("pre/fix/env/")] == [key]
    assert store.incomplete_uploads("pre/fix/") == []


def test_s3_sse_can_be_turned_off(s3):
    store = s3_store(s3, sse=None)
    store.put_json(store.key("plain.json"), {"a": 1})
    head = s3.client().head_object(Bucket=BUCKET, Key="pre/fix/plain.json")
    assert "ServerSideEncryption" not in head
    assert store.get_json("pre/fix/plain.json") == {"a": 1}


def test_s3_abort_leaves_no_multipart_upload(s3):
    store = s3_store(s3)
    w = store.open_writer(store.key("env", "gone.dump"), part_size=5 * MiB)
    w.write(os.urandom(6 * MiB))  # one part uploading
    assert [u.key for u in store.incomplete_uploads("pre/fix/")] == ["pre/fix/env/gone.dump"]
    w.abort()
    assert store.incomplete_uploads("pre/fix/") == []
    assert s3.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads") in (None, [])
    assert store.size("pre/fix/env/gone.dump") is None


def test_s3_wrong_credentials_is_a_clear_error_without_the_secret(s3, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + SECRET_KEY)
    with pytest.raises(StorageError) as info:
        s3_store(s3).check()
    text = info.value.render()
    assert "access denied" in text and "AWS_SECRET_ACCESS_KEY" in text
    assert SECRET_KEY not in text


def test_s3_missing_bucket(s3):
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist") as info:
        S3Store("no-such-bucket", endpoint_url=s3.endpoint, region="us-east-1").check()
    assert "create bucket" in info.value.hint


def test_s3_unreachable_endpoint(s3):
    from dbops.servers.embedded import free_port

    store = S3Store(BUCKET, endpoint_url=f"http://127.0.0.1:{free_port()}", region="us-east-1", connect_timeout=1)
    with pytest.raises(StorageError, match="unreachable") as info:
        store.check()
    assert "AWS_ENDPOINT_URL_S3" in info.value.hint


def test_s3_writer_memory_is_bounded_by_parts_not_by_size(s3):
    import tracemalloc

    store = s3_store(s3)
    chunk = os.urandom(MiB)
    w = store.open_writer(store.key("env", "bounded.dump"), part_size=5 * MiB)
    tracemalloc.start()
    try:
        for _ in range(60):  # 60 MiB through the writer
            w.write(chunk)
        w.complete()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert store.size("pre/fix/env/bounded.dump") == 60 * MiB
    # one part filling + one uploading + one read chunk (about 11 MiB): nowhere near the 60 MiB streamed
    assert peak < 3 * 5 * MiB, f"peak {peak / MiB:.1f} MiB"


@pytest.mark.parametrize("kind", ["folder", "s3"])
def test_download_through_parallel_ranged_reads(kind, tmp_path: Path, request):
    """The restore's fetch: every byte in place, the sha256 in order, ranges of any size; a short object refused."""
    import hashlib

    store = LocalStore(tmp_path / "b") if kind == "folder" else s3_store(request.getfixturevalue("s3"))
    store.check()
    data = os.urandom(MiB + 13)  # 5 parts of 256 KiB and a 13-byte tail
    key = store.key("env", "x.dump")
    store.put_bytes(key, data)
    seen: list[int] = []
    out = tmp_path / "fetched"
    sha, size = store.download(key, out, size=len(data), part_size=256 * 1024, workers=3, on_bytes=seen.append)
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert out.read_bytes() == data and seen[-1] == len(data)
    part = store.open_range(key, 10, 20)
    try:
        assert part.read() == data[10:20] and part.read() == b""
    finally:
        part.close()
    with pytest.raises(StorageError, match=r"ended at byte|answered 13 bytes"):
        store.download(key, tmp_path / "short", size=len(data) + 100, part_size=256 * 1024, workers=3)
