"""The application's health URL (the seed's ``curl /api/health``), over httpx.

Healthy means HTTP 200, with any body: that is all dbops asks of a plain
health endpoint (the schema itself is checked on dbops' own connection, by
the deploy's verify step).  An endpoint may say more:

- a body that names the database's revision (``current``, ``revision``,
  ``schema_revision``, ``alembic_revision``): when the caller passes the
  revision the database is known to be at (``expected_heads``: the head a
  deploy just verified), they must match, or the app looks at another
  database;
- a body that speaks **dbops' health contract** (docs/production.md; the
  drop-in :mod:`dbops.integrations` answer it): ``schema`` (``at head`` /
  ``ahead`` / ``behind`` / ``unknown``), ``current`` (where the database is)
  and ``heads`` (what the app's code expects); 200 then means the database
  is at or ahead of the code's head.  :attr:`HealthResult.contract` says
  whether it did, and the words about the schema (``schema ahead: database
  at b2, the app's code expects a1``) are only said when the body said them.

:func:`wait_healthy` retries with backoff for a bounded time (the app may be
restarting); every URL shown is masked (tokens in query strings or user
info never print).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

from .errors import HealthCheckFailed
from .redact import mask_url, mask_url_in

log = logging.getLogger(__name__)


@dataclass
class HealthResult:
    url: str  # masked
    ok: bool
    reason: str
    status: int | None = None
    body: object = None
    #: the database's revision(s) as the app reports them
    revision: list[str] | None = None
    #: the app's word for its schema: "at head", "ahead", "behind", "unknown" (None: the body does not say)
    schema: str | None = None
    #: the head(s) the app's code expects, as it reports them
    app_heads: list[str] | None = None

    @property
    def contract(self) -> bool:
        """Whether the body speaks dbops' health contract (``schema``, ``current`` and ``heads``)."""
        return self.schema is not None and self.app_heads is not None and isinstance(self.body, dict) \
            and isinstance(self.body.get("current"), list)

    def to_dict(self) -> dict:
        return {"url": self.url, "ok": self.ok, "reason": self.reason, "status": self.status, "revision": self.revision,
                "schema": self.schema, "app_heads": self.app_heads, "contract": self.contract}


#: the keys of a health body read as the database's Alembic revision (``current``: a list)
REVISION_KEYS = ("current", "revision", "schema_revision", "alembic_revision")


def reported_revisions(body: object) -> list[str] | None:
    """The schema revision(s) a health body names (``current``, ``revision``...), if any: the one reading of them."""
    if not isinstance(body, dict):
        return None
    current = body.get("current")
    if isinstance(current, list) and all(isinstance(c, str) for c in current):
        return sorted(current)
    for key in REVISION_KEYS[1:]:
        if isinstance(body.get(key), str):
            return [body[key]]
    return None


def _app_view(body: object) -> tuple[str | None, list[str] | None]:
    """(schema state, the app's code heads) from a health body, where it names them."""
    if not isinstance(body, dict):
        return None, None
    state = body.get("schema") if isinstance(body.get("schema"), str) else None
    heads = body.get("heads")
    return state, sorted(heads) if isinstance(heads, list) and all(isinstance(h, str) for h in heads) else None


def _schema_words(revision: list[str] | None, state: str | None, app_heads: list[str] | None) -> str:
    """``schema ahead: database at b2, the app's code expects a1`` (what the body says, no more)."""
    if revision is None:
        return ""
    at = ", ".join(revision) or "(none)"
    if state is None:
        return f", schema at {at}"
    expects = f", the app's code expects {', '.join(app_heads) or '(none)'}" if app_heads is not None else ""
    return f", schema {state}: database at {at}{expects}"


def check(url: str, *, expected_heads: list[str] | tuple[str, ...] | None = None, timeout: float = 5) -> HealthResult:
    """One GET of the health URL, judged: 200 and (if the body names it) the database at ``expected_heads``."""
    shown = mask_url(url)
    try:
        resp = httpx.get(url, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        return HealthResult(shown, False, f"no answer ({type(exc).__name__}: {mask_url_in(str(exc), url)})")
    try:
        body = resp.json()
    except ValueError:
        body = resp.text[:200]
    revision = reported_revisions(body)
    state, app_heads = _app_view(body)
    words = _schema_words(revision, state, app_heads)
    if resp.status_code != 200:
        detail = f"{words}; body: {str(body)[:200]}" if body else ""
        return HealthResult(shown, False, f"HTTP {resp.status_code}{detail}", resp.status_code, body, revision,
                            state, app_heads)
    if expected_heads and revision is not None and sorted(revision) != sorted(expected_heads):
        return HealthResult(
            shown, False, f"answers 200 but its body reports the database at {', '.join(revision) or '(none)'}, "
            f"not at {', '.join(expected_heads)} (is HEALTH_URL this environment's app? dbops reads "
            f"{'/'.join(REVISION_KEYS)} in a health body as the database's Alembic revision)",
            resp.status_code, body, revision, state, app_heads,
        )
    return HealthResult(shown, True, "HTTP 200" + words, resp.status_code, body, revision, state, app_heads)


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
            last.url, f"{last.reason} (still failing after {within_s:g}s of retries)",
            status=last.status, body=last.body, hint=failure_hint(last),
        ) from None


def failure_hint(last: HealthResult) -> str:
    """What to look at when the health URL never answered well: in the words of what it was asked."""
    if last.status is None:
        return "check that the app runs and that HEALTH_URL (scheme, host, port, path) reaches it"
    if last.contract:
        return ("look at the application's logs and its health body: under dbops' health contract it answers 200 "
                "when its database is at or ahead of the head its code expects (docs/production.md)")
    if last.status == 200:  # 200 naming another revision
        return "point HEALTH_URL at the app of this environment (the one on the database just deployed)"
    return "look at the application's logs; dbops needs HTTP 200 from its health URL (any body)"
