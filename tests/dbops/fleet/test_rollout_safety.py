"""fleet.deploy's rehearsal on a copy of the canary and its per-server backups, on real servers (a few databases):

- a canary whose rehearsal finds an error-level finding stops the rollout before any target changes (every
  database's fingerprint before and after), and the printed next command runs verbatim;
- a clean rehearsal lets the rollout proceed, its findings in the report JSON;
- ``backup = "per-server"`` backs each database up once, before the first wave, records one server-level entry in
  the run manifest, and a failed target's printed restore command (naming its backup) runs verbatim and restores it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from fingerprint import assert_unchanged, fingerprint

from dbops import postgres

from .fleet_fixtures import ConnectionSampler, make_schemas, write_fleet

BIN = Path(sys.executable).parent

#: a nullable column (Squawk sees nothing wrong), then slow work in the same transaction: the ACCESS EXCLUSIVE lock
#: of the ADD COLUMN is held 0.6 s - only a rehearsal measures that (an error at DBOPS_LOCK_TIMEOUT_MS=300)
SLOW_AFTER_ALTER = '''"""phone then slow work

Revision ID: c3
Revises: b2
"""

import sqlalchemy as sa

from alembic import op

revision = "c3"
down_revision = "b2"


def upgrade():
    op.add_column("items", sa.Column("phone", sa.Text(), nullable=True))
    op.execute("SELECT pg_sleep(0.6)")


def downgrade():
    op.drop_column("items", "phone")
'''


def dbops(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dbops"), *args], capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, **(env or {})})


def run_printed(command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """A command exactly as dbops printed it, through the shell, with this environment's dbops on PATH."""
    env = {**os.environ, **(env or {}), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=600, env=env, check=False)


def reports(project: Path) -> list[dict]:
    """The fleet reports under the project's backups/, oldest first."""
    found = sorted((project / "backups").glob("fleet_local_*_e*.json"), key=lambda p: p.stat().st_mtime)
    return [json.loads(p.read_text()) for p in found if "_rehearse_" not in p.name]


def dumps(project: Path) -> list[Path]:
    return sorted((project / "backups" / "local").glob("*.dump"))


def body(t, canary: list[str], rest: list[str], *, extra: str, template: str | None = None) -> str:
    template = template or t.template_url()
    return f'''budget = 6
{extra}
[[tool.dbops.fleet.local.groups]]
name = "canary"
template = "{template}"
names = {canary!r}
[[tool.dbops.fleet.local.groups]]
name = "rest"
template = "{template}"
names = {rest!r}
'''


