"""Render (render.com): put the job service on a commit, run a one-off job on it, wait for its outcome.

Endpoints of the Render REST API (https://api-docs.render.com) used here:

* ``GET {base}/v1/services/{serviceId}/deploys?limit=N``: the service's
  deploys, newest first, as ``[{"deploy": {...}, "cursor": "..."}]``;
* ``POST {base}/v1/services/{serviceId}/deploys`` with
  ``{"commitId": sha, "clearCache": "do_not_clear"}``: build and deploy that
  commit; 201 with the deploy object (``id``, ``commit.id``, ``status``:
  ``created``, ``queued``, ``build_in_progress``, ``update_in_progress``,
  ``pre_deploy_in_progress``, then ``live`` or ``build_failed``,
  ``update_failed``, ``pre_deploy_failed``, ``canceled``, ``deactivated``),
  or 202 when it is queued behind another deploy (then it is found in the list);
* ``GET {base}/v1/services/{serviceId}/deploys/{deployId}``: that deploy;
* ``POST {base}/v1/services/{serviceId}/jobs`` with ``{"startCommand": "..."}``
  creates a job: a one-off container from the service's latest build and
  environment that runs ``startCommand`` and stops;
* ``GET {base}/v1/services/{serviceId}/jobs/{jobId}`` returns the job:
  ``id``, ``serviceId``, ``startCommand``, ``planId``, ``status``
  (``pending``, ``running``, ``succeeded``, ``failed``, ``canceled``),
  ``createdAt``, ``startedAt``, ``finishedAt``;
* ``POST {base}/v1/services/{serviceId}/jobs/{jobId}/cancel``: stop it.

One deadline covers the whole run (the deploy, the job, every retry).  429
and 5xx answers are retried with exponential backoff (``Retry-After`` when
the API sends one) until the deadline, one line each; a job creation (not
idempotent) only on 429 and 503, which say the request was not taken.  A
read whose connection drops once the API has answered before is retried too
(a wrong ``RENDER_API_URL`` still fails at once).  A job still running at the
deadline is canceled.

Settings (``<ENV>_NAME`` wins over ``NAME``, as everywhere in dbops):
``RENDER_API_KEY`` (a secret: sent in the Authorization header, never
printed), ``RENDER_JOB_SERVICE_ID`` (the ``srv-...`` id of the job service),
``RENDER_API_URL`` (default ``https://api.render.com``; tests point it at a
local stand-in).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NoReturn, TypeVar

import httpx
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type, retry_if_result

from .errors import (
    ConfigError,
    RenderAuthError,
    RenderDeployFailed,
    RenderDeployTimeout,
    RenderError,
    RenderJobFailed,
    RenderJobTimeout,
    RenderServiceNotFound,
    RenderUnavailable,
    UsageError,
)
from .redact import reason
from .settings import Settings
from .ui import SILENT, UI

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.render.com"
FINAL_STATUSES = {"succeeded", "failed", "canceled"}
DEPLOY_FINAL = {"live", "deactivated", "build_failed", "update_failed", "pre_deploy_failed", "canceled"}
#: answers worth another try: rate limited, or the API (or a proxy before it) in trouble
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: for a request that is not idempotent (creating a job): only answers that say it was not taken
REFUSED_STATUSES = frozenset({429, 503})
#: how long the cancel of a job may retry once the deadline has passed
CANCEL_GRACE = 30.0
#: the retry budget of a request made without a deadline
DEFAULT_BUDGET = 120.0
COMMIT_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

T = TypeVar("T")


@dataclass(frozen=True)
class RenderConfig:
    api_key: str = field(repr=False)
    service_id: str
    api_url: str = DEFAULT_API_URL
    #: which variables they came from, for messages
    service_var: str = "RENDER_JOB_SERVICE_ID"

    @classmethod
    def from_settings(cls, settings: Settings, *, service_id: str | None = None) -> RenderConfig:
        """The API key, the job service (``service_id``: ``--service``, else the setting) and the API's URL;
        ConfigError naming what is missing."""
        key = settings.render_api_key
        if not key:
            raise ConfigError(
                "RENDER_API_KEY", "is not set",
                hint="create an API key in the Render dashboard (Account settings > API keys) "
                "and export RENDER_API_KEY",
            )
        service_var = "--service"
        if not service_id:
            service_id, service_var = settings.render_job_service_id, settings.render_job_service_var
        if not service_id:
            raise ConfigError(
                service_var, "is not set",
                hint="set RENDER_JOB_SERVICE_ID (or pass --service) to the srv-... id of the dbops-migrate service",
            )
        url = settings.render_api_url
        return cls(api_key=key.strip(), service_id=service_id.strip(), api_url=(url or DEFAULT_API_URL).rstrip("/"),
                   service_var=service_var)


def check_commit(commit: str) -> str:
    """The full SHA of a commit, lower case; a short or malformed one is a :class:`UsageError`."""
    sha = commit.strip().lower()
    if not COMMIT_RE.fullmatch(sha):
        raise UsageError(
            f"--commit must be a full commit SHA (40 hex digits), got {commit!r}",
            hint="pass the full SHA: the one `git rev-parse HEAD` prints (in GitHub Actions: \"$GITHUB_SHA\")",
        )
    return sha


class Deadline:
    """One point in time that every wait and retry of a run stops at."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self._end - time.monotonic())

    @property
    def passed(self) -> bool:
        return self.left() <= 0


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
        except (KeyError, TypeError, AttributeError) as exc:
            raise RenderError(f"unexpected job object from the Render API (no {exc})",
                              details=str(data)[:500]) from None

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


