"""What real third-party projects hit (issue 11): async env.py, a fresh context per step, pg_dump setup SQL,
data-only revisions, failures printed once, cheap rebuilds, enum labels, the tester's own errors.

Each scenario under tests/scenarios failed (or was misreported) before its fix.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dbops import postgres, roundtrip
from dbops.errors import RoundTripToolError, UsageError
from dbops.postgres import clients, programs
from dbops.roundtrip import stairway as stairway_module
from dbops.roundtrip.report import DATA_ONLY, DOWNGRADES, FAILED, MODELS, OK, SKIPPED, STAIRWAY, UP_ONLY
from dbops.settings import load_settings


def test_async_template_env_passes_every_check(scenario, check):
    report, error = check(scenario("async_env"))
    assert error is None, error.render()
    assert [r.result for r in report.revisions] == [OK, OK]
    assert report.check(MODELS).status == OK  # autogenerate ran through the async env.py too


def test_async_template_env_bug_is_found_and_blamed_on_the_revision(scenario, check):
    ini = scenario("async_env")
    path = ini.parent / "versions" / "as02.py"
    path.write_text(path.read_text().replace('op.drop_index("ix_tasks_title", table_name="tasks")',
                                             "op.execute('SELECT 1')"))
    report, error = check(ini)
    assert error is not None
    assert report.revision("as02").problems[:2] == [
        "the downgrade did not restore the schema:",
        "  index ix_tasks_title on tasks: only after downgrade",
    ]
    assert report.revision("as01").result == OK


def test_an_async_env_compares_check_constraints_one_statement_at_a_time(scenario, check):
    """The models check's CHECK comparison through asyncpg (which prepares each statement): equal as the
    server writes them (a % in the expression), then a changed expression found."""
    ini = scenario("async_env")
    (ini.parent / "versions" / "as03.py").write_text(
        '"""titles start with a letter"""\nfrom alembic import op\n\nrevision = "as03"\ndown_revision = "as02"\n'
        "branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n"
        "    op.create_check_constraint(\"ck_tasks_title\", \"tasks\", \"title NOT LIKE '%--%'\")\n\n\n"
        "def downgrade():\n    op.drop_constraint(\"ck_tasks_title\", \"tasks\", type_=\"check\")\n")
    models = ini.parent / "async_models.py"
    models.write_text(models.read_text().replace(
        '    sa.Index("ix_tasks_title", "title"),\n',
        '    sa.Index("ix_tasks_title", "title"),\n'
        '    sa.CheckConstraint("title NOT LIKE \'%--%\'", name="ck_tasks_title"),\n'))
    report, error = check(ini)
    assert error is None, error.render()
    assert report.check(MODELS).status == OK

    models.write_text(models.read_text().replace("NOT LIKE '%--%'", "NOT LIKE '%==%'"))
    report, error = check(ini)
    assert error is not None
    assert report.check(MODELS).status == FAILED
    assert report.check(MODELS).details == ["drop constraint ck_tasks_title on tasks",
                                            "add constraint ck_tasks_title on tasks"]


def test_an_enum_created_again_fails_as_in_a_real_deploy(scenario, check):
    """Each step is its own migration context: no DDL memo hides the second CREATE TYPE."""
    report, error = check(scenario("enum_created_twice"))
    assert error is not None
    assert report.revision("ec01").result == UP_ONLY
    ec02 = report.revision("ec02")
    assert ec02.result == FAILED
    assert ec02.problems[0] == 'upgrade failed: DuplicateObject: type "mood" already exists'
    assert report.one_shot == ["ec02"]  # a fresh install gets past it (one `alembic upgrade` from the base)


def test_a_table_with_an_enum_round_trips_without_a_false_alarm(scenario, check):
    report, error = check(scenario("enum_table_ok"))
    assert error is None, error.render()
    assert [(r.revision, r.result) for r in report.revisions] == [("eo01", OK), ("eo02", OK)]
    assert report.revision("eo01").again_ms is not None


def _dump(pg_server, tmp_path, *, custom: bool):
    """A real pg_dump of a database holding what the needs_setup scenario expects."""
    name = f"setup_src_{'c' if custom else 'p'}"
    url = postgres.create_database(pg_server.url(), name)
    try:
        with postgres.connect(url) as conn:
            conn.execute(sa.text("CREATE SCHEMA app"))
            conn.execute(sa.text("CREATE FUNCTION app.default_tag() RETURNS text LANGUAGE sql AS $$SELECT 'x'$$"))
            conn.commit()
        out = tmp_path / ("setup.dump" if custom else "setup.sql")
        argv = [str(clients.find("pg_dump")), *programs.conninfo_args(url), "--schema-only", "-f", str(out)]
        if custom:
            argv.insert(1, "-Fc")
        programs.run([*argv, programs.dbname_arg(url)], timeout=60, env=programs.libpq_env(url))
        return out
    finally:
        postgres.drop_database(pg_server.url(), name)


def test_pg_dump_schema_only_output_works_as_setup_sql(scenario, check, pg_server, tmp_path):
    ini = scenario("needs_setup")
    report, error = check(ini)
    assert report.revision("ns01").result == FAILED  # without the setup, the default's function is missing
    dump = _dump(pg_server, tmp_path, custom=False)
    major, _ = clients.version("pg_dump")
    if major >= 18:
        assert "\\restrict" in dump.read_text()  # the psql meta-command a driver cannot run
    report, error = check(ini, setup_sql=dump)
    assert error is None, error.render()
    assert report.revision("ns01").result == OK


def test_a_custom_format_dump_works_as_setup_sql(scenario, check, pg_server, tmp_path):
    dump = _dump(pg_server, tmp_path, custom=True)
    assert dump.read_bytes().startswith(b"PGDMP")
    _report, error = check(scenario("needs_setup"), setup_sql=dump)
    assert error is None, error.render()


def test_broken_setup_sql_is_a_usage_error_with_psqls_message_and_not_the_sql(scenario, check, tmp_path):
    setup = tmp_path / "setup.sql"
    setup.write_text("CREATE SCHEMA app;\nCREATE FUNCTON app.oops() RETURNS int;\n-- a secret comment line\n")
    with pytest.raises(UsageError) as info:
        check(scenario("needs_setup"), setup_sql=setup)
    text = info.value.render()
    assert info.value.exit_code == 2
    assert f"--setup-sql {setup} failed in psql" in text
    assert 'syntax error at or near "FUNCTON"' in text
    assert "secret comment" not in text and "Traceback" not in text


def test_setup_sql_is_bounded_by_the_setup_timeout_setting(scenario, pg_server, tmp_path):
    setup = tmp_path / "slow.sql"
    setup.write_text("SELECT pg_sleep(30);\n")
    settings = load_settings(alembic_ini=scenario("needs_setup"), environ={"DBOPS_ROLLBACK_SETUP_TIMEOUT": "1"})
    assert settings.rollback_setup_timeout_s == 1
    with pytest.raises(UsageError) as info:
        roundtrip.run(settings, server_url=pg_server.url(), setup_sql=setup)
    assert info.value.message == f"--setup-sql {setup} did not finish within 1 s in psql"
    assert "DBOPS_ROLLBACK_SETUP_TIMEOUT" in info.value.hint and info.value.exit_code == 2


def test_data_only_revision_is_a_note_and_a_noop_upgrade_a_warning(scenario, check):
    report, error = check(scenario("data_only"))
    assert error is None, error.render()
    do02 = report.revision("do02")
    assert do02.result == DATA_ONLY and do02.problems == []
    assert do02.notes == [stairway_module.DATA_ONLY_NOTE]
    assert "1 data only: do02" in report.check(DOWNGRADES).message
    do03 = report.revision("do03")
    assert do03.result == OK
    assert do03.notes[0].startswith("warning: upgrade() calls batch_op.alter_column but left the schema unchanged")
    text = report.render()
    assert "note: data only: no schema to undo" in text and "likely a no-op" in text


def test_a_data_only_revision_that_does_change_the_schema_still_fails(scenario, check):
    ini = scenario("data_only")
    path = ini.parent / "versions" / "do02.py"
    path.write_text(path.read_text().replace(
        "op.execute(\"UPDATE", "op.create_index(\"ix_users_name\", \"users\", [\"name\"])\n    op.execute(\"UPDATE"))
    report, error = check(ini)
    assert error is not None
    assert report.revision("do02").result == FAILED
    assert report.check(DOWNGRADES).status == FAILED and "do02" in report.check(DOWNGRADES).message


def test_each_problem_is_printed_once(scenario, check):
    report, _error = check(scenario("forgot_index"))
    text = report.render()
    assert text.count("index ix_users_email on users: only after downgrade") == 1
    stairway = report.check(STAIRWAY)
    assert stairway.details == [] and stairway.message.endswith(": fi02")


def _databases(pg_server) -> set[str]:
    with postgres.admin_connection(pg_server.url()) as conn:
        return set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())


def test_failures_cost_a_constant_thanks_to_checkpoints(scenario, check, tmp_path, monkeypatch, pg_server):
    """Each upgrade appends its revision to $SCENARIO_LOG: count how often each one ran."""
    log = tmp_path / "upgrades.log"
    monkeypatch.setenv("SCENARIO_LOG", str(log))
    existing = _databases(pg_server)
    report, error = check(scenario("many_failures"))
    assert error is not None
    assert _databases(pg_server) == existing  # the throwaway database and its checkpoint are gone
    failed = [r.revision for r in report.revisions if r.result == FAILED]
    assert failed == [f"mf{i:02d}" for i in (3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)]
    assert "  table base comment: (none) != changed by mf06" in report.revision("mf06").problems
    assert report.revision("mf07").problems == ["downgrade failed: RuntimeError: this downgrade is broken on purpose"]
    assert report.revision("mf08").problems == [
        "the downgrade did not restore the schema:", "  index ix_base_8 on base: only after downgrade"]
    assert report.revision("mf08").again_ms is not None  # upgraded again, on the schema before it
    runs = log.read_text().split()
    counts = {rev: runs.count(rev) for rev in set(runs)}
    # up, up again, and a few replays at most: rebuilding from base every time ran mf01 nine times
    assert max(counts.values()) <= 2 + 2, counts
    # raising downgrades roll back and leftovers are dropped: only the five changed comments need a rebuild
    assert (report.rebuilds, report.repairs) == (5, 4)
    assert report.replayed <= 5 * load_settings(environ={}).rollback_checkpoint_after
    assert report.check(MODELS) is not None


def test_enum_labels_of_the_models_are_compared(scenario, check):
    report, error = check(scenario("enum_labels"))
    assert error is not None
    models = report.check(MODELS)
    assert models.status == FAILED
    assert models.details == ["enum type order_status labels: models [new, paid, shipped] != database [new, paid]"]


def test_enum_labels_that_match_pass(scenario, check):
    ini = scenario("enum_labels")
    models = ini.parent / "label_models.py"
    models.write_text(models.read_text().replace('"paid", "shipped"', '"paid"'))
    report, error = check(ini)
    assert error is None, error.render()
    assert report.check(MODELS).message.endswith("enum labels match")


def test_a_failure_of_the_tester_is_its_own_and_names_no_revision_at_fault(scenario, check):
    """te02 ends the tester's own session (as a server restart would): the snapshot after it fails."""
    with pytest.raises(RoundTripToolError) as info:
        check(scenario("tester_error"))
    error = info.value
    assert error.exit_code == 3
    assert error.message.startswith("the round-trip tester itself failed (while testing revision te02, "
                                    "which is not at fault): the schema snapshot failed:")
    assert "not of your migrations" in error.hint


