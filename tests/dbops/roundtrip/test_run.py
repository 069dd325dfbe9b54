"""dbops.roundtrip.run: scope flags, JSON, setup SQL, bad input, cleanup, and this repo's own chain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbops import postgres, roundtrip
from dbops.errors import UsageError
from dbops.roundtrip.report import OK, STAIRWAY
from dbops.settings import load_settings

ROOT = Path(__file__).resolve().parents[3]


def databases(pg_server) -> set[str]:
    with postgres.admin_connection(pg_server.url()) as conn:
        return set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())


def test_this_repos_chain_passes(pg_server):
    report = roundtrip.run(load_settings(alembic_ini=ROOT / "alembic.ini", environ={}), server_url=pg_server.url())
    assert report.ok
    assert all(r.result == OK for r in report.revisions)
    assert len(report.checks) == 4 and all(c.status == OK for c in report.checks)


def test_last_tests_only_the_newest_revisions(scenario, check):
    report, error = check(scenario("type_and_default"), last=1)
    assert error is None, error.render()
    assert [r.revision for r in report.revisions] == ["td04"]
    assert report.prepared == 3


def test_from_tests_the_revision_and_its_descendants(scenario, check):
    report, error = check(scenario("type_and_default"), start="td03")
    assert [r.revision for r in report.revisions] == ["td03", "td04"]
    assert error is not None and "td03" in report.check(STAIRWAY).message
    assert "td02" not in report.check(STAIRWAY).message


def test_from_on_a_branch_takes_the_merge_too(scenario, check):
    report, error = check(scenario("merge_ok"), start="mo2b")
    assert error is None
    assert [r.revision for r in report.revisions] == ["mo2b", "mo03", "mo04"]


def test_json_report(scenario, check, tmp_path):
    out = tmp_path / "out" / "report.json"
    _report, _error = check(scenario("forgot_index"), json_path=out)
    data = json.loads(out.read_text())
    assert data["ok"] is False
    assert [r["revision"] for r in data["revisions"]] == ["fi01", "fi02"]
    fi02 = data["revisions"][1]
    assert fi02["result"] == "failed" and isinstance(fi02["up_ms"], float)
    assert "  index ix_users_email on users: only after downgrade" in fi02["problems"]
    assert {c["name"]: c["status"] for c in data["checks"]}["round trip"] == "failed"


def test_setup_sql_runs_before_the_base_revision(scenario, check, tmp_path):
    ini = scenario("forgot_index")
    base = ini.parent / "versions" / "fi01.py"
    base.write_text(base.read_text().replace(
        'sa.Column("name", sa.String(50)),',
        'sa.Column("name", sa.String(50)),\n'
        '        sa.Column("tag", sa.Text, server_default=sa.text("app.default_tag()")),'))
    report, _error = check(ini, last=None)
    assert report.revision("fi01").result == "failed"
    assert "upgrade failed" in report.revision("fi01").problems[0]
    setup = tmp_path / "setup.sql"
    setup.write_text("CREATE SCHEMA app;\n"
                     "CREATE FUNCTION app.default_tag() RETURNS text LANGUAGE sql AS $$SELECT 'x'$$;\n")
    report, _error = check(ini, setup_sql=setup)
    assert report.revision("fi01").result == OK
    assert report.revision("fi02").result == "failed"  # the scenario's own bug is still found


def test_setup_hook(scenario, check):
    seen = []
    _report, error = check(scenario("merge_ok"),
                           setup=lambda conn: seen.append(conn.exec_driver_sql("SELECT 1").scalar()))
    assert error is None and seen == [1]


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"start": "nope"}, "unknown revision 'nope'"),
        ({"last": 0}, "--last must be at least 1"),
        ({"last": "x"}, "--last must be a whole number"),
        ({"last": 1, "start": "fi01"}, "cannot be combined"),
        ({"setup_sql": "/nonexistent.sql"}, "cannot read --setup-sql"),
    ],
)
def test_bad_input_is_a_usage_error(scenario, check, kwargs, text):
    with pytest.raises(UsageError) as info:
        check(scenario("forgot_index"), **kwargs)
    assert text in info.value.message
    assert info.value.exit_code == 2


def test_unreadable_config_is_a_usage_error(tmp_path, pg_server):
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s/missing\n")
    with pytest.raises(UsageError) as info:
        roundtrip.run(load_settings(alembic_ini=ini, environ={}), server_url=pg_server.url())
    assert info.value.exit_code == 2
    with pytest.raises(UsageError):
        load_settings(alembic_ini=tmp_path / "nope.ini", environ={})


def test_throwaway_database_is_dropped_after_failure(scenario, check, pg_server):
    before = databases(pg_server)
    report, error = check(scenario("forgot_index"))
    assert error is not None
    assert report.database not in databases(pg_server)
    assert databases(pg_server) == before


def test_throwaway_database_is_dropped_when_interrupted(scenario, pg_server):
    before = databases(pg_server)

    def interrupt(conn):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        roundtrip.run(load_settings(alembic_ini=scenario("merge_ok"), environ={}), server_url=pg_server.url(),
                      setup=interrupt)
    assert databases(pg_server) == before


def _inv(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "invoke", "test-rollback", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_task_end_to_end_on_a_foreign_project_and_a_broken_one(scenario, pg_server, tmp_path):
    server = pg_server.url().set(database="postgres").render_as_string(hide_password=False)
    ok = _inv("--config", str(scenario("foreign_env")), "--server", server)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "4 of 4 checks passed" in ok.stdout
    assert "Running upgrade" not in ok.stderr  # the foreign env.py's logging is kept quiet
    bad = _inv("--config", str(scenario("leftover_enum")), "--server", server)
    assert bad.returncode == 1
    assert "revision le02" in bad.stdout and "enum type mood: only after downgrade" in bad.stdout
    usage = _inv("--config", str(tmp_path / "missing.ini"))
    assert usage.returncode == 2
    assert "does not exist" in usage.stderr