@dataclass(frozen=True)
class Deploy:
    id: str
    service_id: str
    status: str
    commit: str | None = None
    created_at: str | None = None
    finished_at: str | None = None
    #: True when the service was already live at the commit and nothing was deployed
    reused: bool = False

    @classmethod
    def from_api(cls, data: Mapping[str, object], service_id: str) -> Deploy:
        try:
            commit = data.get("commit") or {}
            return cls(
                id=str(data["id"]),
                service_id=service_id,
                status=str(data.get("status") or "created"),
                commit=(str(commit.get("id")) if commit.get("id") else None),  # type: ignore[union-attr]
                created_at=data.get("createdAt"),  # type: ignore[arg-type]
                finished_at=data.get("finishedAt"),  # type: ignore[arg-type]
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise RenderError(f"unexpected deploy object from the Render API (no {exc})",
                              details=str(data)[:500]) from None

    @property
    def finished(self) -> bool:
        return self.status in DEPLOY_FINAL

    @property
    def live(self) -> bool:
        return self.status == "live"


class RenderClient:
    """The deploy and job endpoints, with errors that say what to do; the key only ever goes in a header.

    Every request retries 429 and 5xx with exponential backoff (``backoff`` seconds, doubling, at most
    ``max_backoff``; ``Retry-After`` when sent) until ``deadline``, one ``ui.warn`` line per retry.
    """

    def __init__(self, config: RenderConfig, *, timeout: float = 30, deadline: Deadline | None = None,
                 ui: UI = SILENT, backoff: float = 1.0, max_backoff: float = 30.0):
        self.config = config
        self.deadline = deadline
        self.ui = ui
        self.backoff, self.max_backoff = backoff, max_backoff
        self._reached = False  # an answer came once: later dropped connections on reads are retried
        self._http = httpx.Client(
            base_url=config.api_url + "/v1",
            headers={"Authorization": f"Bearer {config.api_key}", "Accept": "application/json"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def _raise_transport(self, what: str, exc: httpx.HTTPError) -> NoReturn:
        if isinstance(exc, httpx.TimeoutException):
            raise RenderError(
                f"{what}: no answer within {self._http.timeout.read:.0f}s",
                hint="check https://status.render.com and your network, then run the command again",
            ) from None
        raise RenderError(
            f"{what}: {reason(exc, typed=True, unwrap=False)}",
            hint="check RENDER_API_URL and the network (proxy, DNS)",
        ) from None

    def _once(self, method: str, path: str, what: str, retry_on: frozenset[int], **kwargs) -> object:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            if isinstance(exc, httpx.TransportError) and method == "GET" and self._reached:
                # a blip mid-run: a read can be asked again
                raise RenderUnavailable(what, None, reason=reason(exc, typed=True, unwrap=False)) from None
            self._raise_transport(what, exc)
        self._reached = True
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
        if resp.status_code in retry_on:
            raise RenderUnavailable(what, resp.status_code, retry_after=_retry_after(resp),
                                    details=resp.text[:500] or None)
        if resp.status_code >= 400:
            raise RenderError(f"{what}: HTTP {resp.status_code}", details=resp.text[:500] or None,
                              hint="check the request's ids; retry later if Render is in trouble")
        if resp.status_code in (202, 204) and not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise RenderError(f"{what}: the answer is not JSON", details=resp.text[:500] or None) from None

    def _request(self, method: str, path: str, *, retry_on: frozenset[int] = RETRY_STATUSES,
                 budget: Deadline | None = None, **kwargs) -> object:
        what = f"{method} {self.config.api_url}/v1{path}"
        budget = budget or self.deadline or Deadline(DEFAULT_BUDGET)
        started = time.monotonic()

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            delay = min(self.backoff * 2 ** (state.attempt_number - 1), self.max_backoff)
            if isinstance(exc, RenderUnavailable) and exc.retry_after is not None:
                delay = exc.retry_after
            return min(delay, budget.left())

        def say(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            sleep = state.next_action.sleep if state.next_action else 0.0
            said = getattr(exc, "reason", "?")
            self.ui.warn(f"Render API {method} {path}: {said}; "
                         f"try {state.attempt_number + 1} in {sleep:.1f}s ({budget.left():.0f}s left)")

        tries = [0]

        def attempt() -> object:
            tries[0] += 1
            return self._once(method, path, what, retry_on, **kwargs)

        try:
            result = Retrying(retry=retry_if_exception_type(RenderUnavailable), stop=lambda _s: budget.passed,
                              wait=wait, before_sleep=say, reraise=True)(attempt)
        except RenderUnavailable as exc:
            if tries[0] == 1:
                raise
            raise RenderUnavailable(what, exc.status, tries=tries[0], seconds=time.monotonic() - started,
                                    details=exc.details, reason=exc.reason) from None
        if tries[0] > 1:
            self.ui.say(f"Render API {method} {path}: answered on try {tries[0]}")
        return result

    # -- deploys --------------------------------------------------------------------------

    def list_deploys(self, limit: int = 20) -> list[Deploy]:
        data = self._request("GET", f"/services/{self.config.service_id}/deploys", params={"limit": limit})
        if not isinstance(data, list):
            raise RenderError("unexpected deploy list from the Render API", details=str(data)[:500])
        return [Deploy.from_api(item.get("deploy", item) if isinstance(item, Mapping) else {}, self.config.service_id)
                for item in data]

    def create_deploy(self, commit: str) -> Deploy | None:
        """Start a deploy of ``commit``; None when Render queued it (202) without saying its id."""
        data = self._request("POST", f"/services/{self.config.service_id}/deploys", retry_on=REFUSED_STATUSES,
                             json={"commitId": commit, "clearCache": "do_not_clear"})
        if isinstance(data, Mapping) and data.get("id"):
            return Deploy.from_api(data, self.config.service_id)
        return None

    def get_deploy(self, deploy_id: str) -> Deploy:
        data = self._request("GET", f"/services/{self.config.service_id}/deploys/{deploy_id}")
        return Deploy.from_api(data if isinstance(data, Mapping) else {}, self.config.service_id)

    # -- jobs -----------------------------------------------------------------------------

    def create_job(self, start_command: str) -> Job:
        data = self._request("POST", f"/services/{self.config.service_id}/jobs", retry_on=REFUSED_STATUSES,
                             json={"startCommand": start_command})
        return Job.from_api(data if isinstance(data, Mapping) else {})

    def get_job(self, job_id: str, *, budget: Deadline | None = None) -> Job:
        data = self._request("GET", f"/services/{self.config.service_id}/jobs/{job_id}", budget=budget)
        return Job.from_api(data if isinstance(data, Mapping) else {})

    def cancel_job(self, job_id: str) -> None:
        self._request("POST", f"/services/{self.config.service_id}/jobs/{job_id}/cancel",
                      budget=Deadline(CANCEL_GRACE))


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return max(0.0, float(resp.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def _poll(fetch: Callable[[], T], done: Callable[[T], bool], deadline: Deadline, interval: float) -> T:
    """``fetch()`` every ``interval`` seconds until ``done``; RetryError when the deadline passes first."""
    return Retrying(retry=retry_if_result(lambda r: not done(r)), stop=lambda _s: deadline.passed,
                    wait=lambda _s: min(interval, deadline.left()))(fetch)


def _follow(get: Callable[[str], T], first: T, label: str, deadline: Deadline, interval: float,
            ui: UI) -> tuple[T, bool]:
    """Poll ``get(id)`` until the deploy or job ``first`` is finished, saying each change of status.

    Returns (the latest answer, whether it finished before the deadline); a Render outage that
    outlasts the deadline counts as the deadline, one before it is raised.
    """
    last = [first]

    def fetch() -> T:
        latest = get(first.id)
        if latest.status != last[0].status:
            ui.say(f"{label} {latest.id}: {latest.status}")
        last[0] = latest
        return latest

    if first.finished:
        return first, True
    try:
        return _poll(fetch, lambda x: x.finished, deadline, interval), True
    except RetryError:
        return last[0], False
    except RenderUnavailable:
        if not deadline.passed:
            raise
        return last[0], False


def deploy_commit(client: RenderClient, commit: str, *, deadline: Deadline, poll_interval: float = 5,
                  ui: UI = SILENT) -> Deploy:
    """Get the job service live at ``commit``: nothing when it already is, else a deploy of it, waited for.

    Raises :class:`RenderDeployFailed` when the deploy ends other than ``live``, and
    :class:`RenderDeployTimeout` when it is not live by the deadline.
    """
    service = client.config.service_id
    current = next((d for d in client.list_deploys() if d.live), None)
    if current and current.commit == commit:
        ui.say(f"render service {service}: already live at {commit[:12]} (deploy {current.id}); no deploy needed")
        return replace(current, reused=True)
    deploy = client.create_deploy(commit)
    if deploy is None:  # queued behind another deploy: find it by its commit
        deploy = next((d for d in client.list_deploys() if d.commit == commit and not d.finished), None)
        if deploy is None:
            raise RenderError(f"Render queued a deploy of {commit[:12]} on service {service} but does not list it",
                              hint=f"look at the service's Events in the dashboard ({service}); run the command "
                              "again when the deploy is live")
    was = current.commit[:12] if current and current.commit else "no live deploy"
    ui.say(f"render service {service}: deploying {commit[:12]} (was {was}): deploy {deploy.id} {deploy.status}")
    deploy, finished = _follow(client.get_deploy, deploy, "render deploy", deadline, poll_interval, ui)
    if not finished:
        raise RenderDeployTimeout(deploy, deadline.seconds)
    if not deploy.live:
        raise RenderDeployFailed(deploy)
    ui.ok(f"render service {service}: live at {commit[:12]} (deploy {deploy.id})")
    return deploy


def run_job(
    config: RenderConfig,
    start_command: str,
    *,
    commit: str | None = None,
    timeout: float = 3600,
    poll_interval: float = 5,
    ui: UI = SILENT,
    backoff: float = 1.0,
) -> Job:
    """Start ``start_command`` as a Render one-off job and wait until it ends, all within ``timeout`` seconds.

    With ``commit``, the job service is first put on that commit (:func:`deploy_commit`), so the
    job runs that code and not the service's previous build.  Returns the job when it
    ``succeeded``; raises :class:`RenderJobFailed` (exit 1) when it failed or was canceled, and
    :class:`RenderJobTimeout` when it is still not finished at the deadline, after canceling it.
    429 and 5xx answers are retried until the deadline, starting ``backoff`` seconds apart.
    """
    if commit is not None:
        commit = check_commit(commit)
    deadline = Deadline(timeout)
    client = RenderClient(config, deadline=deadline, ui=ui, backoff=backoff)
    try:
        if commit is not None:
            deploy_commit(client, commit, deadline=deadline, poll_interval=poll_interval, ui=ui)
        job = client.create_job(start_command)
        ui.say(f"render job {job.id}: {job.status}")
        job, finished = _follow(client.get_job, job, "render job", deadline, poll_interval, ui)
        if not finished:
            job = _cancel(client, job, deadline, ui)
        if job.status != "succeeded":
            raise RenderJobFailed(job)
        return job
    finally:
        client.close()


def _cancel(client: RenderClient, job: Job, deadline: Deadline, ui: UI) -> Job:
    """At the deadline: the job when it just finished after all, else cancel it and raise what happened."""
    try:
        job = client.get_job(job.id, budget=Deadline(CANCEL_GRACE))
    except RenderError as exc:
        log.debug("last look at job %s failed: %s", job.id, exc.message)
    if job.finished:
        return job
    ui.warn(f"render job {job.id}: still {job.status} at the deadline ({deadline.seconds:.0f}s): canceling it")
    try:
        client.cancel_job(job.id)
    except RenderError as exc:
        ui.fail(f"render job {job.id}: the cancel failed: {exc.message}")
        raise RenderJobTimeout(job, deadline.seconds, canceled=False, why_not=exc.message) from None
    ui.warn(f"render job {job.id}: canceled")
    raise RenderJobTimeout(job, deadline.seconds, canceled=True)
