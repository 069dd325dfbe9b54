"""The health check and the outcome webhook against a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dbops import health, webhook
from dbops.errors import HealthCheckFailed


class Server:
    """Answers GET with (status, body) and records POSTed JSON."""

    def __init__(self):
        self.status, self.body, self.posts = 200, {"revision": "a1"}, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                data = json.dumps(outer.body).encode()
                self.send_response(outer.status)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                outer.posts.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()


def test_200_at_head_is_healthy(server):
    r = health.check(server.base + "/api/health", expected_heads=["a1"])
    assert r.ok and r.revision == ["a1"]


def test_200_ahead_is_healthy_the_apps_own_head_need_not_be_the_deploys(server):
    """Schema first: the old release's code expects a0, its database is at a1 (the deploy's head): healthy."""
    server.body = {"schema": "ahead", "current": ["a1"], "heads": ["a0"]}
    r = health.check(server.base + "/api/health", expected_heads=["a1"])
    assert r.ok and (r.schema, r.revision, r.app_heads) == ("ahead", ["a1"], ["a0"])
    assert r.reason == "HTTP 200, schema ahead: database at a1, the app's code expects a0"
    assert r.to_dict()["schema"] == "ahead" and r.to_dict()["app_heads"] == ["a0"]


def test_503_behind_says_both_sides(server):
    server.status, server.body = 503, {"schema": "behind", "current": ["a0"], "heads": ["a1"]}
    r = health.check(server.base + "/api/health", expected_heads=["a1"])
    assert not r.ok and r.reason.startswith("HTTP 503, schema behind: database at a0, the app's code expects a1")


def test_200_naming_another_database_revision_is_not(server):
    """The database was just verified at a1; an app reporting its database at "old" looks at another database."""
    server.body = {"current": ["old"], "heads": ["old"]}
    r = health.check(server.base + "/api/health", expected_heads=["a1"])
    assert not r.ok and "reports the database at old, not at a1 (is HEALTH_URL this environment's app?" in r.reason


def test_a_body_without_a_revision_only_needs_200(server):
    server.body = {"status": "ok"}
    assert health.check(server.base + "/h", expected_heads=["a1"]).ok


def test_wait_healthy_gives_up_after_its_bound_and_masks_the_url(server):
    server.status = 503
    t0 = time.monotonic()
    with pytest.raises(HealthCheckFailed) as info:
        health.wait_healthy(server.base + "/h?token=hunter2", expected_heads=["a1"], within_s=1, timeout=1)
    assert time.monotonic() - t0 < 5
    assert "HTTP 503" in info.value.message and "hunter2" not in info.value.render()


def test_no_answer_is_a_clear_reason():
    r = health.check("http://127.0.0.1:9/api/health", timeout=1)
    assert not r.ok and r.reason.startswith("no answer (ConnectError")


def test_webhook_gets_slack_json_and_failures_are_returned_not_raised(server):
    assert webhook.send(server.base + "/hooks/T0/SECRET", "deploy ok") is None
    assert server.posts == [{"text": "deploy ok"}]
    server.status = 500
    err = webhook.send(server.base + "/hooks/T0/SECRET", "deploy ok")
    assert "HTTP 500" in err and "SECRET" not in err
    assert "did not answer" in webhook.send("http://127.0.0.1:9/x/SECRET", "x", timeout=1)
