"""fleet.status: revisions, pending, last outcome, lock, totals; a schema fleet in a few queries on one connection."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from dbops import postgres
from dbops.fleet import fleet_status, load_fleet
from dbops.postgres import lock
from dbops.settings import load_settings

from .fleet_fixtures import ConnectionSampler, make_schemas, write_fleet


def dbops(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dbops", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)


def test_two_hundred_schemas_in_a_few_queries_on_one_connection(pg_server, fleet_project, fresh_db):
    names = make_schemas(fresh_db, 200)
    with postgres.connect(fresh_db) as conn:  # one tenant is ahead, one has no version table yet
        conn.exec_driver_sql(f"UPDATE {names[5]}.alembic_version SET version_num = 'b2'; "
                             f"DROP TABLE {names[7]}.alembic_version")
        conn.commit()
    write_fleet(fleet_project, f'''budget = 4
[[tool.dbops.fleet.local.groups]]
name = "all"
database = "{fresh_db.render_as_string(hide_password=False)}"
schemas = {names!r}
''')
    settings = load_settings("local")
    fleet = load_fleet(settings)
    with ConnectionSampler(pg_server, fresh_db.database) as sampler:
        found, warnings = fleet_status(settings, fleet)
    assert warnings == []
    assert found.queries <= 4, found.queries
    assert sampler.samples > 0 and sampler.peak <= 1, sampler.peak
    assert found.totals == {"a1": 198, "b2": 1, "(empty)": 1}
    by = {t.schema: t for t in found.targets}
    assert by[names[0]].pending == ["b2"] and by[names[5]].pending == [] and by[names[7]].pending == ["a1", "b2"]
    assert len(found.behind) == 199 and found.head == "b2"


def test_formats_and_the_lock_held_by_a_deploy(pg_server, fleet_project, tenants):
    t = tenants(3)
    write_fleet(fleet_project, f'''[[tool.dbops.fleet.local.groups]]
name = "canary"
template = "{t.template_url()}"
names = {t.names[:1]!r}
[[tool.dbops.fleet.local.groups]]
name = "rest"
template = "{t.template_url()}"
names = {t.names[1:]!r}
''')
    settings = load_settings("local")
    with lock.hold(settings, t.url(t.names[1]), "deploy"):
        out = dbops("fleet.status", "--format", "json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["totals"] == {"a1": 3} and data["behind"] == 3 and data["head"] == "b2"
    held = {x["name"]: x["locked"] for x in data["targets"]}
    assert held == {t.names[0]: False, t.names[1]: True, t.names[2]: False}
    assert {x["group"] for x in data["targets"]} == {"canary", "rest"}
    md = dbops("fleet.status", "--format", "markdown")
    assert md.returncode == 0 and "| revision | targets |" in md.stdout
    assert f"| {t.names[0]} | canary | a1 |" in md.stdout
    text = dbops("fleet.status")
    assert text.returncode == 0 and "a1: 3" in text.stdout and "0 at head, 3 behind" in text.stdout
    bad = dbops("fleet.status", "--format", "yaml")
    assert bad.returncode == 2 and "unknown --format" in bad.stderr and "Traceback" not in bad.stderr
