"""Secrets never printed: how a URL is shown, the one text masker, and the one way to turn an exception into a reason.

Every URL a message, a report or a log line shows goes through
:func:`mask_url`; every other text that may hold a secret (a log record, the
edge's message, a driver's error) goes through :func:`mask_text`, the one
masker: the known secret values (by default those the environment holds),
then anything that looks like one.  Every "why it failed" line taken from an
exception comes from :func:`reason`: its first line, the password of the URL
it was about masked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

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
        return _masked_database_url(url)
    parts = urlsplit(url.strip())
    if parts.scheme.split("+")[0] in _DATABASE_SCHEMES:
        try:
            return _masked_database_url(make_url(url.strip()))
        except ArgumentError:
            return "(unparseable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    path = parts.path
    if secret_path or (parts.scheme in ("http", "https") and "hooks" in parts.netloc + path):
        path = "/***"
    return urlunsplit((parts.scheme, netloc, path, "***" if parts.query else "", ""))


def _masked_database_url(url: URL) -> str:
    """The URL with its password and its secret query parameters (``password``, ``sslpassword``, ...) as ``***``."""
    secret = {k: "***" for k in url.query if is_secret_parameter(k, database=True)}
    shown = (url.update_query_dict(secret) if secret else url).render_as_string(hide_password=True)
    base, mark, query = shown.partition("?")  # the rendering quotes the query's values: shown as written
    return base + mark + query.replace("=%2A%2A%2A", "=***").replace("%2F", "/").replace("%3A", ":")


def mask_url_in(text: str, url: str) -> str:
    """``text`` with every copy of ``url`` shown as :func:`mask_url` shows it (an HTTP client's error names the URL)."""
    return text.replace(url, mask_url(url))


def reason(exc: BaseException, url: URL | None = None, *, typed: bool = False, unwrap: bool = True) -> str:
    """The first line of what ``exc`` says (a driver error's own text), the password of ``url`` masked.

    ``typed`` puts the exception's class name in front (``OperationalError: ...``); ``unwrap=False``
    speaks of ``exc`` itself, not of the driver error a SQLAlchemy error wraps (``exc.orig``).
    """
    cause = (getattr(exc, "orig", None) if unwrap else None) or exc
    text = (exc.message if isinstance(exc, DbopsError) else str(cause)).strip()
    line = text.splitlines()[0].strip() if text else ""
    if url is not None and url.password and line:
        line = mask_text(line, [str(url.password)])
    if not line:
        return type(cause).__name__
    return f"{type(cause).__name__}: {line}" if typed else line


#: variables whose values are secrets wherever they appear (the AWS access key id too: the docs promise it)
_SECRET_VARIABLE = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY)", re.IGNORECASE)
#: variables holding URLs whose password, secret query parameters or (for webhooks) path are secrets
_URL_VARIABLE = re.compile(r"(DATABASE_URL|HEALTH_URL|WEBHOOK_URL|BACKUP_URL|ENDPOINT_URL)", re.IGNORECASE)
#: a query parameter whose name says it holds a secret: anywhere in the name (``sslpassword``, ``access_token``,
#: ``X-Amz-Signature``) ...
_SECRET_NAME = re.compile(r"(?i)(password|passwd|passphrase|secret|token|signature|credential)")
#: ... or as a word of it (``api_key``, ``apikey``, ``sig``, ``code`` of a functions URL, ``auth``, ``pwd``)
_SECRET_WORD = re.compile(r"(?i)(^|[_.-])(key|apikey|sig|code|auth|pwd|pass)$|^(key|sig|code|auth|pwd|pass)([_.-]|$)")
#: libpq's connection parameters that are settings, not secrets, though their names look like one (file paths,
#: modes): ``sslkey=/certs/client.key`` names a file; its contents never reach a URL
_LIBPQ_SETTINGS = frozenset({"passfile", "sslkey", "sslcert", "sslrootcert", "sslcrl", "sslcrldir", "sslkeylogfile",
                             "sslcertmode", "require_auth", "gssencmode", "krbsrvname", "gsslib", "gssdelegation",
                             "oauth_client_id", "oauth_issuer", "oauth_scope"})
