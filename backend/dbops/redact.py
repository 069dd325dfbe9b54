"""Secrets never printed: the one URL masker and the one way to turn an exception into a reason.

Every URL a message, a report or a log line shows goes through
:func:`mask_url`; every "why it failed" line taken from an exception goes
through :func:`reason`, which keeps its first line and masks the password of
the URL it was about.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import DbopsError

_DATABASE_SCHEMES = ("postgres", "postgresql")


def mask_url(url: URL | str | None, *, secret_path: bool = False) -> str:
    """A URL safe to print.

    Database URLs (a SQLAlchemy ``URL`` or a ``postgres[ql]://`` string) keep
    everything but the password (``***``).  Other URLs (health, webhook, S3
    endpoints) lose their user info and query string; their path too when it
    carries a token: always with ``secret_path``, and for ``http(s)`` URLs
    that look like webhooks (``hooks`` in the host or path).
    """
    if url is None:
        return "(not set)"
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    parts = urlsplit(url.strip())
    if parts.scheme.split("+")[0] in _DATABASE_SCHEMES:
        try:
            return make_url(url.strip()).render_as_string(hide_password=True)
        except ArgumentError:
            return "(unparseable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    path = parts.path
    if secret_path or (parts.scheme in ("http", "https") and "hooks" in parts.netloc + path):
        path = "/***"
    return urlunsplit((parts.scheme, netloc, path, "***" if parts.query else "", ""))


def reason(exc: BaseException, url: URL | None = None, *, typed: bool = False) -> str:
    """The first line of what ``exc`` says (a driver error's own text), the password of ``url`` masked.

    ``typed`` puts the exception's class name in front (``OperationalError: ...``).
    """
    cause = getattr(exc, "orig", None) or exc
    text = (exc.message if isinstance(exc, DbopsError) else str(cause)).strip()
    line = text.splitlines()[0].strip() if text else ""
    if url is not None and url.password and line:
        line = line.replace(str(url.password), "***")
    if not line:
        return type(cause).__name__
    return f"{type(cause).__name__}: {line}" if typed else line
