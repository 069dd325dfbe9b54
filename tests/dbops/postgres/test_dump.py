"""dbops.postgres.dump and .clients against the real PostgreSQL 18 and the real client programs
(18 from the wheel, 15 from the system)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbops import postgres
from dbops.errors import ClientTooOld, ToolFailed
from dbops.postgres import clients
from dbops.postgres import dump as pgdump

PG15 = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture
def pg_bin(monkeypatch):
    """Point DBOPS_PG_BIN somewhere and forget the cached program lookups (before and after)."""

    def use(path: Path) -> None:
        monkeypatch.setenv("DBOPS_PG_BIN", str(path))
        clients.cache_clear()

    yield use
    monkeypatch.delenv("DBOPS_PG_BIN", raising=False)
    clients.cache_clear()


def _fill(url) -> None:
    engine = postgres.make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE things (id int PRIMARY KEY, name text)"))
        conn.execute(sa.text("INSERT INTO things SELECT g, 'n' || g FROM generate_series(1, 500) g"))
    engine.dispose()


def test_newest_client_accepts_the_server():
    assert pgdump.check_dump_client(18).major >= 18
    assert pgdump.check_restore_client(18).major >= 18


@pytest.mark.skipif(not (PG15 / "pg_dump").exists(), reason="system PostgreSQL 15 client not installed")
def test_older_pg_dump_is_refused_up_front_with_the_fix(pg_bin, pg_server):
    pg_bin(PG15)
    with pytest.raises(ClientTooOld) as info:
        pgdump.check_dump_client(18)
    err = info.value
    assert (err.client_major, err.needed_major) == (15, 18)
    assert "pg_dump 15" in err.message and "version 18 or newer" in err.message
    assert f"DBOPS_PG_BIN={PG15} is the only folder looked in" in err.hint and "inv pg-clients --major 18" in err.hint
    with pytest.raises(ClientTooOld, match="pg_restore 15"):
        pgdump.check_restore_client(18)


def test_dump_streams_into_pg_restore_list(fresh_db):
    _fill(fresh_db)
    dump = pgdump.dump(fresh_db, timeout=60)
    lister = pgdump.list_archive(timeout=60)
    total = 0
    while chunk := dump.read(64 * 1024):
        total += len(chunk)
        lister.write(chunk)
    dump.wait()
    lister.wait()
    assert total > 0
    assert "public.things" in pgdump.toc_tables(lister.stdout_lines)


def test_dump_restore_round_trip(fresh_db, pg_server):
    _fill(fresh_db)
    target = postgres.create_database(pg_server.url(), fresh_db.database + "_copy")
    try:
        dump = pgdump.dump(fresh_db, timeout=60)
        restore = pgdump.restore(target, timeout=60)
        while chunk := dump.read(64 * 1024):
            assert restore.write(chunk)
        dump.wait()
        restore.wait()
        engine = postgres.make_engine(target)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*), sum(id) FROM things")).one() == (500, 125250)
        engine.dispose()
    finally:
        postgres.drop_database(pg_server.url(), target.database)


def test_failed_dump_raises_with_the_stderr_tail_and_no_password(pg_server):
    url = pg_server.url("no_such_db").set(password="pw-Sup3rS3cret")
    dump = pgdump.dump(url, timeout=60)
    assert dump.read(1024) == b""
    with pytest.raises(ToolFailed) as info:
        dump.wait()
    text = info.value.render()
    assert "pg_dump exited with status 1" in text and "no_such_db" in text
    assert "pw-Sup3rS3cret" not in text


def test_restore_into_a_missing_database_fails_cleanly(fresh_db, pg_server):
    _fill(fresh_db)
    dump = pgdump.dump(fresh_db, timeout=60)
    restore = pgdump.restore(pg_server.url("no_such_target"), timeout=60)
    while chunk := dump.read(64 * 1024):
        if not restore.write(chunk):
            break
    dump.kill()
    with pytest.raises(ToolFailed, match="pg_restore") as info:
        restore.wait()
    assert "no_such_target" in info.value.details


def test_timeout_kills_the_program():
    before = time.monotonic()
    lister = pgdump.list_archive(timeout=0.5)  # waits for an archive that never comes
    running = time.monotonic()
    assert lister.proc.wait(timeout=30) == -signal.SIGKILL  # the watchdog killed it, stdin still open
    killed = time.monotonic()
    assert killed - before >= 0.5 and killed - running < 1.5  # at its timeout, as promptly as it always was
    with pytest.raises(ToolFailed, match="pg_restore timed out"):
        lister.wait()


def _through_psql(major: int = 18):
    """The pg_restore → SQL → psql path (what a server before 17 gets for a pg_dump 17+ archive)."""
    restore = clients.choose("pg_restore", server_major=major, archive_major=major)
    psql = clients.choose("psql", server_major=major)
    return clients.Client(restore.program, restore.path, restore.major, restore.version, restore.ssl,
                          restore.source, "test", via=psql)


def test_restore_through_psql_round_trip(fresh_db, pg_server):
    _fill(fresh_db)
    target = postgres.create_database(pg_server.url(), fresh_db.database + "_sql")
    try:
        dump = pgdump.dump(fresh_db, timeout=60)
        restore = pgdump.restore(target, timeout=60, client=_through_psql())
        assert isinstance(restore, pgdump.ScriptRestore)
        while chunk := dump.read(64 * 1024):
            assert restore.write(chunk)
        dump.wait()
        restore.wait()
        engine = postgres.make_engine(target)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*), sum(id) FROM things")).one() == (500, 125250)
        engine.dispose()
    finally:
        postgres.drop_database(pg_server.url(), target.database)


def test_restore_through_psql_into_a_missing_database_fails_with_psqls_reason(fresh_db, pg_server):
    _fill(fresh_db)
    dump = pgdump.dump(fresh_db, timeout=60)
    restore = pgdump.restore(pg_server.url("no_such_target"), timeout=60, client=_through_psql())
    while chunk := dump.read(64 * 1024):
        if not restore.write(chunk):
            break
    dump.wait()
    with pytest.raises(ToolFailed, match="psql") as info:
        restore.wait()
    assert "no_such_target" in info.value.details
