"""Render (render.com): start a one-off job on a service and wait for its outcome.

Two endpoints of the Render REST API (https://api-docs.render.com):

* ``POST {base}/v1/services/{serviceId}/jobs`` with ``{"startCommand": "..."}``
  creates a job: a one-off container from the service's latest build and
  environment that runs ``startCommand`` and stops;
* ``GET {base}/v1/services/{serviceId}/jobs/{jobId}`` returns the job:
  ``id``, ``serviceId``, ``startCommand``, ``planId``, ``status``
  (``pending``, ``running``, ``succeeded``, ``failed``, ``canceled``),
  ``createdAt``, ``startedAt``, ``finishedAt``.

Settings (``<ENV>_NAME`` wins over ``NAME``, as everywhere in dbops):
``RENDER_API_KEY`` (a secret: sent in the Authorization header, never
printed), ``RENDER_JOB_SERVICE_ID`` (the ``srv-...`` id of the job service),
``RENDER_API_URL`` (default ``https://api.render.com``; tests point it at a
local stand-in).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

from .errors import (
    ConfigError,
    RenderAuthError,
    RenderError,
    RenderJobFailed,
    RenderJobTimeout,
    RenderServiceNotFound,
)

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.render.com"
FINAL_STATUSES = {"succeeded", "failed", "canceled"}


@dataclass(frozen=True)
class RenderConfig:
    api_key: str = field(repr=False)
    service_id: str
    api_url: str = DEFAULT_API_URL
    #: which variables they came from, for messages
    service_var: str = "RENDER_JOB_SERVICE_ID"

    @classmethod
    def from_env(cls, env: str, environ: Mapping[str, str], *, service_id: str | None = None) -> RenderConfig:
        def get(name: str) -> tuple[str | None, str]:
            scoped = f"{env.upper()}_{name}"
            if environ.get(scoped):
                return environ[scoped], scoped
            return environ.get(name) or None, name

        key, key_var = get("RENDER_API_KEY")
        if not key:
            raise ConfigError(
                key_var, "is not set",
                hint="create an API key in the Render dashboard (Account settings > API keys) and export RENDER_API_KEY",
            )
        service_var = "--service"
        if not service_id:
            service_id, service_var = get("RENDER_JOB_SERVICE_ID")
        if not service_id:
            raise ConfigError(
                service_var, "is not set",
                hint="set RENDER_JOB_SERVICE_ID (or pass --service) to the srv-... id of the dbops-migrate service",
            )
        url, _ = get("RENDER_API_URL")
        return cls(api_key=key.strip(), service_id=service_id.strip(), api_url=(url or DEFAULT_API_URL).rstrip("/"),
                   service_var=service_var)


@dataclass(frozen=True)
class Job:
    id: str
    service_id: str
    status: str
    start_command: str
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, object]) -> Job:
        try:
            return cls(
                id=str(data["id"]),
                service_id=str(data.get("serviceId", "")),
                status=str(data.get("status") or "pending"),
                start_command=str(data.get("startCommand", "")),
                created_at=data.get("createdAt"),  # type: ignore[arg-type]
                started_at=data.get("startedAt"),  # type: ignore[arg-type]
                finished_at=data.get("finishedAt"),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError) as exc:
            raise RenderError(f"unexpected job object from the Render API (no {exc})", details=str(data)[:500]) from None

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    def describe_duration(self) -> str:
        try:
            start = datetime.fromisoformat(str(self.started_at).replace("Z", "+00:00"))
            end = datetime.fromisoformat(str(self.finished_at).replace("Z", "+00:00"))
        except ValueError:
            return "an unknown time"
        return f"{(end - start).total_seconds():.0f}s"


class RenderClient:
    """The two job endpoints, with errors that say what to do; the key only ever goes in a header."""

    def __init__(self, config: RenderConfig, *, timeout: float = 30):
        self.config = config
        self._http = httpx.Client(
            base_url=config.api_url + "/v1",
            headers={"Authorization": f"Bearer {config.api_key}", "Accept": "application/json"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs) -> dict:
        what = f"{method} {self.config.api_url}/v1{path}"
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise RenderError(
                f"{what}: no answer within {self._http.timeout.read:.0f}s",
                hint="check https://status.render.com and your network, then run the command again",
            ) from None
        except httpx.HTTPError as exc:
            raise RenderError(
                f"{what}: {type(exc).__name__}: {exc}",
                hint="check RENDER_API_URL and the network (proxy, DNS)",
            ) from None
        if resp.status_code in (401, 403):
            raise RenderAuthError(
                f"{what}: HTTP {resp.status_code}: the Render API refused the API key",
                hint="RENDER_API_KEY is wrong, revoked, or has no access to this workspace: "
                "make a new key in Account settings > API keys",
            )
        if resp.status_code == 404:
            raise RenderServiceNotFound(
                f"{what}: HTTP 404: service {self.config.service_id} not found",
                hint=f"check {self.config.service_var}: the srv-... id is in the service's dashboard URL; "
                "the key must belong to the service's workspace",
            )
        if resp.status_code >= 400:
            raise RenderError(f"{what}: HTTP {resp.status_code}", details=resp.text[:500] or None,
                              hint="retry later; on 429 wait for the rate limit to reset")
        try:
            return resp.json()
        except ValueError:
            raise RenderError(f"{what}: the answer is not JSON", details=resp.text[:500] or None) from None

    def create_job(self, start_command: str) -> Job:
        data = self._request("POST", f"/services/{self.config.service_id}/jobs", json={"startCommand": start_command})
        return Job.from_api(data)

    def get_job(self, job_id: str) -> Job:
        return Job.from_api(self._request("GET", f"/services/{self.config.service_id}/jobs/{job_id}"))


def run_job(
    config: RenderConfig,
    start_command: str,
    *,
    timeout: float = 3600,
    poll_interval: float = 5,
    on_status: Callable[[Job], None] | None = None,
    client: RenderClient | None = None,
) -> Job:
    """Start ``start_command`` as a Render one-off job and wait until it ends.

    Returns the job when it ``succeeded``; raises :class:`RenderJobFailed`
    (exit 1) when it failed or was canceled, :class:`RenderJobTimeout` when
    it is still not finished after ``timeout`` seconds (it keeps running on
    Render: the message says how to find it).
    """
    own = client is None
    client = client or RenderClient(config)
    try:
        job = client.create_job(start_command)
        if on_status:
            on_status(job)
        last = [job]  # the latest answer, for the timeout message

        def poll() -> Job:
            latest = client.get_job(job.id)
            if on_status and latest.status != last[0].status:
                on_status(latest)
            last[0] = latest
            return latest

        if not job.finished:
            try:
                job = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(poll_interval),
                               retry=retry_if_result(lambda j: not j.finished))(poll)
            except RetryError:
                raise RenderJobTimeout(
                    f"Render job {job.id} is still {last[0].status} after {timeout:.0f}s",
                    hint=f"it keeps running on Render; follow it in the dashboard (service {config.service_id}, "
                    "Jobs tab), or wait longer with --timeout",
                ) from None
        if job.status != "succeeded":
            raise RenderJobFailed(job)
        return job
    finally:
        if own:
            client.close()
