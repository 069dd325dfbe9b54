"""A local stand-in of the two Render job endpoints, following the documented shapes.

``POST /v1/services/{serviceId}/jobs`` with ``{"startCommand": ...}`` answers
201 with a job object (``id``, ``serviceId``, ``startCommand``, ``planId``,
``status``, ``createdAt``, ``startedAt``, ``finishedAt``);
``GET /v1/services/{serviceId}/jobs/{jobId}`` answers that job, moving it
through ``statuses`` one step per GET.  Any request without
``Authorization: Bearer <api_key>`` gets 401; another service id gets 404.
Real HTTP on a free loopback port: the client under test is not touched.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class RenderStandIn:
    def __init__(self, *, api_key: str, service_id: str = "srv-dbopsjob", statuses=("pending", "running", "succeeded")):
        self.api_key = api_key
        self.service_id = service_id
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        self.jobs: dict[str, dict] = {}
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, code: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                stand_in.requests.append({"method": method, "path": self.path, "auth": self.headers.get("Authorization"),
                                          "body": json.loads(raw) if raw else None})
                if self.headers.get("Authorization") != f"Bearer {stand_in.api_key}":
                    return self._send(401, {"id": "unauthorized", "message": "unauthorized"})
                parts = self.path.strip("/").split("/")  # v1 services {id} jobs [jobId]
                if parts[:2] != ["v1", "services"] or len(parts) < 4 or parts[3] != "jobs":
                    return self._send(404, {"message": "not found"})
                if parts[2] != stand_in.service_id:
                    return self._send(404, {"id": "not-found", "message": "service not found"})
                if method == "POST" and len(parts) == 4:
                    return self._send(201, stand_in._create((json.loads(raw) if raw else {}).get("startCommand")))
                if method == "GET" and len(parts) == 5 and parts[4] in stand_in.jobs:
                    return self._send(200, stand_in._advance(parts[4]))
                return self._send(404, {"message": "job not found"})

            def do_POST(self):
                self._route("POST")

            def do_GET(self):
                self._route("GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _create(self, command: str | None) -> dict:
        job_id = f"job-{len(self.jobs) + 1:04d}"
        job = {"id": job_id, "serviceId": self.service_id, "startCommand": command, "planId": "plan-srv-004",
               "status": self.statuses[0], "createdAt": _now(), "startedAt": None, "finishedAt": None, "_step": 0}
        self.jobs[job_id] = job
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def _advance(self, job_id: str) -> dict:
        job = self.jobs[job_id]
        job["_step"] = min(job["_step"] + 1, len(self.statuses) - 1)
        job["status"] = self.statuses[job["_step"]]
        if job["status"] != "pending" and not job["startedAt"]:
            job["startedAt"] = _now()
        if job["status"] in ("succeeded", "failed", "canceled") and not job["finishedAt"]:
            job["finishedAt"] = _now()
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def __enter__(self) -> RenderStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
