"""Postgres connections over SQLAlchemy: engines, readiness, databases, the pooled-host check.

Connection helpers shared by every provider and command. Nothing here starts
a server (see :mod:`dbops.servers`).  The client programs: which one runs
(:mod:`.clients`, asked what it can do in :mod:`.client_probe`, installed by
:mod:`.client_install`), running them (:mod:`.programs`), pg_dump / pg_restore
as streams (:mod:`.dump`); the advisory lock in :mod:`.lock`, the schema
snapshot in :mod:`.schema_snapshot`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from ..errors import DatabaseUnreachable, PooledConnectionRefused, UsageError
from ..redact import mask_url, reason
from ..settings import SYSTEM_CA_BUNDLES, system_ca_bundle

log = logging.getLogger(__name__)


def make_engine(url: URL, *, connect_timeout: int = 10, autocommit: bool = False, **kwargs: object) -> Engine:
    """An engine for ``url`` with a connect timeout and no pooling surprises."""
    connect_args = {"connect_timeout": connect_timeout, "application_name": "dbops"}
    opts: dict[str, object] = {"poolclass": sa.pool.NullPool, "connect_args": connect_args}
    if autocommit:
        opts["isolation_level"] = "AUTOCOMMIT"
    opts.update(kwargs)
    return sa.create_engine(url, **opts)


def unreachable(url: URL, exc: BaseException, hint: str | None = None) -> DatabaseUnreachable:
    """The error for a failed connection to ``url``: the driver's first line, the password masked."""
    why = reason(exc, url)
    if any(words in why for words in _CERTIFICATE_REFUSED):
        hint = certificate_hint(url)
    return DatabaseUnreachable(mask_url(url), why, hint=hint)


#: what libpq says when the server's certificate cannot be checked: no CA file, a CA that did not sign it,
#: another host name
_CERTIFICATE_REFUSED = ("certificate verify failed", "does not match host name", "root certificate file")


def certificate_hint(url: URL) -> str:
    """How to make ``sslmode=verify-ca/verify-full`` accept the server's certificate: name the CA that signed it."""
    mode = url.query.get("sslmode", "prefer")
    rootcert = url.query.get("sslrootcert")
    system = rootcert is not None and (rootcert in SYSTEM_CA_BUNDLES or rootcert == str(system_ca_bundle()[0]))
    if system:
        where = (f"the system's CAs ({rootcert}, what sslrootcert=system stands for) did not sign it: set "
                 "sslrootcert to the file of the CA that did (your provider's CA bundle)")
    elif rootcert:
        where = f"the CA in sslrootcert ({rootcert}) did not sign it: set sslrootcert to the file of the CA that did"
    else:
        where = ("no CA was given: add sslrootcert=<file of the CA that signed it> to the URL (your provider's CA "
                 "bundle), or sslrootcert=system when a public CA signed it")
    return (f"under sslmode={mode} the server's certificate must be signed by a CA dbops trusts; {where}. In a "
            "container the file must be inside it: mount it (-v /path/ca.crt:/certs/ca.crt:ro) and use "
            "sslrootcert=/certs/ca.crt. Connect with the host name the certificate names")


def pooled_direct_host(url: URL) -> str | None:
    """The direct host to use instead, when ``url`` goes through a connection pooler; None for a direct URL.

    Recognised: Neon's ``-pooler`` hosts, Supabase's ``*.pooler.supabase.com``
    (Supavisor) and port 6543 (PgBouncer / Supavisor in transaction mode).
    """
    host = str(url.host or url.query.get("host") or "")
    if "-pooler" in host:  # Neon: ep-cool-name-123456-pooler.region.aws.neon.tech
        return host.replace("-pooler", "", 1)
    if host.endswith(".pooler.supabase.com"):
        return "db.<project-ref>.supabase.co (the 'direct connection' string)"
    if url.port == 6543:
        return f"{host} on the server's own port (usually 5432)"
    return None


def refuse_pooled(url: URL, *, variable: str = "DATABASE_URL") -> None:
    """Raise PooledConnectionRefused for a pooled endpoint: deploys and pg_dump need a session of their own."""
    direct = pooled_direct_host(url)
    if direct is not None:
        raise PooledConnectionRefused(variable, str(url.host or url.query.get("host") or ""), direct)


