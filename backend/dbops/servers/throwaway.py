"""Throwaway servers and databases: never the developer's, always dropped.

One way to get a server of one's own: :func:`throwaway_server` (the round trip, compat, verify-backup and
the rehearsal all use it).

With no server given, a private embedded PostgreSQL (``FAST_OPTIONS``: no
fsync) is started in a temporary directory and destroyed at the end.  With a
server URL (tests, CI, ``--server``), a uniquely named database is created on
it and dropped at the end.  Both happen in ``finally`` blocks, so failures
and Ctrl-C clean up too.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL

from .. import postgres, scratch
from ..errors import CheckFailed
from ..postgres import clients
from ..redact import mask_url
from ..settings import ClientPlaces
from .embedded import FAST_OPTIONS, EmbeddedServer

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
def throwaway_server(bin_dir: Path | None = None, *, prefix: str = "dbops-throwaway-",
                     purpose: str = "a throwaway PostgreSQL server",
                     places: ClientPlaces | None = None) -> Iterator[EmbeddedServer]:
    """A private PostgreSQL on a free loopback port, durability off (``FAST_OPTIONS``), deleted afterwards.

    ``bin_dir``: the server programs to run (a major chosen by :func:`programs_for_major`); None: the
    embedded wheel's PostgreSQL (without the wheel: the newest server of ``places``, the settings'
    ``client_places``).  ``purpose``: whose server it is, in the error when no folder can hold it.
    """
    with scratch.temporary_directory(prefix, purpose=purpose) as tmp:
        os.chmod(tmp, 0o711)  # the server runs as an unprivileged user when we are root
        server = EmbeddedServer(tmp / "pg", port=0, options=FAST_OPTIONS, bin_dir=bin_dir, places=places)
        try:
            server.start()
            yield server
        finally:
            server.destroy()


@contextmanager
def given_or_throwaway(server_url: URL | None, *, prefix: str = "dbops-throwaway-",
                       purpose: str = "a throwaway PostgreSQL server",
                       places: ClientPlaces | None = None) -> Iterator[URL]:
    """The URL of the server to use: ``server_url``, or a :func:`throwaway_server`'s, destroyed at the end."""
    if server_url is not None:
        yield server_url
        return
    with throwaway_server(prefix=prefix, purpose=purpose, places=places) as server:
        yield server.url()


def programs_for_major(major: int | None, problem: str, places: ClientPlaces | None = None) -> Path:
    """The folder of server programs of PostgreSQL ``major``; CheckFailed (``problem``: why it matters) if none.

    ``places``: where to look first (the settings' ``client_places``).
    """
    bin_dir = clients.server_bin(major, places) if major else None
    if bin_dir is None:
        raise CheckFailed(
            f"{problem}: it comes from a PostgreSQL "
            f"{major or '(unknown)'} server and no PostgreSQL {major or ''} server "
            "programs (postgres, initdb, pg_ctl) are installed here to restore it into",
            details="looked in:\n" + "\n".join(f"- {d} ({s})" for d, s in clients.candidate_dirs(places)),
            hint=(clients.install_hint([major], places) if major in clients.SUPPORTED_MAJORS else
                  "take a new backup with `inv backup` (its manifest records the server's version)"),
        )
    return bin_dir


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
