"""The Docker engine, through the docker SDK: probe, client, image builds, one-shot containers.

Only this module imports ``docker``; the docker provider, the job image build
and the container tests go through it.  The compose CLI is :mod:`.compose`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from ..errors import DbopsError, DockerCallFailed, DockerJobTimeout, DockerUnavailable, ImageBuildError
from ..redact import reason

log = logging.getLogger(__name__)


#: what the Docker SDK's absence says: it is the `docker` extra of dbops
NO_SDK = "the Docker SDK (the docker Python package) is not installed"
NO_SDK_HINT = "pip install 'dbops[docker]' (or the docker package), or use --db embedded / --db url"


def sdk():  # -> the docker module
    """The Docker SDK, imported on first use (an extra: ``dbops[docker]``); DockerUnavailable naming it if missing."""
    try:
        import docker.errors  # an optional dependency: imported where an engine is asked for
    except ImportError:
        raise DockerUnavailable(NO_SDK, hint=NO_SDK_HINT) from None
    return docker


@lru_cache(maxsize=1)
def probe() -> str | None:
    """None when an engine answers, else why not (cached for the process)."""
    try:
        docker = sdk()
    except DockerUnavailable:
        return NO_SDK
    try:
        c = docker.from_env(timeout=3)
        c.ping()
        c.close()
    except Exception as exc:  # DockerException, connection refused, missing socket
        return reason(exc)
    return None


@contextmanager
def calls(operation: str, target: str, *, hint: str | None = None) -> Iterator[None]:
    """Docker SDK calls inside become DockerCallFailed (APIError, DockerException, a requests error).

    Catch the errors a caller expects (``NotFound``) inside the block: they reach it first.
    """
    docker = sdk()
    import requests  # the Docker SDK's own dependency

    try:
        yield
    except DbopsError:
        raise
    except docker.errors.APIError as exc:
        explanation = exc.explanation if isinstance(exc.explanation, str) and exc.explanation else reason(exc)
        if isinstance(exc.explanation, bytes):
            explanation = exc.explanation.decode(errors="replace")
        raise DockerCallFailed(operation, target, explanation.strip(), status=exc.status_code, hint=hint) from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise DockerCallFailed(operation, target, reason(exc, typed=True), hint=hint) from None


def engine_available() -> bool:
    """Whether a Docker engine answers a ping (the answer is cached)."""
    return probe() is None


def client(timeout: int = 120):  # -> docker.DockerClient
    """A docker client, or DockerUnavailable saying why and what to do."""
    docker = sdk()
    reason = probe()
    if reason is not None:
        raise DockerUnavailable(reason)
    return docker.from_env(timeout=timeout)


def build_image(context, *, tag: str, dockerfile: str = "Dockerfile", buildargs: dict[str, str] | None = None,
                timeout: int = 1800):  # -> docker.models.images.Image
    """``docker build`` of ``context`` (legacy builder), logging each step; the tagged image.

    Layers are reused between builds (no ``--no-cache``); intermediate containers are removed.
    """
    docker = sdk()
    import requests  # the Docker SDK's own dependency

    api = client(timeout=timeout).api
    lines: list[str] = []
    image_id = None
    error = None
    try:
        for chunk in api.build(path=str(context), dockerfile=dockerfile, tag=tag, buildargs=buildargs or {},
                               rm=True, forcerm=True, decode=True):
            if "stream" in chunk:
                for line in chunk["stream"].splitlines():
                    if line.strip():
                        lines.append(line)
                        log.info("build %s: %s", tag, line)
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                error = chunk["error"].strip()
    except docker.errors.APIError as exc:
        error = str(exc)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:  # the engine went away
        error = reason(exc, typed=True)
    if error or image_id is None:
        raise ImageBuildError(
            f"docker build of {tag} ({dockerfile}) failed: {error or 'no image id in the build output'}",
            details="\n".join(lines[-25:]) or None,
            hint="read the build log above; behind an intercepting proxy pip needs its CA: DBOPS_BUILD_CA for "
                 "`inv image`, --build-arg PIP_CA_CERT for docker build (docs/container.md)",
        )
    with calls("image get", tag):
        return client().images.get(tag)


class JobResult:
    """What a finished one-shot container left: its exit code, its output, how long it ran."""

    def __init__(self, exit_code: int, output: str, seconds: float):
        self.exit_code = exit_code
        self.output = output
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"JobResult(exit_code={self.exit_code}, seconds={self.seconds:.1f})"


def run_job(image: str, command: list[str] | None = None, *, environment: dict[str, str] | None = None,
            network_mode: str | None = None, timeout: float = 600, name: str | None = None,
            entrypoint: list[str] | None = None, read_only: bool = False, tmpfs: dict[str, str] | None = None,
            volumes: dict[str, dict[str, str]] | None = None) -> JobResult:
    """Run a one-shot container to the end (like ``docker run --rm``): exit code, stdout+stderr, wall time.

    ``read_only``, ``tmpfs`` and ``volumes`` are ``docker run``'s ``--read-only``, ``--tmpfs`` and ``-v``.
    The container is removed afterwards, also on timeout (then it is killed and
    :class:`DockerJobTimeout` carries the output so far).
    """
    import time

    dc = client(timeout=int(timeout) + 30)
    start = time.monotonic()
    target = f"a container from {image}" + (f" named {name!r}" if name else "")
    with calls("run", target):
        container = dc.containers.run(image, command, detach=True, environment=environment or {},
                                      network_mode=network_mode, name=name, entrypoint=entrypoint,
                                      read_only=read_only, tmpfs=tmpfs or {}, volumes=volumes or {})
        return _finish(container, image, timeout, start)


def _finish(container, image: str, timeout: float, start: float) -> JobResult:
    """Wait for a started job container, collect its output, remove it (also on timeout)."""
    import time

    try:
        try:
            status = container.wait(timeout=timeout)
        except Exception as exc:  # requests ReadTimeout / ConnectionError when the wait times out
            container.kill()
            output = container.logs().decode(errors="replace")
            raise DockerJobTimeout(
                f"container from {image} still ran after {timeout:.0f}s; killed",
                details=output[-3000:] or None,
            ) from exc
        seconds = time.monotonic() - start
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
        return JobResult(int(status.get("StatusCode", -1)), output, seconds)
    finally:
        container.remove(force=True)