def revision_of(url) -> list[str]:
    with postgres.connect(url) as conn:
        return sorted(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def test_a_canary_rehearsal_with_an_error_stops_before_any_target_changes(fleet_project, tenants):
    t = tenants(3, at="b2")
    (fleet_project / "migrations" / "versions" / "c3_phone.py").write_text(SLOW_AFTER_ALTER)
    write_fleet(fleet_project, body(t, t.names[:1], t.names[1:], extra=""))  # per-target backups, the default
    strict = {"DBOPS_LOCK_TIMEOUT_MS": "300"}
    before = {n: fingerprint(t.url(n)) for n in t.names}

    out = dbops("fleet.deploy", env=strict)  # the rehearsal is on by default: the canary's backup is small
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert f"rehearse on a copy of {t.names[0]}" in out.stdout
    assert "the rehearsal on a copy of local found" in out.stderr and "ACCESS EXCLUSIVE on items" in out.stderr
    for n in t.names:  # not one target changed, the canary included
        assert_unchanged(before[n], fingerprint(t.url(n)), f"tenant {n} after the canary's rehearsal failed")
    [report] = reports(fleet_project)
    rh = report["rehearsal"]
    assert rh["ran"] and rh["target"] == t.names[0] and rh["errors"] >= 1 and rh["backup_taken_for_rehearsal"]
    assert any(f["level"] == "error" and f["revision"] == "c3" for f in rh["findings"]), rh["findings"]
    assert "no target was changed" in report["stopped"] and report["records"] == []
    assert sorted(n["name"] for n in report["not_run"]) == t.names
    assert len(dumps(fleet_project)) == 1  # only the backup the rehearsal restored

    # the next command, printed by the deploy, run verbatim after deciding the risk is acceptable
    [line] = [x.strip() for x in out.stderr.splitlines() if x.strip().startswith("dbops fleet.deploy")]
    assert line == f"dbops fleet.deploy --env local --resume {report['run']} --allow-unsafe"
    again = run_printed(line, env=strict)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "deployed with --allow-unsafe" in again.stdout
    assert [revision_of(t.url(n)) for n in t.names] == [["c3"]] * 3
    resumed = reports(fleet_project)[-1]
    assert resumed["epoch"] == 1 and resumed["rehearsal"]["errors"] >= 1 and resumed["ok"]


def test_a_clean_rehearsal_lets_the_rollout_proceed_with_its_findings_in_the_report(pg_server, fleet_project, tenants):
    t = tenants(5)
    write_fleet(fleet_project, body(t, t.names[:1], t.names[1:], extra=""))
    with ConnectionSampler(pg_server, t.prefix, interval=0.002) as sampler:
        out = dbops("fleet.deploy")
    assert out.returncode == 0, out.stdout + out.stderr
    # per-target backups: a target's deploy holds up to four connections (lock, dbops', the backup's, pg_dump's)
    assert sampler.samples > 20 and sampler.peak <= 6, (sampler.samples, sampler.peak)
    [report] = reports(fleet_project)
    rh = report["rehearsal"]
    assert rh["ran"] and rh["target"] == t.names[0] and rh["errors"] == 0 and rh["failure"] is None
    assert "on by default" in rh["why"] and f"rehearsal: on a copy of {t.names[0]}" in out.stdout
    # the findings in the fleet report are the rehearsal's own, as its JSON file records them
    own = json.loads(Path(rh["path"]).read_text())
    assert own["revision_before"] == ["a1"] and own["revision_after"] == ["b2"]
    assert rh["findings"] == [f for rev in own["revisions"] for f in rev["findings"]]
    assert report["counts"] == {"success": 5}
    assert [revision_of(t.url(n)) for n in t.names] == [["b2"]] * 5

    # --no-rehearse: skipped, with a line saying so
    t2 = tenants(2)
    write_fleet(fleet_project, body(t2, t2.names[:1], t2.names[1:], extra=""))
    out = dbops("fleet.deploy", "--no-rehearse")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "rehearsal skipped: --no-rehearse" in out.stdout
    assert reports(fleet_project)[-1]["rehearsal"] == {"ran": False, "why": "--no-rehearse", "target": None,
                                                       "backup": None}


def test_per_server_backups_once_per_database_and_a_failed_target_restored_by_its_printed_command(
        fleet_project, tenants):
    t = tenants(4)
    bad = t.names[2]
    with postgres.connect(t.url(bad)) as conn:  # the object the pending revision creates is already there
        conn.exec_driver_sql("CREATE TABLE notes (id bigint PRIMARY KEY, kept text); INSERT INTO notes VALUES (1, 'x')")
        conn.commit()
    # the password named as configured, ${VARIABLE}: the session server trusts loopback, so any value connects
    secret = {"FLEET_TEST_PASSWORD": "pw-from-the-environment"}
    template = t.template_url().replace("postgres@", "postgres:${FLEET_TEST_PASSWORD}@")
    write_fleet(fleet_project, body(t, t.names[:1], t.names[1:], template=template,
                                    extra='backup = "per-server"\nmax-failures = 3'))
    before_bad = fingerprint(t.url(bad))

    out = dbops("fleet.deploy", env=secret)  # the rehearsal restores the canary's per-server backup: no extra one
    assert out.returncode == 1, out.stdout + out.stderr
    assert secret["FLEET_TEST_PASSWORD"] not in out.stdout + out.stderr
    [report] = reports(fleet_project)
    assert report["backup"].startswith("once per server before the first wave: 4 database(s) on 1 server(s)")
    assert report["rehearsal"]["ran"] and "backup_taken_for_rehearsal" not in report["rehearsal"]
    assert report["counts"] == {"failed": 1, "success": 3}

    # one backup per database, once: four dumps, each named in the server's entry and in its target's record
    manifest = fleet_project / "backups" / "fleet" / "local" / "runs" / report["run"]
    [entry_file] = list((manifest / "backups").iterdir())
    entry = json.loads(entry_file.read_text())
    assert entry["outcome"] == "complete" and entry["server"] == f"127.0.0.1:{t.server.port}"
    keys = {d["database"]: d["key"] for d in entry["databases"]}
    assert sorted(keys) == t.names and len(set(keys.values())) == 4
    assert sorted(str(p.relative_to(fleet_project / "backups")) for p in dumps(fleet_project)) == sorted(keys.values())
    assert {r["name"]: r["backup"] for r in report["records"]} == keys
    assert report["rehearsal"]["backup"] == keys[t.names[0]]

    # the failed target's restore command, printed with its backup's key, run verbatim after its database was
    # damaged by hand: the database is back as it was before the rollout
    [line] = [x.strip() for x in out.stderr.splitlines() if "dbops fleet.restore" in x]
    command = line.split(": ", 1)[1]
    assert line.startswith(f"{bad} (if it must go back to before the rollout, its backup): ")
    assert command == f"dbops fleet.restore --env local --target {bad} --backup {keys[bad]} --yes-i-know {bad}"
    with postgres.connect(t.url(bad)) as conn:
        conn.exec_driver_sql("DROP TABLE notes; DELETE FROM alembic_version")
        conn.commit()
    restored = run_printed(command, env=secret)  # the URL from the fleet's configuration and the environment
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert secret["FLEET_TEST_PASSWORD"] not in restored.stdout + restored.stderr
    assert_unchanged(before_bad, fingerprint(t.url(bad)), f"tenant {bad} restored from {keys[bad]}")


def test_fleet_restore_refuses_a_schema_target_and_missing_flags_changing_nothing(fleet_project, fresh_db):
    names = make_schemas(fresh_db, 2)
    write_fleet(fleet_project, f'''[[tool.dbops.fleet.local.groups]]
name = "canary"
database = "{fresh_db.render_as_string(hide_password=False)}"
schemas = {names!r}
''')
    before = fingerprint(fresh_db)
    target = f"{fresh_db.database}/{names[0]}"
    for args, words in ((["--target", target, "--backup", "local/x.dump", "--yes-i-know", fresh_db.database],
                         f"is schema {names[0]} of database {fresh_db.database}"),
                        (["--target", target], "needs --target NAME and --backup KEY"),
                        (["--target", "nobody", "--backup", "k"], "no target 'nobody'")):
        out = dbops("fleet.restore", *args)
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    assert_unchanged(before, fingerprint(fresh_db), "the schema fleet's database after refused restores")
