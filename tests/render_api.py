"""A local stand-in of the Render deploy and job endpoints, following the documented shapes.

Jobs: ``POST /v1/services/{serviceId}/jobs`` with ``{"startCommand": ...}``
answers 201 with a job object (``id``, ``serviceId``, ``startCommand``,
``planId``, ``status``, ``createdAt``, ``startedAt``, ``finishedAt``);
``GET /v1/services/{serviceId}/jobs/{jobId}`` answers that job, moving it
through ``statuses`` one step per GET; ``POST .../jobs/{jobId}/cancel``
cancels it.  A job runs the build that was live when it was created
(``job_commits``).

Deploys: the service starts live at ``live_commit``.  ``POST
/v1/services/{serviceId}/deploys`` with ``{"commitId": sha}`` answers 201
with a deploy object (``id``, ``commit.id``, ``status``, ``trigger``,
``createdAt``, ``updatedAt``, ``finishedAt``), or 202 with no body when
``queue_deploys``; ``GET .../deploys/{deployId}`` moves it through
``deploy_statuses`` one step per GET (``live`` makes it the service's
build and the previous live one ``deactivated``); ``GET .../deploys``
lists them newest first as ``[{"deploy": ..., "cursor": ...}]``.

Faults: each request whose method is in ``fault_methods`` first takes the
next status of ``faults`` (e.g. ``[429, 503]``) and is answered with it,
untouched otherwise (429 with ``Retry-After: 0``); a fault of 0 drops the
connection without an answer.  Any request without
``Authorization: Bearer <api_key>`` gets 401; another service id gets 404.
Real HTTP on a free loopback port: the client under test is not touched.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

DEPLOY_FINAL = {"live", "deactivated", "build_failed", "update_failed", "pre_deploy_failed", "canceled"}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _public(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


class RenderStandIn:
    def __init__(self, *, api_key: str, service_id: str = "srv-dbopsjob", statuses=("pending", "running", "succeeded"),
                 live_commit: str = "0" * 40,
                 deploy_statuses=("created", "build_in_progress", "update_in_progress", "live"),
                 queue_deploys: bool = False, faults=(), fault_methods=("GET", "POST")):
        self.api_key = api_key
        self.service_id = service_id
        self.statuses = list(statuses)
        self.deploy_statuses = list(deploy_statuses)
        self.queue_deploys = queue_deploys
        self.faults = list(faults)
        self.fault_methods = set(fault_methods)
        self.requests: list[dict] = []
        self.jobs: dict[str, dict] = {}
        self.deploys: list[dict] = []  # oldest first
        self.live_commit = live_commit
        self.lock = threading.Lock()
        self._add_deploy(live_commit, status="live", trigger="new_commit")
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, code: int, body: object = None, headers: dict | None = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = urlsplit(self.path).path
                with stand_in.lock:
                    stand_in.requests.append({"method": method, "path": path, "query": urlsplit(self.path).query,
                                              "auth": self.headers.get("Authorization"), "body": body})
                    fault = stand_in.faults.pop(0) if stand_in.faults and method in stand_in.fault_methods else None
                    if fault == 0:  # drop the connection without an answer
                        stand_in.requests[-1]["fault"] = fault
                        self.close_connection = True
                        return None
                    if fault is not None:
                        stand_in.requests[-1]["fault"] = fault
                        return self._send(fault, {"message": f"stand-in fault {fault}"},
                                          {"Retry-After": "0"} if fault == 429 else None)
                    if self.headers.get("Authorization") != f"Bearer {stand_in.api_key}":
                        return self._send(401, {"id": "unauthorized", "message": "unauthorized"})
                    parts = path.strip("/").split("/")  # v1 services {id} jobs|deploys [id] [cancel]
                    if parts[:2] != ["v1", "services"] or len(parts) < 4 or parts[3] not in ("jobs", "deploys"):
                        return self._send(404, {"message": "not found"})
                    if parts[2] != stand_in.service_id:
                        return self._send(404, {"id": "not-found", "message": "service not found"})
                    return self._send(*stand_in._handle(method, parts[3], parts[4:], body or {}))

            def do_POST(self):
                self._route("POST")

            def do_GET(self):
                self._route("GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- what the tests read -------------------------------------------------------------

    def seen(self, method: str | None = None, *, suffix: str = "") -> list[dict]:
        """The requests made (not counting injected faults), optionally only ``method`` ones ending in ``suffix``."""
        return [r for r in self.requests if "fault" not in r and (method is None or r["method"] == method)
                and r["path"].endswith(suffix)]

    @property
    def job_commits(self) -> dict[str, str]:
        """Which build each job ran: the commit live when it was created."""
        return {job_id: job["_commit"] for job_id, job in self.jobs.items()}

    # -- the endpoints --------------------------------------------------------------------

    def _handle(self, method: str, kind: str, rest: list[str], body: dict) -> tuple:
        if kind == "jobs":
            if method == "POST" and not rest:
                return 201, self._create_job(body.get("startCommand"))
            if rest and rest[0] in self.jobs:
                if method == "GET" and len(rest) == 1:
                    return 200, self._advance_job(rest[0])
                if method == "POST" and rest[1:] == ["cancel"]:
                    return 200, self._cancel_job(rest[0])
            return 404, {"message": "job not found"}
        if method == "POST" and not rest:
            deploy = self._add_deploy(body.get("commitId") or "f" * 40, status=self.deploy_statuses[0], trigger="api")
            return (202, None) if self.queue_deploys else (201, _public(deploy))
        if method == "GET" and not rest:
            return 200, [{"deploy": _public(d), "cursor": d["id"]} for d in reversed(self.deploys)]
        by_id = {d["id"]: d for d in self.deploys}
        if method == "GET" and len(rest) == 1 and rest[0] in by_id:
            return 200, self._advance_deploy(by_id[rest[0]])
        return 404, {"message": "deploy not found"}

    def _add_deploy(self, commit: str, *, status: str, trigger: str) -> dict:
        deploy = {"id": f"dep-{len(self.deploys) + 1:04d}", "commit": {"id": commit, "message": "a commit",
                                                                       "createdAt": _now()},
                  "status": status, "trigger": trigger, "createdAt": _now(), "updatedAt": _now(),
                  "finishedAt": _now() if status in DEPLOY_FINAL else None, "_step": 0}
        self.deploys.append(deploy)
        return deploy

    def _advance_deploy(self, deploy: dict) -> dict:
        if deploy["status"] not in DEPLOY_FINAL:
            deploy["_step"] = min(deploy["_step"] + 1, len(self.deploy_statuses) - 1)
            deploy["status"] = self.deploy_statuses[deploy["_step"]]
            deploy["updatedAt"] = _now()
            if deploy["status"] in DEPLOY_FINAL:
                deploy["finishedAt"] = _now()
            if deploy["status"] == "live":
                for other in self.deploys:
                    if other is not deploy and other["status"] == "live":
                        other["status"] = "deactivated"
                self.live_commit = deploy["commit"]["id"]
        return _public(deploy)

    def _create_job(self, command: str | None) -> dict:
        job_id = f"job-{len(self.jobs) + 1:04d}"
        job = {"id": job_id, "serviceId": self.service_id, "startCommand": command, "planId": "plan-srv-004",
               "status": self.statuses[0], "createdAt": _now(), "startedAt": None, "finishedAt": None, "_step": 0,
               "_commit": self.live_commit}
        self.jobs[job_id] = job
        return _public(job)

    def _advance_job(self, job_id: str) -> dict:
        job = self.jobs[job_id]
        if job["status"] != "canceled":
            job["_step"] = min(job["_step"] + 1, len(self.statuses) - 1)
            job["status"] = self.statuses[job["_step"]]
        if job["status"] != "pending" and not job["startedAt"]:
            job["startedAt"] = _now()
        if job["status"] in ("succeeded", "failed", "canceled") and not job["finishedAt"]:
            job["finishedAt"] = _now()
        return _public(job)

    def _cancel_job(self, job_id: str) -> dict:
        job = self.jobs[job_id]
        if job["status"] not in ("succeeded", "failed", "canceled"):
            job["status"] = "canceled"
            job["finishedAt"] = _now()
        return _public(job)

    def __enter__(self) -> RenderStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