def check_connection(url: URL, *, timeout: int = 10, hint: str | None = None, engine: Engine | None = None) -> str:
    """Connect once and return the server version string; raise DatabaseUnreachable otherwise.

    Pass ``engine`` to check through an engine the caller goes on using (its
    dialect is then initialised once).
    """
    own = engine is None
    engine = engine or make_engine(url, connect_timeout=timeout)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SHOW server_version")).scalar_one()
    except sa.exc.OperationalError as exc:
        raise unreachable(url, exc, hint) from None
    finally:
        if own:
            engine.dispose()


def wait_until_ready(url: URL, *, timeout: float = 60, what: str = "Postgres") -> str:
    """Bounded wait for ``SELECT 1`` to succeed; returns the server version.

    Retries with exponential backoff (capped at 1 s) for ``timeout`` seconds and
    logs what it is waiting for; raises DatabaseUnreachable with the last error.
    """
    log.info("waiting up to %.0fs for %s at %s", timeout, what, mask_url(url))
    try:
        for attempt in Retrying(
            stop=stop_after_delay(timeout),
            wait=wait_exponential(multiplier=0.05, max=1),
            retry=retry_if_exception_type(DatabaseUnreachable),
            reraise=False,
        ):
            with attempt:
                return check_connection(url, timeout=5)
    except RetryError as exc:
        last = exc.last_attempt.exception()
        raise DatabaseUnreachable(
            mask_url(url),
            f"{what} not ready after {timeout:.0f}s ({getattr(last, 'reason', last)})",
        ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def major_version(server_version: str) -> int:
    """The major version in a ``SHOW server_version`` string: "18.4" -> 18, "15.18 (Debian ...)" -> 15."""
    return int(re.match(r"\d+", server_version).group(0))


@contextmanager
def connect(url: URL, *, name: str = "dbops", timeout: int = 10, hint: str | None = None) -> Iterator[Connection]:
    """One connection to ``url`` for a block, as ``application_name`` ``name``; DatabaseUnreachable if it fails."""
    engine = make_engine(url, connect_args={"connect_timeout": timeout, "application_name": name[:63]})
    try:
        try:
            conn = engine.connect()
        except sa.exc.OperationalError as exc:
            raise unreachable(url, exc, hint) from None
        with conn:
            yield conn
    finally:
        engine.dispose()


@contextmanager
def admin_connection(url: URL, *, timeout: int = 10) -> Iterator[Connection]:
    """An autocommit connection to the server's maintenance database (for CREATE/DROP DATABASE)."""
    engine = make_engine(url.set(database="postgres"), connect_timeout=timeout, autocommit=True)
    try:
        with engine.connect() as conn:
            yield conn
    except sa.exc.OperationalError as exc:
        raise unreachable(url, exc, None) from None
    finally:
        engine.dispose()


def quote_ident(name: str) -> str:
    if not name or "\x00" in name:
        raise UsageError(f"invalid database name {name!r}")
    return '"' + name.replace('"', '""') + '"'


def database_exists(conn: Connection, name: str) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is not None


def create_database(url: URL, name: str, *, template: str | None = None) -> URL:
    """CREATE DATABASE name [TEMPLATE t]; returns the URL of the new database."""
    with admin_connection(url) as conn:
        sql = f"CREATE DATABASE {quote_ident(name)}"
        if template:
            sql += f" TEMPLATE {quote_ident(template)}"
        conn.execute(sa.text(sql))
    return url.set(database=name)


def drop_database(url: URL, name: str) -> None:
    """DROP DATABASE IF EXISTS name WITH (FORCE): also ends sessions still connected to it."""
    with admin_connection(url) as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)"))


def ensure_database(url: URL) -> None:
    """Create ``url.database`` if the server does not have it yet."""
    with admin_connection(url) as conn:
        if not database_exists(conn, url.database):
            conn.execute(sa.text(f"CREATE DATABASE {quote_ident(url.database)}"))
