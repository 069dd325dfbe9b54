"""fleet.deploy on real servers: 200 databases, a 200-schema database, a failing tenant, a failing canary, a killed
run resumed; connections sampled from pg_stat_activity never exceed the budget; every printed command is run."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from fingerprint import assert_unchanged, fingerprint

from dbops import postgres

from .fleet_fixtures import ConnectionSampler, make_schemas, write_fleet

BIN = Path(sys.executable).parent


def dbops(*args: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dbops"), *args], capture_output=True, text=True, timeout=timeout, check=False,
                          **kw)


def run_printed(command: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """A command exactly as dbops printed it, through the shell, with this environment's dbops on PATH."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def report_of(project: Path) -> dict:
    """The newest fleet report JSON under the project's backups/."""
    found = sorted((project / "backups").glob("fleet_local_*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(found[-1].read_text())


def status_json(*args: str) -> dict:
    out = dbops("fleet.status", "--format", "json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def applied_twice(url) -> int:
    """How many deploys moved this database from a1 (dbops' history): more than one is a target run twice."""
    with postgres.connect(url) as conn:
        return conn.execute(sa.text("SELECT count(*) FROM dbops.deploys WHERE revision_before = ARRAY['a1'] "
                                    "AND outcome = 'success'")).scalar_one()


def fleet_body(t, canary: list[str], rest: list[str], *, budget: int, extra: str = "", batch: int | None = None) -> str:
    return f'''budget = {budget}
{extra}
[[tool.dbops.fleet.local.groups]]
name = "canary"
template = "{t.template_url()}"
names = {canary!r}
[[tool.dbops.fleet.local.groups]]
name = "rest"
template = "{t.template_url()}"
names = {rest!r}
{f"batch = {batch}" if batch else ""}
'''


@pytest.mark.slow
def test_two_hundred_databases_one_conflicting_tenant_fails_the_others_finish(pg_server, fleet_project, tenants):
    t = tenants(200)
    bad = t.names[57]
    with postgres.connect(t.url(bad)) as conn:  # the object the pending revision creates is already there
        conn.exec_driver_sql("CREATE TABLE notes (id bigint PRIMARY KEY, kept text); INSERT INTO notes VALUES (1, 'x')")
        conn.commit()
    no_backup = 'backup = "none"\nbackup-reason = "test tenants, made from a template"'
    write_fleet(fleet_project, fleet_body(t, t.names[:2], t.names[2:], budget=9, batch=50, extra=no_backup))
    with ConnectionSampler(pg_server, t.prefix) as sampler:
        out = dbops("fleet.deploy", "--max-failures", "3")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert sampler.samples > 50 and 3 <= sampler.peak <= 9, (sampler.samples, sampler.peak)
    report = report_of(fleet_project)
    assert report["counts"] == {"failed": 1, "success": 199}, report["counts"]
    [failed] = [r for r in report["records"] if r["outcome"] == "failed"]
    assert failed["name"] == bad and failed["step"] == "upgrade" and "notes" in failed["error"]
    assert failed["revision_after"] == ["a1"] and failed["db_changed"] is False
    assert f"1 target(s) failed ({bad})" in out.stderr
    revisions = t.revisions()
    assert revisions.pop(bad) == ["a1"] and set(map(tuple, revisions.values())) == {("b2",)}
    with postgres.connect(t.url(bad)) as conn:
        assert conn.exec_driver_sql("SELECT kept FROM notes").scalar_one() == "x"

    # the failed tenant's own recovery command, printed by the deploy, run verbatim after fixing the cause
    [line] = [x for x in out.stderr.splitlines() if x.strip().startswith(f"{bad}: dbops fleet.deploy")]
    command = line.strip().split(": ", 1)[1]
    assert command == f"dbops fleet.deploy --env local --resume {report['run']} --target {bad}"
    with postgres.connect(t.url(bad)) as conn:
        conn.exec_driver_sql("DROP TABLE notes")
        conn.commit()
    again = run_printed(command)
    assert again.returncode == 0, again.stdout + again.stderr
    status = status_json("--run", report["run"])
    assert status["totals"] == {"b2": 200} and status["behind"] == 0
    assert {x["last"] for x in status["targets"]} == {"success"}
    assert all(applied_twice(t.url(n)) == 1 for n in (t.names[0], bad, t.names[199]))


def test_a_failing_canary_stops_the_rollout_before_the_other_groups(pg_server, fleet_project, tenants):
    t = tenants(6)
    canary, rest = t.names[:2], t.names[2:]
    with postgres.connect(t.url(canary[1])) as conn:
        conn.exec_driver_sql("CREATE TABLE notes (id int)")
        conn.commit()
    write_fleet(fleet_project, fleet_body(t, canary, rest, budget=6, extra="max-failures = 10"))
    before = {n: fingerprint(t.url(n)) for n in rest}
    out = dbops("fleet.deploy")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "the canary group 'canary' failed" in out.stderr and canary[1] in out.stderr
    for n in rest:  # no other group was started: not one of them changed
        assert_unchanged(before[n], fingerprint(t.url(n)), f"tenant {n} of a group after the failed canary")
    report = report_of(fleet_project)
    assert {r["name"]: r["outcome"] for r in report["records"]} == {canary[0]: "success", canary[1]: "failed"}
    assert sorted(n["name"] for n in report["not_run"]) == rest
    ok = next(r for r in report["records"] if r["outcome"] == "success")
    assert ok["backup"] and (fleet_project / "backups" / ok["backup"]).is_file()  # the per-target backup
    assert report["backup"] == "per target, before its upgrade"

    # both printed commands, verbatim: the rest of the run, then the failed canary after its fix
    resume = f"dbops fleet.deploy --env local --resume {report['run']}"
    assert f"the 4 target(s) not run: {resume}" in out.stderr
    finished = run_printed(resume)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    with postgres.connect(t.url(canary[1])) as conn:
        conn.exec_driver_sql("DROP TABLE notes")
        conn.commit()
    fix = next(x for x in out.stderr.splitlines() if x.strip().startswith(f"{canary[1]}: dbops"))
    assert run_printed(fix.strip().split(": ", 1)[1]).returncode == 0
    assert set(map(tuple, t.revisions().values())) == {("b2",)}


@pytest.mark.slow
def test_a_schema_per_tenant_database_of_two_hundred_schemas(pg_server, fleet_project, fresh_db):
    names = make_schemas(fresh_db, 200)
    write_fleet(fleet_project, f'''budget = 6
[[tool.dbops.fleet.local.groups]]
name = "canary"
database = "{fresh_db.render_as_string(hide_password=False)}"
schemas = {names[:3]!r}
[[tool.dbops.fleet.local.groups]]
name = "rest"
database = "{fresh_db.render_as_string(hide_password=False)}"
schemas-query = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant_%' AND nspname > 'tenant_0002' ORDER BY 1"
''')
    with ConnectionSampler(pg_server, fresh_db.database) as sampler:
        out = dbops("fleet.deploy")
    assert out.returncode == 0, out.stdout + out.stderr
    assert sampler.peak <= 6, sampler.peak
    report = report_of(fleet_project)
    assert report["counts"] == {"success": 200}
    assert report["backup"].endswith("1 database(s) backed up before the first wave")
    with postgres.connect(fresh_db) as conn:
        per_schema = dict(conn.exec_driver_sql(
            "SELECT schemaname, count(*) FROM pg_tables WHERE tablename IN ('notes', 'alembic_version') "
            "GROUP BY 1").all())
        versions = conn.exec_driver_sql(" UNION ALL ".join(
            f"SELECT version_num FROM {n}.alembic_version" for n in names)).scalars().all()
    assert per_schema == dict.fromkeys(names, 2)  # each schema has its own notes and its own version table
    assert set(versions) == {"b2"} and len(versions) == 200


def test_a_killed_run_resumed_finishes_exactly_the_rest(pg_server, fleet_project, tenants):
    t = tenants(30)
    write_fleet(fleet_project, fleet_body(t, t.names[:1], t.names[1:], budget=9,
                                          extra='backup = "none"\nbackup-reason = "test tenants"'))
    run = "killed-run-1"
    records = fleet_project / "backups" / "fleet" / "local" / "runs" / run / "records"
    proc = subprocess.Popen([str(BIN / "dbops"), "fleet.deploy", "--run", run], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # a loaded CI machine: the run's start-up alone can take a while
        while len(list(records.rglob("*.json"))) < 8:
            assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before it could be killed"
            assert time.monotonic() < deadline, f"8 records not written in 300 s: {len(list(records.rglob('*.json')))}"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the pod is gone: the process and its workers
        proc.wait(30)
    done_before = {p.stem for p in records.rglob("*.json")}
    assert 8 <= len(done_before) < 30, sorted(done_before)

    out = run_printed(f"dbops fleet.deploy --env local --resume {run}")
    assert out.returncode == 0, out.stdout + out.stderr
    claims = fleet_project / "backups" / "fleet" / "local" / "runs" / run / "claims"
    resumed = {p.name.split("@")[0] for p in claims.iterdir() if p.name.endswith("@1")}
    assert resumed == {f"{i:05d}" for i in range(30)} - done_before, (sorted(resumed), sorted(done_before))
    assert {p.stem for p in records.rglob("*.json")} == {f"{i:05d}" for i in range(30)}
    assert set(map(tuple, t.revisions().values())) == {("b2",)}
    # no target's upgrade ran twice (every one is at b2, above). A target killed after its upgrade committed and
    # before its history row said so has no successful a1 -> b2 row at all: its resume found nothing to deploy
    assert [n for n in t.names if applied_twice(t.url(n)) > 1] == []
    for n in t.names:
        if applied_twice(t.url(n)) == 0:
            with postgres.connect(t.url(n)) as conn:
                rows = conn.execute(sa.text("SELECT revision_before, outcome FROM dbops.deploys")).all()
            # the killed run's row: a1 before, never finished (the resumed deploy marked it abandoned)
            assert any(list(r) == ["a1"] and o in ("running", "abandoned") for r, o in rows), (n, rows)
    status = status_json("--run", run)
    assert {x["last"] for x in status["targets"]} <= {"success", "nothing-to-deploy"}


def test_bad_flags_are_refused_before_anything_runs(fleet_project, tenants):
    t = tenants(1)
    write_fleet(fleet_project, fleet_body(t, t.names, [], budget=3))
    before = fingerprint(t.url(t.names[0]))
    for args, words in ((["--shard", "3/3"], "--shard '3/3'"), (["--run", "a", "--resume", "b"], "contradict"),
                        (["--resume", "no-such-run"], "no fleet run 'no-such-run'"),
                        (["--max-failures", "x"], "--max-failures must be a whole number")):
        out = dbops("fleet.deploy", *args)
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    assert_unchanged(before, fingerprint(t.url(t.names[0])), "the tenant after refused flags")


def shlex_join(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def test_one_webhook_summary_for_the_fleet_not_one_per_target(fleet_project, tenants, monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from dbops.errors import FleetFailed
    from dbops.fleet import load_fleet
    from dbops.fleet.rollout import RolloutOptions, deploy
    from dbops.settings import load_settings

    texts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            texts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"])
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        t = tenants(4)
        with postgres.connect(t.url(t.names[3])) as conn:
            conn.exec_driver_sql("CREATE TABLE notes (id int)")
            conn.commit()
        write_fleet(fleet_project, fleet_body(t, t.names[:1], t.names[1:], budget=6, extra="max-failures = 1"))
        monkeypatch.setenv("NOTIFY_WEBHOOK_URL", f"http://127.0.0.1:{httpd.server_address[1]}/hooks/SECRETTOKEN")
        settings = load_settings("local")
        with pytest.raises(FleetFailed) as info:
            deploy(settings, load_fleet(settings), RolloutOptions())
        assert [r.name for r in info.value.report.failed] == [t.names[3]]
    finally:
        httpd.shutdown()
    assert len(texts) == 1, texts
    assert texts[0].startswith("🚨 fleet deploy --env local run ") and "1 failed, 3 success" in texts[0]
    assert f"failed: {t.names[3]}" in texts[0]
