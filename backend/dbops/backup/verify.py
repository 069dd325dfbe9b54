"""verify-backup: restore a backup into a throwaway Postgres of the source's major, compare, mark it verified.

The throwaway server runs PostgreSQL programs of the major version the backup
was taken from (the manifest's ``server_major``), found like the client tools
(``inv pg-clients``, DBOPS_PG_BIN, system installs, the embedded wheel): a
backup proven restorable into PostgreSQL 18 says nothing of a 15 server.
Without such a server the backup is not called verified, and the error says
how to get one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.engine import URL

from .. import clock, postgres
from ..errors import CheckFailed
from ..postgres import dump as pgdump
from ..servers.throwaway import programs_for_major, throwaway_server
from ..settings import Settings
from ..ui import SILENT, UI
from . import crypt
from .catalog import checked_store, find_backup
from .contents import restored_contents
from .manifest import Verification
from .restore import restore_client, restore_into


@dataclass
class VerifyResult:
    key: str
    sha256: str
    tables: dict[str, int]
    duration_s: float
    verified_key: str
    #: the throwaway server's version and the pg_restore that ran (with why)
    server_version: str = ""
    pg_restore: str = ""


def verify_backup(settings: Settings, key_or_latest: str | None = None, *, ui: UI = SILENT) -> VerifyResult:
    """Restore a backup into a throwaway local Postgres and prove it complete; then mark it verified.

    Checks: the checksum while streaming, ``pg_restore --list`` names every
    table of the manifest, the restored database has exactly the manifest's
    tables, each with the manifest's row count.  Writes ``<stem>.verified.json``.
    """
    store = checked_store(settings)
    info = find_backup(settings, key_or_latest, store=store, ui=ui)
    crypt.check_key(settings, info)  # an encrypted backup: refused in one line before the server starts
    source_major = info.manifest.server_major
    bin_dir = programs_for_major(source_major, f"backup {info.key} was not verified", settings.client_places)
    client = restore_client(info, URL.create("postgresql"), source_major, settings.client_places)
    ui.say(f"verify: a throwaway PostgreSQL {source_major} from {bin_dir}; pg_restore: {client.describe()}")
    t0 = time.monotonic()
    with throwaway_server(bin_dir, prefix="dbops-verify-") as server:
        url = postgres.create_database(server.url(), "verify")
        sha, size, toc = restore_into(settings, store, info, url, ui=ui, list_toc=True, client=client)
        restored, server_version = restored_contents(url)
    problems = differences(info.manifest.tables, restored, pgdump.toc_tables(toc))
    if problems:
        raise CheckFailed(
            f"backup {info.key} did not restore to what its manifest describes ({len(problems)} problem(s))",
            details="\n".join(problems),
            hint="do not rely on this backup; take a new one with `inv backup` and verify it",
        )
    duration = round(time.monotonic() - t0, 3)
    record = Verification(
        key=info.key,
        sha256=info.manifest.sha256,  # the stored object's (sha: the archive's, inside any encryption)
        size=size,
        verified_at=clock.iso(precise=True),
        duration_s=duration,
        tables=restored,
        pg_restore_version=client.version,
        pg_restore=client.describe(),
        server_version=server_version,
        server_major=postgres.major_version(server_version),
    )
    store.put_json(info.verified_key, record.to_dict())
    return VerifyResult(info.key, sha, restored, duration, info.verified_key, server_version, client.describe())


def differences(expected: dict[str, int], restored: dict[str, int], listed: set[str]) -> list[str]:
    """What does not match between the manifest's tables, the restored ones and the archive's table of contents."""
    problems = []
    for table in sorted(expected):
        if table not in listed:
            problems.append(f"{table}: not in the archive's table of contents (pg_restore --list)")
        if table not in restored:
            problems.append(f"{table}: missing after restore")
        elif restored[table] != expected[table]:
            problems.append(f"{table}: {restored[table]} rows restored, the manifest says {expected[table]}")
    for table in sorted(set(restored) - set(expected)):
        problems.append(f"{table}: restored but not in the manifest")
    return problems
