"""The Docker engine, through the docker SDK.

Only this module imports ``docker``; the docker provider and the container
tests go through it.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from .errors import DbopsError

log = logging.getLogger(__name__)


class DockerUnavailable(DbopsError):
    exit_code = 3


@lru_cache(maxsize=1)
def _probe() -> str | None:
    """None when an engine answers, else why not (cached for the process)."""
    try:
        import docker
    except ImportError:
        return "the docker Python package is not installed"
    try:
        c = docker.from_env(timeout=3)
        c.ping()
        c.close()
    except Exception as exc:  # DockerException, connection refused, missing socket
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def engine_available() -> bool:
    """Whether a Docker engine answers a ping (the answer is cached)."""
    return _probe() is None


def client(timeout: int = 120):  # -> docker.DockerClient
    """A docker client, or DockerUnavailable saying why and what to do."""
    reason = _probe()
    if reason is not None:
        raise DockerUnavailable(
            f"no Docker engine answers ({reason})",
            hint="start Docker (e.g. `sudo dockerd &` or Docker Desktop), or use --db embedded",
        )
    import docker

    return docker.from_env(timeout=timeout)
