"""The no-op provider: a server someone else runs, reached through ``DATABASE_URL``."""

from __future__ import annotations

from sqlalchemy.engine import URL

from ..errors import ConfigError
from ..postgres import check_connection
from .base import PostgresServer

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


class UrlServer(PostgresServer):
    name = "url"
    owned = False

    def __init__(self, url: URL | None, *, variable: str = "DATABASE_URL", connect_timeout: int = 10):
        if url is None:
            raise ConfigError(
                variable,
                "is not set, and --db url needs it",
                hint=f"export {variable}=postgresql://user:password@host:5432/dbname, or use --db embedded",
            )
        self._url = url
        self.variable = variable
        self.connect_timeout = connect_timeout

    @property
    def is_localhost(self) -> bool:
        host = self._url.host or self._url.query.get("host") or ""
        return host in LOCAL_HOSTS or str(host).startswith("/")

    def start(self) -> URL:
        check_connection(
            self._url,
            timeout=self.connect_timeout,
            hint=f"check {self.variable}, that the server runs and accepts connections from here "
            "(or leave DATABASE_URL unset to use the tool's own local Postgres)",
        )
        return self._url

    def stop(self) -> None:
        return None

    def is_running(self) -> bool:
        try:
            check_connection(self._url, timeout=self.connect_timeout)
        except Exception:
            return False
        return True

    def url(self, database: str | None = None) -> URL:
        return self._url if database is None else self._url.set(database=database)
