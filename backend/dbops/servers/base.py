"""The interface every Postgres provider implements.

Like pytest-postgresql's executor and no-op executor: the embedded and docker
providers start a server, the url provider only connects to one someone else
started, and all three hand callers the same thing, a connection URL.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from sqlalchemy.engine import URL

from ..postgres import check_connection
from ..redact import mask_url


class PostgresServer(abc.ABC):
    """A Postgres server the toolkit can connect to."""

    #: provider name: ``embedded``, ``docker`` or ``url``
    name: ClassVar[str]
    #: True when the toolkit created this server and may drop its databases
    owned: ClassVar[bool] = True

    @abc.abstractmethod
    def start(self) -> URL:
        """Make sure the server runs and the database exists; return its URL. Idempotent."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the server (data is kept). A no-op for servers the toolkit does not own."""

    @abc.abstractmethod
    def is_running(self) -> bool:
        """Whether the server is up right now (without starting it)."""

    @abc.abstractmethod
    def url(self, database: str | None = None) -> URL:
        """Connection URL of ``database`` (default: the app database) on this server."""

    def describe(self) -> str:
        """One line for humans, password masked."""
        return f"{self.name}: {mask_url(self.url())}"

    def version(self) -> str:
        return check_connection(self.url())

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
