"""The docker provider: a postgres container with a named volume.

The container publishes 5432 on 127.0.0.1 only (a host port Docker picks), its
data lives in a named volume so ``db-down``/``db-up`` keep it, and the
password is generated once and stored in the container's own environment.
The image is ``DBOPS_POSTGRES_IMAGE`` (see ``dbops.settings``).
"""

from __future__ import annotations

import logging
import secrets

from sqlalchemy.engine import URL
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from ..containers.engine import calls, client, sdk
from ..errors import ServerError
from ..postgres import ensure_database, wait_until_ready
from ..redact import reason
from .base import PostgresServer

log = logging.getLogger(__name__)

LABEL = "dbops.role"
#: what to do when the engine refuses a request about our container, volume or image
HINT = ("check DBOPS_POSTGRES_IMAGE, DBOPS_DOCKER_CONTAINER and DBOPS_DOCKER_VOLUME (`inv config`; a container "
        "name is letters, digits and _ . -, an image reference is lowercase) and that `docker info` answers")


def unavailable(image: str, container: str) -> str | None:
    """Why the docker provider cannot run here (None: it can): its container exists, or the image is here or pulls.

    The automatic provider choice asks this before it picks docker, so an engine
    without the Postgres image (and no registry to pull it from) means the
    embedded server, not a failure.
    """
    docker = sdk()
    import requests  # the Docker SDK's own dependency

    try:
        dc = client()
        try:
            dc.containers.get(container)
            return None
        except docker.errors.NotFound:
            pass
        try:
            dc.images.get(image)
            return None
        except docker.errors.ImageNotFound:
            log.info("pulling %s", image)
            dc.images.pull(image)
            return None
    except docker.errors.APIError as exc:
        text = exc.explanation if isinstance(exc.explanation, str) and exc.explanation else reason(exc)
        return f"the image {image} is not here and could not be pulled ({text.strip()})"
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        return f"the engine did not answer about {image} ({reason(exc, typed=True)})"


class DockerServer(PostgresServer):
    name = "docker"
    owned = True

    def __init__(
        self,
        *,
        image: str,
        container: str,
        volume: str,
        database: str = "postgres",
        start_timeout: float = 90,
    ):
        self.image = image
        self.container_name = container
        self.volume = volume
        self.database = database
        self.start_timeout = start_timeout

    def _container(self):
        docker = sdk()

        with calls("container get", repr(self.container_name), hint=HINT):
            try:
                return client().containers.get(self.container_name)
            except docker.errors.NotFound:
                return None

    def is_running(self) -> bool:
        c = self._container()
        return c is not None and c.status == "running"

    def _env(self, container) -> dict[str, str]:
        pairs = (item.split("=", 1) for item in container.attrs["Config"]["Env"] or [])
        return dict(pairs)

    def _host_port(self, container) -> int:
        ports = container.attrs["NetworkSettings"]["Ports"].get("5432/tcp") or []
        for binding in ports:
            if binding.get("HostIp") in ("127.0.0.1", "0.0.0.0", ""):
                return int(binding["HostPort"])
        raise ServerError(f"container {self.container_name} publishes no port for 5432")

    def url(self, database: str | None = None) -> URL:
        c = self._container()
        if c is None or c.status != "running":
            raise ServerError(
                f"the docker Postgres container {self.container_name} is not running",
                hint="run `inv db-up --db docker`",
            )
        env = self._env(c)
        return URL.create(
            "postgresql+psycopg2",
            username=env.get("POSTGRES_USER", "postgres"),
            password=env.get("POSTGRES_PASSWORD"),
            host="127.0.0.1",
            port=self._host_port(c),
            database=database or self.database,
        )

    def start(self) -> URL:
        dc = client()
        c = self._container()
        with calls("start", f"of container {self.container_name!r} from image {self.image!r}", hint=HINT):
            c = self._create_or_start(dc, c)
            self._wait_for_port(c)
        url = self.url()
        wait_until_ready(url.set(database="postgres"), timeout=self.start_timeout,
                         what=f"container {self.container_name}")
        ensure_database(url)
        return url

    def _create_or_start(self, dc, c):
        """The container, created from the image (pulled if need be) or started; docker errors go to the caller."""
        docker = sdk()

        if c is None:
            try:
                dc.images.get(self.image)
            except docker.errors.ImageNotFound:
                log.info("pulling %s", self.image)
                try:
                    dc.images.pull(self.image)
                except docker.errors.APIError as exc:
                    raise ServerError(
                        f"image {self.image} is not available locally and could not be pulled",
                        details=reason(exc),
                        hint="set DBOPS_POSTGRES_IMAGE to an image you have (see docker/README.md)",
                    ) from None
            log.info("creating container %s from %s", self.container_name, self.image)
            c = dc.containers.run(
                self.image,
                name=self.container_name,
                detach=True,
                environment={"POSTGRES_PASSWORD": secrets.token_urlsafe(18), "POSTGRES_DB": self.database},
                ports={"5432/tcp": ("127.0.0.1", None)},
                volumes={self.volume: {"bind": "/var/lib/postgresql/data", "mode": "rw"}},
                labels={LABEL: "local-db"},
            )
        elif c.status != "running":
            log.info("starting container %s", self.container_name)
            c.start()
        return c

    def _wait_for_port(self, c) -> None:
        """Bounded wait (15 s) for Docker to assign the host port; a container that exits is an error at once."""

        def published() -> bool:
            c.reload()
            if c.status == "exited":
                logs = c.logs(tail=15).decode(errors="replace")
                raise ServerError(f"container {self.container_name} exited at start", details=logs)
            return bool((c.attrs["NetworkSettings"]["Ports"] or {}).get("5432/tcp"))

        try:
            Retrying(stop=stop_after_delay(15), wait=wait_fixed(0.2),
                     retry=retry_if_result(lambda ok: not ok))(published)
        except RetryError:
            pass  # self.url() says "publishes no port for 5432"

    def stop(self) -> None:
        c = self._container()
        if c is not None and c.status == "running":
            with calls("stop", f"of container {self.container_name!r}", hint=HINT):
                c.stop(timeout=20)

    def destroy(self) -> None:
        """Remove the container and its volume (tests, ``--force-recreate`` of the server)."""
        docker = sdk()

        c = self._container()
        with calls("remove", f"of container {self.container_name!r} and volume {self.volume!r}", hint=HINT):
            if c is not None:
                c.remove(force=True)
            try:
                client().volumes.get(self.volume).remove(force=True)
            except docker.errors.NotFound:
                pass

    def describe(self) -> str:
        return f"docker: container {self.container_name} ({self.image}), volume {self.volume}"
