"""``inv rehearse`` on a seeded copy (200k users, backed up to real S3, restored into a throwaway PostgreSQL of
the source's major): per statement the locks, hold times, rewrites, scans and table sizes, and findings from them.

One rehearsal runs every case (one revision each, see scenarios.py); each test reads its revision.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_fixtures import BASE, current

from dbops import rehearse
from dbops.rehearse.findings import blocks
from dbops.settings import load_settings

from .scenarios import ROWS


@pytest.fixture(scope="module")
def report(seeded):
    _project, _url, env, _key = seeded
    return rehearse.rehearse(load_settings("staging", environ=env))


def rev(report, revision):
    return next(r for r in report.revisions if r.revision == revision)


def statement(r, starts: str):
    return next(s for s in r.statements if s.sql.startswith(starts))


def line_of(path: str, text: str) -> int:
    return next(i for i, line in enumerate(Path(path).read_text().splitlines(), 1) if text in line)


def errors(r, kind_prefix: str = ""):
    return [f for f in r.findings if f.is_error and f.kind.startswith(kind_prefix)]


def test_the_copy_is_rehearsed_to_head_and_production_is_untouched(seeded, report):
    _project, url, _env, key = seeded
    assert report.backup_key == key
    assert report.revision_before == [BASE] and report.revision_after == ["r8fine"]
    assert [r.revision for r in report.revisions] == ["r1fine", "r2index", "r3concurrent", "r4volatile",
                                                      "r5notnull", "r6fk", "r7data", "r8fine"]
    assert "throwaway PostgreSQL 18" in report.server
    assert current(url) == [BASE]  # the source database never saw a revision
    assert report.tables["users"].rows == ROWS and report.tables["users"].exact
    assert report.tables["users"].bytes > 10 * 1024 * 1024


def test_an_index_without_concurrently_is_an_error_with_its_measured_lock_time(report):
    r = rev(report, "r2index")
    stmt = statement(r, "CREATE INDEX ix_users_name ON users")
    lock = next(lk for lk in stmt.locks if lk.relation == "users")
    assert lock.mode == "SHARE" and blocks(lock.mode) == ("writes",)
    assert lock.held_s >= stmt.duration_s > 0
    assert "users" in stmt.scans
    finding = next(f for f in errors(r) if f.kind == "scan")
    assert finding.message.startswith(f"SHARE on users ({ROWS:,} rows, ")
    assert f"held {lock.held_s:.2f} s" in finding.message and "blocks writes" in finding.message
    assert finding.file == r.file and finding.line == line_of(r.file, "op.create_index('ix_users_name'")
    assert "postgresql_concurrently=True" in finding.safer and "autocommit_block" in finding.safer
    assert any(f.kind == "squawk:require-concurrent-index-creation" for f in r.findings)


def test_concurrently_in_an_autocommit_block_is_clean(report):
    r = rev(report, "r3concurrent")
    stmt = statement(r, "CREATE INDEX CONCURRENTLY ix_users_created_at")
    assert stmt.autocommit and stmt.duration_s > 0
    # the observer saw its lock while it ran: SHARE UPDATE EXCLUSIVE blocks no application query
    on_users = [lk for lk in stmt.locks if lk.relation == "users"]
    assert [lk.mode for lk in on_users] == ["SHARE UPDATE EXCLUSIVE"] and on_users[0].while_running
    assert not any(blocks(lk.mode) for lk in stmt.locks if not lk.new)
    assert not [f for f in r.findings if f.level in ("error", "warning")]
    assert r.schema_diff == ["index ix_users_created_at on users: only after"]


def test_a_volatile_default_rewrites_the_table(report):
    r = rev(report, "r4volatile")
    stmt = statement(r, "ALTER TABLE users ADD COLUMN token UUID DEFAULT gen_random_uuid()")
    assert "users" in stmt.rewrites and "pk_users" in stmt.rewrites  # relfilenode changed: table and indexes
    lock = next(lk for lk in stmt.locks if lk.relation == "users" and lk.mode == "ACCESS EXCLUSIVE")
    assert lock.held_s >= stmt.duration_s
    finding = next(f for f in errors(r) if f.kind == "rewrite")
    assert "ACCESS EXCLUSIVE on users" in finding.message and "blocks reads and writes" in finding.message
    assert "rewrote users" in finding.message and "without the volatile default" in finding.safer
    assert finding.line == line_of(r.file, "op.add_column('users', sa.Column('token'")


def test_set_not_null_scans_the_table(report):
    r = rev(report, "r5notnull")
    stmt = statement(r, "ALTER TABLE users ALTER COLUMN token SET NOT NULL")
    assert stmt.scans == ["users"] and not stmt.rewrites
    finding = next(f for f in errors(r) if f.kind == "scan")
    assert "ACCESS EXCLUSIVE on users" in finding.message and "scanned the whole table" in finding.message
    assert "NOT VALID" in finding.safer
    assert r.schema_diff == ["column users.token nullable: yes != no"]


def test_a_foreign_key_without_not_valid_blocks_writes_on_both_tables_while_it_scans(report):
    r = rev(report, "r6fk")
    stmt = statement(r, "ALTER TABLE users ADD CONSTRAINT fk_users_team_id_teams FOREIGN KEY")
    modes = {(lk.relation, lk.mode) for lk in stmt.locks}
    assert ("users", "SHARE ROW EXCLUSIVE") in modes and ("teams", "SHARE ROW EXCLUSIVE") in modes
    assert "users" in stmt.scans
    finding = next(f for f in errors(r) if f.table == "users")
    assert finding.message.startswith("SHARE ROW EXCLUSIVE on users") and "blocks writes" in finding.message
    assert "postgresql_not_valid=True" in finding.safer and "VALIDATE CONSTRAINT" in finding.safer
    assert not any(f.table == "teams" for f in r.findings)  # created by a pending revision: nobody uses it yet


def test_a_data_migration_is_captured_from_the_cursor_and_linted(report):
    r = rev(report, "r7data")
    read = statement(r, "SELECT max(length(name)) FROM users")
    assert read.line == line_of(r.file, "SELECT max(length(name))")
    update = statement(r, "UPDATE users SET nickname")
    assert update.sql == "UPDATE users SET nickname = 'first' WHERE name = 'User 1'"  # rendered with its parameters
    check = statement(r, "ALTER TABLE users ADD CONSTRAINT ck_users_name_length CHECK (length(name) <= ")
    assert check.sql.endswith(f"<= {len('User ' + str(ROWS))})")  # the value the migration read from the rows
    lint = next(f for f in r.findings if f.kind == "squawk:constraint-missing-not-valid")
    assert lint.is_error and lint.line == line_of(r.file, "ck_users_name_length") and lint.statement == check.sql
    assert any(f.kind == "scan" and f.is_error for f in r.findings)
    # a reading statement blocks nobody
    assert not any(blocks(lk.mode) for lk in read.locks) and not any(blocks(lk.mode) for lk in update.locks)


@pytest.mark.parametrize("revision", ["r1fine", "r8fine"])
def test_a_fine_revision_has_no_error(report, revision):
    r = rev(report, revision)
    assert not [f for f in r.findings if f.level in ("error", "warning")], [f.message for f in r.findings]
    alter = next(s for s in r.statements if s.sql.startswith("ALTER TABLE"))
    held = [lk for lk in alter.locks if lk.mode == "ACCESS EXCLUSIVE" and not lk.new]
    assert held and all(lk.held_s < report.thresholds.max_block_s for lk in held)
    assert r.schema_diff  # it did change the schema


def test_the_report_ends_with_the_expected_duration_and_the_longest_wait(report):
    assert report.upgrade_s >= sum(s.duration_s for s in report.statements) * 0.5 > 0
    seconds, table, _revision = report.longest_wait["reads"]
    assert table == "users" and seconds == round(max(lk.held_s for s in report.statements for lk in s.locks
                                                     if lk.mode == "ACCESS EXCLUSIVE" and not lk.new), 3)
    assert report.longest_wait["writes"][0] >= seconds
    text = rehearse.render(report)
    tail = text.splitlines()[-4:]
    assert tail[0].startswith("expected deploy duration: ") and "longest wait of application reads" in tail[1]
    assert "longest wait of application writes" in tail[2] and tail[3].startswith("rehearsal: ")
    data = report.to_dict()
    assert data["errors"] == len(report.errors) > 0 and data["durations_measured"] is True
    assert data["revisions"][1]["statements"][0]["locks"][0]["mode"]
