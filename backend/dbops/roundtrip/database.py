"""The throwaway database every run works in: never the developer's, always dropped.

With no server given, a private embedded PostgreSQL (``FAST_OPTIONS``: no
fsync) is started in a temporary directory and destroyed at the end.  With a
server URL (tests, CI, ``--server``), a uniquely named database is created on
it and dropped at the end.  Both happen in ``finally`` blocks, so failures
and Ctrl-C clean up too.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.engine import URL

from .. import postgres, scratch
from ..servers.embedded import FAST_OPTIONS, EmbeddedServer
from ..redact import mask_url

log = logging.getLogger(__name__)


@dataclass
class ThrowawayDatabase:
    """A database this run created (``name`` on the server at ``server_url``)."""

    server_url: URL
    name: str

    @property
    def url(self) -> URL:
        return self.server_url.set(database=self.name)

    def create(self) -> URL:
        postgres.create_database(self.server_url, self.name)
        return self.url

    def recreate(self) -> URL:
        """Drop and create it again, empty (after a failure left it in an unknown state)."""
        self.drop()
        return self.create()

    def drop(self) -> None:
        postgres.drop_database(self.server_url, self.name)

    def describe(self) -> str:
        return mask_url(self.url)


@contextmanager
def throwaway_server(server_url: URL | None = None) -> Iterator[URL]:
    """The URL of the server to use: ``server_url``, or a private embedded one destroyed at the end."""
    if server_url is not None:
        yield server_url
        return
    directory = scratch.mkdtemp("dbops-roundtrip-", purpose="the round trip's throwaway PostgreSQL server")
    server = EmbeddedServer(directory / "pg", port=0, options=FAST_OPTIONS)
    try:
        server.start()
        yield server.url()
    finally:
        try:
            server.destroy()
        finally:
            shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def throwaway_database(server_url: URL, prefix: str = "dbops_roundtrip") -> Iterator[ThrowawayDatabase]:
    """A new, uniquely named, empty database on ``server_url``; dropped afterwards, whatever happens."""
    db = ThrowawayDatabase(server_url, f"{prefix}_{uuid.uuid4().hex[:12]}")
    db.create()
    try:
        yield db
    finally:
        try:
            db.drop()
        except Exception as exc:  # never hide the original failure behind a cleanup one
            log.warning("could not drop the throwaway database %s: %s", db.describe(), exc)


def terminate_sessions(server_url: URL, name: str) -> None:
    """End every session still connected to ``name`` (env.py's own engines), so it can be a template."""
    import sqlalchemy as sa

    with postgres.admin_connection(server_url) as conn:
        conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"),
            {"name": name},
        )


def clone(server_url: URL, source: str, target: str) -> None:
    """``target`` as a copy of ``source`` (``CREATE DATABASE target TEMPLATE source``); ``target`` replaced."""
    postgres.drop_database(server_url, target)
    terminate_sessions(server_url, source)
    postgres.create_database(server_url, target, template=source)
