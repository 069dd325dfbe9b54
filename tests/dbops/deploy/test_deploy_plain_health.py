"""A project with a plain health endpoint deploys: dbops checks the schema itself and the endpoint for HTTP 200.

The endpoint is a tiny ``http.server`` answering 200 ``ok`` (no JSON, none of dbops' fields).  The plan, the
deploy, its failure and the rollback then speak of what was checked for this project; the words of dbops'
health contract (at or ahead, behind, the code's heads, 503...) appear only for an app whose body speaks it,
as the example app's does (:mod:`dbops.integrations`).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from deploy_fixtures import ADD_PHONE, BASE, SECRET, add_revision, current, prod_env, settings_for

from dbops.console import Console
from dbops.deploy import pipeline, rollback
from dbops.deploy.pipeline import DeployOptions
from dbops.errors import DeployFailed

#: the contract's words (lineage's states, what the app's code expects, its 503): never said of a plain endpoint
CONTRACT_WORDS = ("at or ahead", "ahead", "behind", "expects", "health contract", "503", "unknown")


class PlainHealth:
    """GET anything: ``status`` with ``body`` as text/plain."""

    def __init__(self, status: int = 200, body: bytes = b"ok", content_type: str = "text/plain"):
        self.status, self.body, self.content_type = status, body, content_type
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(outer.status)
                self.send_header("content-type", outer.content_type)
                self.send_header("content-length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/healthz"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.thread.join(10)


@pytest.fixture
def plain():
    server = PlainHealth()
    yield server
    server.stop()


@pytest.fixture
def plain_env(project: Path, db, plain: PlainHealth, tmp_path: Path) -> dict[str, str]:
    return prod_env(project, db, plain.url, tmp_path)


def no_contract_words(text: str, where: str) -> None:
    # whole words: a timestamp's ".503421Z" or a digest's "...503..." is not the contract's 503
    said = [w for w in CONTRACT_WORDS if re.search(rf"(?<![\w.]){re.escape(w)}(?![\w])", text)]
    assert not said, f"{where} speaks of the health contract to a plain endpoint: {said}\n{text}"


@pytest.mark.parametrize("body", [b"ok", b'{"status": "ok", "version": "1.4.2"}'], ids=["text", "json"])
def test_plan_deploy_and_rollback_against_a_plain_endpoint(project: Path, db, plain, plain_env, capsys, body):
    plain.body = body
    plain.content_type = "application/json" if body.startswith(b"{") else "text/plain"
    add_revision(project, "a1", BASE, *ADD_PHONE, doc="add phone")
    settings = settings_for(plain_env)

    planned = pipeline.deploy(settings, DeployOptions(plan=True), ui=Console())
    out = capsys.readouterr().out
    assert planned.outcome == "planned"
    assert (f"verify: database at head a1 (read on dbops' own connection), {plain.url} answers HTTP 200 (any body)"
            in out)
    no_contract_words(out, "the plan")

    report = pipeline.deploy(settings, DeployOptions(monitor_seconds=1), ui=Console())
    out = capsys.readouterr().out
    assert report.outcome == "success" and current(db) == ["a1"]
    verify = next(s for s in report.steps if s.name == "verify")
    assert verify.detail == f"database at head a1 (read on dbops' own connection); {plain.url}: HTTP 200"
    assert report.health[0].ok and not report.health[0].contract and report.health[0].revision is None
    saved = Path(report.path).read_text()
    assert json.loads(saved)["health"][0]["contract"] is False
    for text, where in ((out, "the deploy's output"), (saved, "the deploy's report")):
        no_contract_words(text, where)
        assert SECRET not in text

    rb = rollback.rollback_database(settings, ui=Console())
    out = capsys.readouterr().out
    assert rb.outcome == "success" and current(db) == [BASE]
    closing = rb.warnings[-1]
    assert closing == (f"a downgrade restores the schema, not data; redeploy the app release that matches {BASE} "
                       f"(the release now serving may need the newer schema; {plain.url} answers HTTP 200 and does "
                       "not report which schema it needs)")
    for text, where in ((out, "the rollback's output"), (Path(rb.path).read_text(), "the rollback's report")):
        no_contract_words(text, where)


def test_a_plain_endpoint_that_fails_is_told_in_its_own_words(project: Path, db, plain, plain_env):
    plain.status, plain.body = 500, b"boom"
    add_revision(project, "a1", BASE, *ADD_PHONE)
    settings = settings_for(plain_env, DBOPS_VERIFY_TIMEOUT="0.5")
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings, DeployOptions(monitor_seconds=0))
    err = info.value
    assert err.report.failed_step == "verify" and "HTTP 500" in err.message
    # the message and the recovery commands are what a user reads; the check's own hint says what it asked
    assert err.cause.hint == "look at the application's logs; dbops needs HTTP 200 from its health URL (any body)"
    no_contract_words(err.render(), "the failure")


def test_the_example_apps_contract_is_described_where_it_is_spoken(project: Path, db, deploy_env, capsys):
    """The example app's body carries the contract's fields: the plan and rollback's closing words say so."""
    add_revision(project, "a1", BASE, *ADD_PHONE, doc="add phone")
    settings = settings_for(deploy_env)
    pipeline.deploy(settings, DeployOptions(plan=True), ui=Console())
    out = capsys.readouterr().out
    url = deploy_env["PROD_HEALTH_URL"]
    # the serving app reads its code's revisions from the project's files: it is the new release, waiting (code first)
    assert (f"{url} answers 200 under dbops' health contract: its database at or ahead of the head its code "
            f"expects (now: HTTP 503, schema behind: database at {BASE}, the app's code expects a1)") in out

    pipeline.deploy(settings, DeployOptions(monitor_seconds=0))
    rb = rollback.rollback_database(settings)
    # the serving app's code was not redeployed (it reads a1 from its files): it answers 503 behind, and says so
    assert rb.warnings[-1] == (f"a downgrade restores the schema, not data; redeploy the app release that matches "
                               f"{BASE}: {url} answers HTTP 503, schema behind: database at {BASE}, the app's code "
                               "expects a1")
    assert rb.health[0].contract and rb.health[0].schema == "behind"
