"""The application's health URL (the seed's ``curl /api/health``), over httpx.

Healthy means: HTTP 200, and when the JSON body names a schema revision
(``revision``/``current``), it is the expected head.  :func:`wait_healthy`
retries with backoff for a bounded time (the app may be restarting); every
URL shown is masked (tokens in query strings or user info never print).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

from .errors import HealthCheckFailed
from .redact import mask_url

log = logging.getLogger(__name__)


@dataclass
class HealthResult:
    url: str  # masked
    ok: bool
    reason: str
    status: int | None = None
    body: object = None
    revision: list[str] | None = None

    def as_dict(self) -> dict:
        return {"url": self.url, "ok": self.ok, "reason": self.reason, "status": self.status, "revision": self.revision}


def _revisions(body: object) -> list[str] | None:
    """The schema revision(s) a health body names, if any."""
    if not isinstance(body, dict):
        return None
    current = body.get("current")
    if isinstance(current, list) and all(isinstance(c, str) for c in current):
        return sorted(current)
    for key in ("revision", "schema_revision", "alembic_revision"):
        if isinstance(body.get(key), str):
            return [body[key]]
    return None


def check(url: str, *, expected_heads: list[str] | tuple[str, ...] | None = None, timeout: float = 5) -> HealthResult:
    """One GET of the health URL, judged: 200 and (if the body names it) the expected revision."""
    shown = mask_url(url)
    try:
        resp = httpx.get(url, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        return HealthResult(shown, False, f"no answer ({type(exc).__name__}: {_clean(str(exc), url)})")
    try:
        body = resp.json()
    except ValueError:
        body = resp.text[:200]
    revision = _revisions(body)
    if resp.status_code != 200:
        detail = f"; body: {str(body)[:200]}" if body else ""
        return HealthResult(shown, False, f"HTTP {resp.status_code}{detail}", resp.status_code, body, revision)
    if expected_heads and revision is not None and sorted(revision) != sorted(expected_heads):
        return HealthResult(
            shown, False, f"answers 200 but reports schema revision {', '.join(revision) or '(none)'}, "
            f"expected head {', '.join(expected_heads)}", resp.status_code, body, revision,
        )
    return HealthResult(shown, True, "HTTP 200" + (f", schema at {', '.join(revision)}" if revision else ""),
                        resp.status_code, body, revision)


def _clean(text: str, url: str) -> str:
    return text.replace(url, mask_url(url))


def wait_healthy(
    url: str, *, expected_heads: list[str] | tuple[str, ...] | None = None, within_s: float = 60, timeout: float = 5
) -> HealthResult:
    """Retry :func:`check` with backoff for up to ``within_s``; raise HealthCheckFailed with the last answer."""
    retrying = Retrying(
        stop=stop_after_delay(within_s),
        wait=wait_exponential(multiplier=0.25, max=5),
        retry=retry_if_result(lambda r: not r.ok),
        before_sleep=lambda st: log.info("health not ok yet: %s", st.outcome.result().reason),
    )
    try:
        return retrying(check, url, expected_heads=expected_heads, timeout=timeout)
    except RetryError as exc:
        last: HealthResult = exc.last_attempt.result()
        raise HealthCheckFailed(
            last.url, f"{last.reason} (still failing after {within_s:g}s of retries)", status=last.status, body=last.body
        ) from None