def test_the_snapshot_reads_the_same_on_an_asyncpg_connection(fresh_db):
    """Issue 11.1's crash: psycopg2's paramstyle sent through another driver. Any driver gets the same text."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    from dbops.postgres import schema_snapshot

    with postgres.connect(fresh_db) as conn:
        conn.execute(sa.text("CREATE TYPE mood AS ENUM ('a', 'b'); CREATE TABLE t (id int PRIMARY KEY, m mood)"))
        conn.commit()
        ours = schema_snapshot.snapshot_text(conn)

    async def read():
        engine = create_async_engine(fresh_db.set(drivername="postgresql+asyncpg"), poolclass=sa.pool.NullPool)
        async with engine.connect() as aconn:
            text = await aconn.run_sync(lambda c: schema_snapshot.snapshot_text(c))
        await engine.dispose()
        return text

    theirs = asyncio.run(read())
    assert "enum type mood" in ours.snapshot().objects and "table t" in ours.snapshot().objects
    assert theirs.text == ours.text


def test_past_an_upgrade_that_fails_on_its_own_the_rest_is_still_tested(scenario, check):
    """pf03 creates pf01's enum type again: it fails on its own, passes in one `alembic upgrade` from the base
    (a fresh install); the walk goes on from there and still finds pf05's and pf06's defects."""
    report, error = check(scenario("past_failed_upgrade"))
    assert error is not None and error.exit_code == 1
    results = {r.revision: r.result for r in report.revisions}
    assert results == {"pf01": OK, "pf02": OK, "pf03": FAILED, "pf04": OK, "pf05": FAILED, "pf06": FAILED,
                       "pf07": OK}
    pf03 = report.revision("pf03")
    assert pf03.problems == ['upgrade failed: DuplicateObject: type "mood" already exists']
    assert pf03.notes == ["reached by one `alembic upgrade pf03` from the base (as a fresh install does): "
                          "the revisions after it were tested on a database built that way"]
    assert report.one_shot == ["pf03"]
    assert "  column accounts.note nullable: yes != no" in report.revision("pf05").problems
    assert report.revision("pf06").problems[0].startswith(
        "downgrade failed: RuntimeError: the nickname backfill cannot be undone")
    assert report.revision("pf07").again_ms is not None  # the head round-tripped
    assert report.check(STAIRWAY).message.endswith("pf03, pf05, pf06")
    text = report.render()
    assert sum("built that way" in line for line in text.splitlines()) == 1  # said once


def test_an_upgrade_that_no_way_gets_past_stops_the_walk_naming_what_was_not_tested(scenario, check):
    ini = scenario("past_failed_upgrade")
    path = ini.parent / "versions" / "pf03.py"
    path.write_text(path.read_text().replace('op.create_table("people"', 'op.execute("SELECT no_such_column")\n'
                                             '    op.create_table("people"'))
    report, error = check(ini)
    assert error is not None
    pf03 = report.revision("pf03")
    assert pf03.result == FAILED
    assert pf03.problems[0].startswith("upgrade failed: UndefinedColumn")
    assert pf03.problems[1].startswith("one `alembic upgrade pf03` from the base (as a fresh install) fails too: "
                                       "UndefinedColumn")
    assert pf03.problems[2] == ("the walk stops here: later revisions need this one; "
                                "not tested: pf04, pf05, pf06, pf07")
    assert [report.revision(r).result for r in ("pf04", "pf05", "pf06", "pf07")] == [SKIPPED] * 4
    assert report.one_shot == []
