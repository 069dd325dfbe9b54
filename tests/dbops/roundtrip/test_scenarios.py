"""Each scenario project is caught (or passes) with a message naming the revision and the difference."""

from __future__ import annotations

import sys

import pytest

from dbops.roundtrip.report import DOWNGRADES, FAILED, MODELS, OK, SINGLE_HEAD, SKIPPED, STAIRWAY, UP_ONLY


def test_downgrade_that_forgets_an_index(scenario, check):
    report, error = check(scenario("forgot_index"))
    assert error is not None and error.exit_code == 1
    assert report.check(STAIRWAY).status == FAILED
    assert "fi02" in report.check(STAIRWAY).message
    fi02 = report.revision("fi02")
    assert fi02.result == FAILED
    assert "  index ix_users_email on users: only after downgrade" in fi02.problems
    assert report.revision("fi01").result == OK
    assert "fi02" in error.render()


def test_downgrade_that_leaves_an_enum_type(scenario, check):
    report, error = check(scenario("leftover_enum"))
    assert error is not None
    assert "  enum type mood: only after downgrade" in report.revision("le02").problems


def test_downgrade_that_forgets_type_and_default_reports_both_revisions(scenario, check):
    report, error = check(scenario("type_and_default"))
    assert error is not None
    assert "  column users.phone type: varchar(20) != text" in report.revision("td02").problems
    assert "  column users.name default: (none) != 'anonymous'::character varying" in report.revision("td03").problems
    # the walk goes on after a failure: the revision after them is still tested
    assert report.revision("td04").result == OK
    assert report.revision("td04").down_ms is not None


def test_missing_downgrade_fails_unless_marked_irreversible(scenario, check):
    report, error = check(scenario("missing_downgrade"))
    assert error is not None
    downgrades = report.check(DOWNGRADES)
    assert downgrades.status == FAILED
    assert "md02" in downgrades.message and downgrades.details == []  # told once, under the revision
    assert "md03" not in downgrades.message  # marked `irreversible = True`
    assert report.revision("md02").problems[0].startswith("irreversible: downgrade() is empty")
    assert sum("downgrade() is empty" in line for line in error.report.render().splitlines()) == 1
    assert report.revision("md03").result == UP_ONLY
    assert report.revision("md03").down_ms is None
    assert report.revision("md04").result == OK


def test_marking_the_revision_irreversible_makes_it_pass(scenario, check):
    ini = scenario("missing_downgrade")
    path = ini.parent / "versions" / "md02.py"
    path.write_text(path.read_text().replace("def downgrade():", "# dbops: irreversible\ndef downgrade():"))
    report, error = check(ini)
    assert error is None, error.render()
    assert report.revision("md02").result == UP_ONLY


def test_two_heads_are_reported_with_the_merge_command(scenario, check):
    report, error = check(scenario("two_heads"))
    assert error is not None
    heads = report.check(SINGLE_HEAD)
    assert heads.status == FAILED
    assert heads.message == "the migration history has 2 heads: th2a, th2b"
    assert heads.hint == 'merge them first: alembic merge -m "merge heads" th2a th2b'
    # both branches are still walked and round-trip
    assert report.check(STAIRWAY).status == OK
    assert {r.revision for r in report.revisions} == {"th01", "th2a", "th2b"}


def test_branch_and_merge_pass_each_edge_once(scenario, check):
    report, error = check(scenario("merge_ok"))
    assert error is None, error.render()
    order = [r.revision for r in report.revisions]
    assert sorted(order) == ["mo01", "mo03", "mo04", "mo2a", "mo2b"]
    assert order.index("mo03") > max(order.index("mo2a"), order.index("mo2b"))
    assert all(r.result == OK and r.down_ms is not None for r in report.revisions)


def test_foreign_env_with_its_own_engine_passes_and_checks_models(scenario, check):
    report, error = check(scenario("foreign_env"))
    assert error is None, error.render()
    assert report.check(MODELS).status == OK
    assert [r.result for r in report.revisions] == [OK, OK, OK]


def test_foreign_env_downgrade_bug_is_seen_through_its_own_connection(scenario, check):
    ini = scenario("foreign_env")
    path = ini.parent / "versions" / "sh03.py"
    path.write_text(path.read_text().replace('\n    sa.Enum(name="order_status").drop(op.get_bind())', ""))
    report, error = check(ini)
    assert error is not None
    assert "  enum type order_status: only after downgrade" in report.revision("sh03").problems


def test_models_that_differ_from_the_database_at_head(scenario, check):
    report, error = check(scenario("models_drift"))
    assert error is not None
    models = report.check(MODELS)
    assert models.status == FAILED
    assert models.details == ["add column users.nickname"]


def test_env_without_metadata_skips_the_models_check(scenario, check):
    report, _error = check(scenario("merge_ok"))
    assert report.check(MODELS).status == SKIPPED


