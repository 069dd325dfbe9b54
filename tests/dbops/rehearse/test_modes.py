"""The other ways in: --server (a scratch database on a server of ours), --schema-only (production's sizes,
durations not measured), the newest *verified* backup, and ``inv rehearse`` itself through invoke."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from deploy_fixtures import BASE, current

from dbops import backup, postgres, rehearse
from dbops.settings import load_settings

from .scenarios import ROWS
from .test_rehearse import rev

ROOT = Path(__file__).resolve().parents[3]


def inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
                          capture_output=True, text=True, env=env, timeout=600, check=False)


def scratch_databases(server) -> set[str]:
    with postgres.admin_connection(server.url()) as conn:
        return {n for n in conn.execute(sa.text("SELECT datname FROM pg_database")).scalars()
                if n.startswith("dbops_rehearse_")}


def test_on_a_given_server_in_a_scratch_database_that_is_dropped(seeded, pg_server):
    _project, url, env, _key = seeded
    settings = load_settings("staging", environ=env)
    report = rehearse.rehearse(settings, server_url=pg_server.url())
    assert "a scratch database, dropped afterwards" in report.server and report.server_version.startswith("18")
    assert report.revision_after == ["r8fine"] and current(url) == [BASE]
    assert scratch_databases(pg_server) == set()
    assert "users" in rev(report, "r4volatile").statements[0].rewrites


def test_schema_only_takes_the_sizes_from_production_and_measures_no_duration(seeded, pg_server):
    _project, _url, env, _key = seeded
    report = rehearse.rehearse(load_settings("staging", environ=env), server_url=pg_server.url(), schema_only=True)
    users = report.tables["users"]
    assert users.source == "production's catalog" and users.rows == ROWS and users.bytes > 10 * 1024 * 1024
    # the rewrite and the scan are the same on an empty copy; the size rule makes them errors
    r4 = rev(report, "r4volatile")
    assert "users" in r4.statements[0].rewrites
    finding = next(f for f in r4.findings if f.kind == "rewrite")
    assert (finding.is_error and "hold time not measured" in finding.message
            and "(a table of at least" in finding.message)
    assert not any("(limit " in f.message for f in report.findings if f.kind in ("lock", "rewrite", "scan"))
    text = rehearse.render(report)
    assert "schema only: durations and hold times are NOT measured" in text
    assert "expected deploy duration: not measured (--schema-only)" in text
    assert report.to_dict()["expected_upgrade_s"] is None
    assert not [f for f in rev(report, "r1fine").findings if f.level in ("error", "warning")]
    # the data migration read no rows on the empty copy and failed: said so, and nothing after it is judged
    failed = next(f for f in rev(report, "r7data").findings if f.kind == "failed")
    assert "schema-only copy" in failed.message and "the copy has no rows" in failed.message
    assert report.failure and report.revision_after == ["r6fk"] and not rev(report, "r8fine").reached
    assert "not rehearsed: the upgrade stopped before it" in text


def test_schema_only_without_production_says_the_sizes_are_unknown(seeded, pg_server):
    _project, _url, env, _key = seeded
    env = {**env, "STAGING_DATABASE_URL": f"postgresql://nobody@127.0.0.1:{_closed_port()}/app"}
    report = rehearse.rehearse(load_settings("staging", environ=env), server_url=pg_server.url(), schema_only=True)
    assert any("not reachable from here" in w and "sizes are unknown" in w for w in report.warnings)
    users = report.tables["users"]
    assert users.rows == ROWS and users.exact and users.bytes is None and users.source == "the backup's manifest"
    finding = next(f for f in rev(report, "r4volatile").findings if f.kind == "rewrite")
    assert finding.level == "warning" and "its size is unknown" in finding.message


def test_inv_rehearse_prefers_the_newest_verified_backup_and_exits_1_on_errors(seeded, tmp_path):
    _project, url, env, key = seeded
    settings = load_settings("staging", environ=env)
    # no verified backup yet: the rehearsal says how to get one; the command it prints runs verbatim
    _info, warning = rehearse.choose_backup(settings, backup.checked_store(settings), None)
    command = re.search(r"`(inv verify-backup --env staging)`", warning).group(1)
    done = inv(*command.split()[1:], env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    info, warning = rehearse.choose_backup(settings, backup.checked_store(settings), None)
    assert info.key == key and info.verified and warning is None

    path = tmp_path / "rehearsal.json"
    done = inv("rehearse", "--env", "staging", "--json", str(path), env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert "verified" in out and "expected deploy duration:" in out and "longest wait of application reads" in out
    assert "error: the rehearsal on a copy of staging found" in out and "Traceback" not in out
    assert url.password is None or url.password not in out
    data = json.loads(path.read_text())
    assert data["backup"] == {"key": key, "verified": True} and data["errors"] > 0
    assert [r["revision"] for r in data["revisions"]][-1] == "r8fine"
    assert current(url) == [BASE]


def _closed_port() -> int:
    from dbops.servers.embedded import free_port

    return free_port()
