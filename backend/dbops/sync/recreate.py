"""``inv sync --force-recreate``: drop the local database, create it empty, upgrade to head.

Refused for anything but the tool's own embedded/docker server or a
localhost URL; asks first (through the UI) unless ``yes``.
"""

from __future__ import annotations

from .. import postgres
from ..errors import Aborted, Refused
from ..migrations import Project
from ..redact import mask_url
from ..servers import PostgresServer, UrlServer, server_for
from ..settings import Settings
from ..ui import SILENT, UI


def force_recreate(
    settings: Settings, *, server: PostgresServer | None = None, yes: bool = False, ui: UI = SILENT
) -> list[str]:
    """Drop and recreate the local database, then upgrade to head. Refused for non-local targets."""
    server = server or server_for(settings)
    if isinstance(server, UrlServer) and not server.is_localhost:
        raise Refused(
            f"--force-recreate refused: {mask_url(server.url())} is not a local database",
            details="checked: the provider is 'url' and the host is not localhost/127.0.0.1/::1; nothing was dropped",
            hint="it only recreates the tool's own embedded/docker database or a localhost URL; "
            "unset DATABASE_URL (or use --db embedded) to recreate the local one",
        )
    url = server.start()
    if not yes and not ui.confirm(f"DROP and recreate database {url.database!r} ({mask_url(url)})?", default=False):
        raise Aborted("nothing was dropped", hint="pass --yes to skip the question")
    postgres.drop_database(url, url.database)
    postgres.create_database(url, url.database)
    ui.ok(f"recreated database {url.database}")
    project = Project(settings.alembic_ini)
    with postgres.connect(url) as conn:
        pending = project.pending(())
        project.upgrade(conn, "head")
        conn.commit()
    ui.ok(f"upgraded to head: {len(pending)} migration(s) applied")
    return [r.revision for r in pending]