#: a query value that looks like a token whatever its parameter's name (a health or webhook URL's own scheme):
#: 12+ characters of letters and digits (and ``-_.~+/=``), with both letters and digits
_TOKEN_VALUE = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[A-Za-z0-9\-_.~+/=%]{12,}$")
#: secrets in free text whatever their source: URL user info, libpq ``password=`` / ``sslpassword=``, a URL
#: query string, the credential and signature of an AWS request, bearer tokens
_TEXT_PATTERNS = (
    (re.compile(r"(?<=://)([^/\s:@]+):[^@\s/]*@"), r"\1:***@"),
    # (a value already masked is left alone: "sslpassword=***: connection refused" keeps its colon)
    (re.compile(r"(?i)\b(\w*?(?:password|passwd|token|secret|api_key|access_key))=(?!\*\*\*)[^\s&'\"]+"),
     r"\1=***"),
    (re.compile(r"(?i)(https?://[^\s?'\"]+)\?[^\s'\"]+"), r"\1?***"),
    (re.compile(r"(?i)(Credential=)[^\s,&'\"]+"), r"\1***"),
    (re.compile(r"(?i)(Signature=)[^\s,&'\"]+"), r"\1***"),
    (re.compile(r"(?i)(X-Amz-Security-Token['\"]?[:=]\s*['\"]?)[^\s,&'\"]+"), r"\1***"),
    (re.compile(r"(?i)(authorization['\"]?[:=]\s*['\"]?(?:bearer |basic |token )?)[^\s,'\"]+"), r"\1***"),
)


def is_secret_parameter(name: str, *, database: bool = False) -> bool:
    """Whether a URL query parameter ``name`` holds a secret: ``password``, ``sslpassword``, ``token``,
    ``api_key``, ``sig`` ...; never libpq's settings (``sslmode``, ``sslrootcert``, ``sslkey``: a file's path).

    ``database``: the URL is a database URL, whose parameters are libpq's.
    """
    name = name.strip()
    if database and name.lower() in _LIBPQ_SETTINGS:
        return False
    return bool(_SECRET_NAME.search(name) or _SECRET_WORD.search(name))


def url_secrets(value: str, *, webhook: bool = False) -> set[str]:
    """The secret parts of a URL: its password, the values of its secret query parameters (and, outside database
    URLs, query values that look like tokens), a webhook's long path segments.  Settings such as
    ``sslmode=verify-full`` or ``sslrootcert=system`` are not secrets: they are never masked."""
    parts = urlsplit(value.strip())
    database = parts.scheme.split("+")[0] in _DATABASE_SCHEMES
    found: set[str] = set()
    try:
        if parts.password:
            found.update((parts.password, unquote(parts.password)))
    except ValueError:  # a port that is not a number: urlsplit parses the rest
        pass
    for pair in parts.query.split("&"):
        name, _, item = pair.partition("=")
        if item and (is_secret_parameter(unquote_plus(name), database=database)
                     or (not database and _TOKEN_VALUE.match(item))):
            found.update((item, unquote_plus(item)))  # as written, and as a driver's message shows it
    if webhook and parts.path.strip("/"):
        found.update(seg for seg in parts.path.split("/") if len(seg) >= 8)
    return found


def environment_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every secret value the environment holds: secret variables, and the secret parts of URL variables
    (:func:`url_secrets`).

    The longest first, so that a password inside a URL is replaced before a shorter value inside it.
    """
    environ = os.environ if environ is None else environ
    found: set[str] = set()
    for name, value in environ.items():
        if not value:
            continue
        if _SECRET_VARIABLE.search(name) and not name.endswith(("_URL", "_FILE")):
            found.add(value)
        if _URL_VARIABLE.search(name):
            found.update(url_secrets(value, webhook="WEBHOOK" in name.upper()))
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def mask_text(text: str, secrets: Sequence[str] | None = None) -> str:
    """``text`` with every known secret value replaced by ``***`` and every secret-looking part masked.

    ``secrets``: the values known to be secret; None: those the environment holds (:func:`environment_secrets`).
    """
    for secret in environment_secrets() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, "***")
    for pattern, repl in _TEXT_PATTERNS:
        text = pattern.sub(repl, text)
    return text
