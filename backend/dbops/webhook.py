"""The outcome webhook: a Slack-compatible ``{"text": ...}`` POST after every run.

A webhook failure is reported, never raised: it must not fail a good deploy.
The webhook URL carries its token in the path, so it is never printed.
"""

from __future__ import annotations

import httpx

from .redact import mask_url


def send(url: str | None, text: str, *, timeout: float = 10) -> str | None:
    """POST the text; None on success (or no URL), else why it failed (URL masked)."""
    if not url:
        return None
    try:
        resp = httpx.post(url, json={"text": text}, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"webhook {mask_url(url, secret_path=True)} did not answer: {type(exc).__name__}"
    if resp.status_code >= 300:
        return f"webhook {mask_url(url, secret_path=True)} answered HTTP {resp.status_code}"
    return None
