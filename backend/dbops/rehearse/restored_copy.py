"""The copy a rehearsal runs on: an empty database on a throwaway server of the backup's major, or on ``--server``.

:func:`scratch_database` gives the database to restore into and drops it (or
the whole server) afterwards; :func:`stamp_revisions` writes the backup's
revisions into a schema-only copy; :func:`parse_server` reads ``--server`` /
``--rehearse-server``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import URL

from .. import clock, postgres
from ..backup import BackupInfo
from ..errors import DbopsError
from ..redact import mask_url, reason
from ..servers.throwaway import programs_for_major, throwaway_server
from ..settings import Settings, normalize_database_url
from ..ui import UI
from .model import RehearsalReport


@contextmanager
def scratch_database(settings: Settings, info: BackupInfo, server_url: URL | None, report: RehearsalReport,
                     ui: UI) -> Iterator[URL]:
    """An empty database to restore into: on a throwaway server of the source's major, or on ``server_url``.

    Sets the report's ``server`` and ``server_version`` (and a warning when ``server_url`` runs another major).
    """
    source_major = info.manifest.server_major
    name = f"dbops_rehearse_{clock.stamp().lower().replace('.', '_')}"
    if server_url is None:
        bin_dir = programs_for_major(source_major, f"cannot rehearse on a copy of backup {info.key}",
                                     settings.client_places)
        with throwaway_server(bin_dir, prefix="dbops-rehearse-") as server:
            url = postgres.create_database(server.url(), "rehearse")
            report.server = f"a throwaway PostgreSQL {source_major} ({bin_dir})"
            report.server_version = postgres.check_connection(url)
            yield url
        return
    try:
        with postgres.admin_connection(server_url, timeout=settings.connect_timeout_s) as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            conn.execute(sa.text(f"CREATE DATABASE {postgres.quote_ident(name)}"))
    except sa.exc.DBAPIError as exc:
        raise DbopsError(f"cannot create the scratch database {name!r} on {mask_url(server_url)}: "
                         f"{reason(exc, server_url)}",
                         hint="the --server user needs CREATEDB there; nothing was changed") from None
    report.server = f"{mask_url(server_url.set(database=name))} (a scratch database, dropped afterwards)"
    report.server_version = version
    major = postgres.major_version(version)
    if source_major and major != source_major:
        report.warnings.append(f"--server runs PostgreSQL {major}, the backup comes from {source_major}: "
                               "locks and durations may differ from production's")
        ui.warn(report.warnings[-1])
    try:
        yield server_url.set(database=name)
    finally:
        try:
            postgres.drop_database(server_url, name)
        except DbopsError as exc:
            report.warnings.append(f"could not drop the scratch database {name}: {exc.message}")


def stamp_revisions(conn, info: BackupInfo) -> None:
    """A schema-only copy has an empty alembic_version: write the revision(s) the backup's manifest records."""
    revisions = info.manifest.revisions or ([info.manifest.revision] if info.manifest.revision else [])
    exists = bool(revisions) and conn.execute(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar_one()
    if exists and not conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one():
        for rev in revisions:
            conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": rev})
    conn.commit()


def parse_server(raw: str | None, *, variable: str = "--server") -> URL | None:
    """``--server``: a Postgres server URL (the database part names where to connect for CREATE DATABASE)."""
    if not raw:
        return None
    try:
        named = urlsplit(raw.strip()).path.strip("/") != ""
    except ValueError:
        named = True  # let the URL parser say what is wrong
    url = normalize_database_url(raw if named else raw.strip().rstrip("/") + "/postgres", variable=variable)
    postgres.refuse_pooled(url, variable=variable)
    return url
