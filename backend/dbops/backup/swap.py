"""The backup swap: the restored database takes the live one's place, and the live one is dropped.

An in-place restore never restores into the live database itself: it fills a
fresh one, and only once pg_restore succeeded and the checksum matched does
:func:`swap_in` end the live database's sessions, rename it aside, rename the
fresh one in (with the old owner) and drop the old one.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import URL
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from .. import clock, postgres

log = logging.getLogger(__name__)

#: Postgres truncates identifiers beyond this many bytes
MAX_NAME = 63


def database_name(base: str, suffix: str) -> str:
    """``base`` + ``suffix``, ``base`` shortened so the name stays within Postgres's 63 bytes."""
    return f"{base[: MAX_NAME - len(suffix)]}{suffix}"


def swap_in(url: URL, name: str, fresh: str) -> None:
    """Replace database ``name`` by ``fresh``: close its sessions, rename it aside, rename fresh in, drop it."""
    q = postgres.quote_ident
    old = database_name(name, f"__replaced_{clock.stamp()}")
    with postgres.admin_connection(url) as conn:
        owner = conn.execute(
            sa.text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :n"), {"n": name}
        ).scalar_one()
        conn.execute(sa.text(f"ALTER DATABASE {q(name)} ALLOW_CONNECTIONS false"))
        try:
            for attempt in Retrying(stop=stop_after_delay(15), wait=wait_fixed(0.2), reraise=True,
                                    retry=retry_if_exception_type(sa.exc.OperationalError)):
                with attempt:
                    conn.execute(
                        sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = :n AND pid <> pg_backend_pid()"),
                        {"n": name},
                    )
                    conn.execute(sa.text(f"ALTER DATABASE {q(name)} RENAME TO {q(old)}"))
        except BaseException:
            conn.execute(sa.text(f"ALTER DATABASE {q(name)} ALLOW_CONNECTIONS true"))
            raise
        try:
            conn.execute(sa.text(f"ALTER DATABASE {q(fresh)} RENAME TO {q(name)}"))
        except BaseException:
            conn.execute(sa.text(f"ALTER DATABASE {q(old)} RENAME TO {q(name)}"))
            conn.execute(sa.text(f"ALTER DATABASE {q(name)} ALLOW_CONNECTIONS true"))
            raise
        try:
            conn.execute(sa.text(f"ALTER DATABASE {q(name)} OWNER TO {q(owner)}"))
        except sa.exc.DBAPIError as exc:
            log.warning("restored database %s keeps the restoring user as owner: %s", name, exc.orig)
        conn.execute(sa.text(f"DROP DATABASE {q(old)} WITH (FORCE)"))
