"""Tracked snapshots (``DBOPS_ROLLBACK_SNAPSHOTS=tracked``): what a step did behind the tracker's back is still found.

Run with ``verify``: tracked at every schema size (``tracked`` reads small
schemas whole), and each tracked snapshot checked against a full one.

The tracker re-reads only the objects each step touched (event triggers, and
catalog rows written since the last reading).  These revisions change the
schema where the event triggers cannot see it: with the triggers disabled by
the revision itself, and by writing the catalog directly.  The failures are
found all the same, and a run whose triggers were disabled says it read whole
snapshots from there on.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from dbops import roundtrip
from dbops.settings import load_settings

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

REVISION = '''"""{doc}

Revision ID: {rev}
Revises: {down}
"""
from alembic import op

revision = "{rev}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.execute("""{up}""")


def downgrade():
    op.execute("""{down_sql}""")
'''

#: disable the tracker's event triggers (when they exist: the same revisions run with full snapshots too)
MUTE = """DO $m$ BEGIN
  IF EXISTS (SELECT FROM pg_event_trigger WHERE evtname = 'dbops_rt_ddl') THEN
    ALTER EVENT TRIGGER dbops_rt_ddl DISABLE; ALTER EVENT TRIGGER dbops_rt_drop DISABLE;
  END IF; END $m$"""


def _project(tmp_path: Path, revisions: list[tuple[str, str, str]]) -> Path:
    dest = tmp_path / "behind"
    shutil.copytree(SCENARIOS / "type_and_default", dest, ignore=shutil.ignore_patterns("__pycache__", "versions"))
    (dest / "versions").mkdir()
    down = None
    for i, (doc, up, down_sql) in enumerate(revisions, 1):
        rev = f"bt{i:02d}"
        (dest / "versions" / f"{rev}.py").write_text(
            REVISION.format(doc=doc, rev=rev, down=down, up=up, down_sql=down_sql))
        down = rev
    return dest / "alembic.ini"


def _run(ini: Path, server_url, mode: str):
    settings = load_settings(alembic_ini=ini, environ={"DBOPS_ROLLBACK_SNAPSHOTS": mode})
    try:
        return roundtrip.run(settings, server_url=server_url)
    except roundtrip.RoundTripFailed as exc:
        return exc.report


REVISIONS = [
    ("a table", "CREATE TABLE things (id int PRIMARY KEY, x int, y int)", "DROP TABLE things"),
    ("an index, with the tracker muted first; the downgrade forgets it",
     MUTE + "; CREATE INDEX ix_things_x ON things (x)", "SELECT 1"),
    ("a comment", "COMMENT ON TABLE things IS 'c'", "COMMENT ON TABLE things IS NULL"),
]
CATALOG_WRITE = [
    ("a table", "CREATE TABLE things (id int PRIMARY KEY, x int, y int)", "DROP TABLE things"),
    ("a column, whose downgrade also writes the catalog directly (no DDL: no event trigger sees it)",
     "ALTER TABLE things ADD COLUMN z int",
     "ALTER TABLE things DROP COLUMN z; UPDATE pg_catalog.pg_attribute SET attnotnull = true "
     "WHERE attrelid = 'things'::regclass AND attname = 'y'"),
    ("a second table", "CREATE TABLE others (id int)", "DROP TABLE others"),
]


def test_a_revision_that_mutes_the_tracker_is_still_caught_and_the_run_says_it_read_whole(tmp_path, pg_server):
    ini = _project(tmp_path, REVISIONS)
    full = _run(ini, pg_server.url(), "full")
    tracked = _run(ini, pg_server.url(), "verify")  # tracked at every size, each snapshot checked against a full one
    expected = ["the downgrade did not restore the schema:", "  index ix_things_x on things: only after downgrade"]
    assert [r.problems for r in full.revisions] == [[], expected, []]
    assert [r.problems for r in tracked.revisions] == [[], expected, []]
    assert full.snapshot_note is None
    assert tracked.snapshot_note == ("every snapshot read whole from here on: the schema tracker's event "
                                     "triggers were dropped, disabled or altered")
    assert "note: every snapshot read whole from here on" in tracked.render()


def test_a_direct_catalog_write_is_caught_by_tracked_snapshots(tmp_path, pg_server):
    ini = _project(tmp_path, CATALOG_WRITE)
    for mode in ("full", "verify"):
        report = _run(ini, pg_server.url(), mode)
        assert [r.problems for r in report.revisions] == [
            [], ["the downgrade did not restore the schema:", "  column things.y nullable: yes != no"], []], mode
        assert report.snapshot_note is None, mode


def test_without_a_superuser_the_run_reads_whole_snapshots_and_says_so_once(tmp_path, pg_server):
    """A ``--server`` whose user may create databases but not event triggers: whole snapshots, one note."""
    import uuid

    import sqlalchemy as sa

    role = f"rt_plain_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN CREATEDB")
    try:
        ini = _project(tmp_path, REVISIONS[:1] + REVISIONS[2:])
        report = _run(ini, pg_server.url().set(username=role), "verify")
        assert [r.result for r in report.revisions] == ["ok", "ok"]
        assert report.snapshot_note.startswith(
            "every snapshot read whole from here on: the schema tracker cannot be installed (")
        assert "event trigger" in report.snapshot_note
        assert report.render().count("note: every snapshot read whole") == 1
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()
