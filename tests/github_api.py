"""A local stand-in of GitHub's REST endpoints for issue comments, following the documented shapes.

``GET /repos/{owner}/{repo}/issues/{number}/comments?per_page=&page=`` lists comments (oldest first, paged);
``POST /repos/{owner}/{repo}/issues/{number}/comments`` with ``{"body": ...}`` answers 201 with the comment;
``PATCH /repos/{owner}/{repo}/issues/comments/{id}`` with ``{"body": ...}`` answers 200 with it.  A request
without ``Authorization: Bearer <token>`` gets 401; with ``read_only`` set, writes get 403 (a fork's token).
Real HTTP on a free loopback port: the client under test is not touched.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class GitHubComments:
    def __init__(self, token: str, *, read_only: bool = False):
        self.token, self.read_only = token, read_only
        self.comments: dict[int, list[dict]] = {}  # issue number -> comments
        self.requests: list[tuple[str, str]] = []
        self._next = 1000
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, data: object) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                owner.requests.append((self.command, self.path))
                if self.headers.get("Authorization") != f"Bearer {owner.token}":
                    return self._answer(401, {"message": "Bad credentials"})
                length = int(self.headers.get("Content-Length") or 0)
                data = json.loads(self.rfile.read(length) or b"null") if length else None
                url = urlsplit(self.path)
                listing = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)/comments", url.path)
                single = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/comments/(\d+)", url.path)
                if self.command != "GET" and owner.read_only:
                    return self._answer(403, {"message": "Resource not accessible by integration"})
                if listing and self.command == "GET":
                    query = parse_qs(url.query)
                    per, page = int(query.get("per_page", ["30"])[0]), int(query.get("page", ["1"])[0])
                    items = owner.comments.get(int(listing.group(1)), [])
                    return self._answer(200, items[(page - 1) * per:page * per])
                if listing and self.command == "POST":
                    owner._next += 1
                    comment = {"id": owner._next, "body": data["body"]}
                    owner.comments.setdefault(int(listing.group(1)), []).append(comment)
                    return self._answer(201, comment)
                if single and self.command == "PATCH":
                    for items in owner.comments.values():
                        for comment in items:
                            if comment["id"] == int(single.group(1)):
                                comment["body"] = data["body"]
                                return self._answer(200, comment)
                return self._answer(404, {"message": "Not Found"})

            do_GET = do_POST = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
