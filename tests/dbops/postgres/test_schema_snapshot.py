"""dbops.postgres.schema_snapshot: catalog snapshots and their diff, against a real Postgres."""

from __future__ import annotations

import pytest

from dbops import postgres
from dbops.postgres import schema_snapshot


@pytest.fixture
def conn(fresh_db):
    engine = postgres.make_engine(fresh_db)
    with engine.connect() as c:
        yield c
    engine.dispose()


def run(conn, sql: str) -> schema_snapshot.Snapshot:
    conn.exec_driver_sql(sql)
    return schema_snapshot.snapshot(conn)


def test_empty_database_has_only_public_and_plpgsql(conn):
    snap = schema_snapshot.snapshot(conn)
    assert snap.names() == ["schema public", "extension plpgsql"]


def test_snapshot_covers_every_kind_of_object(conn):
    snap = run(
        conn,
        """
        CREATE TYPE mood AS ENUM ('ok', 'sad');
        CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
        CREATE SEQUENCE counter START 5 INCREMENT 2;
        CREATE TABLE users (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                            email varchar(20) NOT NULL DEFAULT 'x', m mood,
                            doubled integer GENERATED ALWAYS AS (id * 2) STORED);
        CREATE UNIQUE INDEX ix_users_email ON users (lower(email));
        CREATE TABLE posts (id serial PRIMARY KEY,
                            uid integer REFERENCES users (id) ON DELETE CASCADE,
                            CONSTRAINT ck_posts_id CHECK (id > 0));
        CREATE VIEW v_users AS SELECT id FROM users;
        CREATE FUNCTION f(x integer) RETURNS integer LANGUAGE sql AS 'SELECT x';
        CREATE TRIGGER t_users BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION \
suppress_redundant_updates_trigger();
        CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
        """,
    )
    assert snap["enum type mood"]["labels"] == ["ok", "sad"]
    assert snap["domain positive"]["base type"] == "integer"
    assert snap["sequence counter"]["start"] == 5
    assert snap["sequence users_id_seq"]["owned by"] == "users.id (identity)"
    assert snap["column users.email"] == {"type": "varchar(20)", "nullable": False, "default": "'x'::character varying"}
    assert snap["column users.id"]["identity"] == "always"
    assert snap["column users.doubled"]["generated"] == "stored: (id * 2)"
    assert "lower((email)::text)" in snap["index ix_users_email on users"]["definition"]
    assert "ON DELETE CASCADE" in snap["constraint posts_uid_fkey on posts"]["definition"]
    assert snap["constraint ck_posts_id on posts"]["type"] == "check"
    assert "view v_users" in snap
    assert "SELECT x" in snap["function f(x integer)"]["definition"]
    assert "trigger t_users on users" in snap
    assert not [name for name in snap.names() if "alembic_version" in name]


def test_identical_schemas_have_no_diff(conn):
    conn.exec_driver_sql("CREATE TABLE t (id int PRIMARY KEY)")
    assert schema_snapshot.diff(schema_snapshot.snapshot(conn), schema_snapshot.snapshot(conn)) == []
    assert schema_snapshot.snapshot(conn) == schema_snapshot.snapshot(conn)


def test_diff_names_leftovers_and_changed_attributes(conn):
    before = run(conn, "CREATE TABLE users (id int PRIMARY KEY, phone varchar(20) DEFAULT '0')")
    after = run(
        conn,
        """
        CREATE INDEX ix_users_phone ON users (phone);
        CREATE TYPE mood AS ENUM ('a');
        ALTER TABLE users ALTER COLUMN phone TYPE text, ALTER COLUMN phone DROP DEFAULT;
        """,
    )
    lines = schema_snapshot.diff(before, after)
    assert "index ix_users_phone on users: only after downgrade" in lines
    assert "enum type mood: only after downgrade" in lines
    assert "column users.phone type: varchar(20) != text" in lines
    assert "column users.phone default: '0'::character varying != (none)" in lines
    assert schema_snapshot.diff(after, before, before="after", after="before")[0] == "enum type mood: only after"


def test_diff_shows_long_definitions_as_a_line_diff(conn):
    before = run(conn, "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$SELECT 1$$")
    after = run(conn, "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$SELECT 2$$")
    lines = schema_snapshot.diff(before, after)
    assert lines[0].startswith("function f() definition: differs")
    assert "    -AS $function$SELECT 1$function$" in lines
    assert "    +AS $function$SELECT 2$function$" in lines