def _inv_test_rollback(ini, server):
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run([sys.executable, "-m", "invoke", "test-rollback", "--config", str(ini), "--server", server],
                          cwd=Path(__file__).resolve().parents[3], capture_output=True, text=True, timeout=300,
                          check=False)


def test_models_that_fail_to_import_stop_the_run_naming_the_file_not_a_revision(scenario, pg_server):
    server = pg_server.url().set(database="postgres").render_as_string(hide_password=False)
    ini = scenario("broken_models")
    models = ini.parent / "bm_models.py"
    for broken, error in (("import bm_not_installed", "No module named 'bm_not_installed'"),
                          ('raise RuntimeError("models broke")', "RuntimeError: models broke")):
        models.write_text(models.read_text().replace(
            next(line for line in models.read_text().splitlines() if line.startswith(("import bm_", "raise "))),
            broken))
        line = models.read_text().splitlines().index(broken) + 1
        done = _inv_test_rollback(ini, server)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.splitlines()[0] == f"error: models in {models}, line {line} failed to import: {error}"
        assert f"hint: fix the error in {models}, line {line}" in done.stderr
        assert "round-trip" not in done.stdout + done.stderr and "Traceback" not in done.stderr
        assert "bm01" not in done.stderr  # the revision is not blamed


@pytest.mark.parametrize("overlap", [True, False], ids=["snapshots-beside-steps", "snapshots-in-turn"])
def test_upgrade_again_that_differs_fails_that_revision_and_the_next_starts_on_a_rebuilt_database(
    scenario, check, overlap, monkeypatch, tmp_path
):
    """ua02 and ua04 (the last) give another schema when upgraded again; ua03 round-trips.

    The check of ua02's second upgrade is done when ua03's upgrade asks for
    its steps (the snapshot is read meanwhile): there it stops ua03's step
    before any operation, the database is rebuilt with ua02 applied, and ua03
    runs on it.  ua04's check comes after the walk.  Reading the snapshots in
    turn gives the same report.
    """
    from dbops.roundtrip.stairway import Stairway

    monkeypatch.setattr(Stairway, "overlap", overlap)
    log = tmp_path / "upgrades.log"
    monkeypatch.setenv("SCENARIO_LOG", str(log))
    ini = scenario("upgrade_again_differs")
    report, error = check(ini)
    assert "ua_log" not in sys.modules  # the project's module its revision files imported is not kept
    assert error is not None
    results = {r.revision: r for r in report.revisions}
    assert [results[r].result for r in ("ua01", "ua02", "ua03", "ua04")] == [OK, FAILED, OK, FAILED]
    assert "upgrading again after the downgrade gave a different schema:" in results["ua02"].problems
    assert any("column t.c1" in p and "only after downgrade and upgrade" in p for p in results["ua02"].problems), \
        results["ua02"].problems
    assert any("column t.d" in p for p in results["ua04"].problems), results["ua04"].problems
    assert results["ua03"].problems == []
    assert report.rebuilds == 2
    assert report.check(STAIRWAY).message.startswith("2 of 4 revisions do not round-trip: ua02, ua04")
    # ua03's held step ran none of its operations: up, up again, and the replay of the last rebuild
    runs = log.read_text().split()
    assert runs.count("ua03") == 3, runs
    assert report.check(MODELS).status == SKIPPED  # reached the heads again: no metadata in this env.py


@pytest.mark.parametrize("overlap", [True, False], ids=["snapshots-beside-steps", "snapshots-in-turn"])
def test_a_downgrade_that_fails_after_committing_part_of_it_gets_the_next_revision_a_rebuilt_database(
    scenario, check, overlap, monkeypatch, tmp_path
):
    """df02's downgrade commits a DROP INDEX CONCURRENTLY, then raises: the rollback cannot restore the index.

    The next step's gate finds the schema is not the upgrade's any more and
    stops df03's upgrade before its operations; the database is rebuilt with
    df02 applied, and df03 round-trips on it.
    """
    from dbops.roundtrip.stairway import Stairway

    monkeypatch.setattr(Stairway, "overlap", overlap)
    log = tmp_path / "upgrades.log"
    monkeypatch.setenv("SCENARIO_LOG", str(log))
    ini = scenario("downgrade_fails_after_commit")
    report, error = check(ini)
    assert error is not None
    results = {r.revision: r for r in report.revisions}
    assert [results[r].result for r in ("df01", "df02", "df03")] == [OK, FAILED, OK]
    assert results["df02"].problems == ["downgrade failed: RuntimeError: broken after the autocommit block"]
    assert report.rebuilds == 1
    runs = log.read_text().split()
    assert runs.count("df03") == 2, runs  # up and up again: the held step ran none of its operations
    assert runs.count("df02") == 2, runs  # up, and the replay of the rebuild