def test_other_schemas_are_qualified_and_extension_objects_left_out(conn):
    snap = run(conn, "CREATE SCHEMA audit; CREATE TABLE audit.log (id int); CREATE EXTENSION IF NOT EXISTS vector")
    assert "table audit.log" in snap and "column audit.log.id" in snap
    assert "extension vector" in snap
    assert not [n for n in snap.names("function") if "vector" in n]
    assert not snap.names("range type") and not snap.names("composite type")


def test_snapshot_text_equals_only_identical_schemas_and_diffs_like_a_snapshot(conn):
    conn.exec_driver_sql("CREATE TABLE users (id int PRIMARY KEY, phone varchar(20))")
    before = schema_snapshot.snapshot_text(conn)
    assert before == schema_snapshot.snapshot_text(conn)
    assert before.text == schema_snapshot.snapshot_text(conn).text  # the fast path: a plain string comparison
    assert schema_snapshot.diff(before, schema_snapshot.snapshot_text(conn)) == []
    assert before.snapshot() == schema_snapshot.snapshot(conn)  # same content as the detailed snapshot

    # a downgrade that forgot an index and an enum type: the text path must see both
    conn.exec_driver_sql("CREATE INDEX ix_users_phone ON users (phone); CREATE TYPE mood AS ENUM ('a')")
    leftover = schema_snapshot.snapshot_text(conn)
    assert leftover != before
    lines = schema_snapshot.diff(before, leftover)
    assert lines == schema_snapshot.diff(before.snapshot(), schema_snapshot.snapshot(conn))  # exactly the detailed diff
    assert "index ix_users_phone on users: only after downgrade" in lines
    assert "enum type mood: only after downgrade" in lines

    # an index that differs only in its definition, same name: still caught
    conn.exec_driver_sql("DROP TYPE mood; DROP INDEX ix_users_phone; "
                         "CREATE INDEX ix_users_phone ON users (lower(phone))")
    changed = schema_snapshot.diff(leftover, schema_snapshot.snapshot_text(conn))
    assert "enum type mood: only before" in changed
    assert any(line.startswith("index ix_users_phone on users definition:") for line in changed)

    # alembic_version is ignored the same way as in snapshot()
    conn.exec_driver_sql("DROP INDEX ix_users_phone")
    conn.exec_driver_sql("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
    assert schema_snapshot.snapshot_text(conn) == before
    assert schema_snapshot.snapshot_text(conn, ignore_tables=()) != before


def test_snapshot_reader_reads_what_snapshot_text_reads_while_the_caller_goes_on(conn, fresh_db):
    """The query is out while the caller runs its own statements (another session); the answer is the same text."""
    conn.exec_driver_sql("CREATE TYPE mood AS ENUM ('ok', 'sad'); CREATE TABLE t (id int PRIMARY KEY, m mood)")
    conn.commit()
    expected = schema_snapshot.snapshot_text(conn)
    reader = schema_snapshot.SnapshotReader(fresh_db)
    try:
        reader.start()
        with pytest.raises(AssertionError, match="one snapshot at a time"):
            reader.start()
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 0  # the caller's own work meanwhile
        got = reader.result()
        assert got.text == expected.text
        conn.exec_driver_sql("ALTER TABLE t ADD COLUMN note text")
        conn.commit()
        reader.start()
        changed = reader.result()
        assert schema_snapshot.diff(expected, changed, before="a", after="b") == ["column t.note: only b"]
    finally:
        reader.close()


def test_snapshot_reader_gives_up_on_a_server_that_stopped_answering(fresh_db):
    """A backend that stops (SIGSTOP, as a hung server) makes result() raise TimeoutError after ``timeout``."""
    import os
    import signal
    import time

    reader = schema_snapshot.SnapshotReader(fresh_db, timeout=0.5)
    pid = reader.conn.get_backend_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        reader.start()
        began = time.monotonic()
        with pytest.raises(TimeoutError, match=r"no answer within 0.5 s"):
            reader.result()
        assert 0.4 < time.monotonic() - began < 5
    finally:
        os.kill(pid, signal.SIGCONT)
        reader.close()
