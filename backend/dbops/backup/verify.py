"""verify-backup: restore a backup into a throwaway Postgres, compare it with its manifest, mark it verified."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .. import clock, postgres
from ..errors import CheckFailed
from ..postgres import dump as pgdump
from ..servers.embedded import FAST_OPTIONS, EmbeddedServer
from ..settings import Settings
from ..ui import SILENT, UI
from .contents import table_row_counts
from .restore import open_backup, restore_into


@dataclass
class VerifyResult:
    key: str
    sha256: str
    tables: dict[str, int]
    duration_s: float
    verified_key: str


def verify_backup(settings: Settings, key_or_latest: str | None = None, *, ui: UI = SILENT) -> VerifyResult:
    """Restore a backup into a throwaway local Postgres and prove it complete; then mark it verified.

    Checks: the checksum while streaming, ``pg_restore --list`` names every
    table of the manifest, the restored database has exactly the manifest's
    tables, each with the manifest's row count.  Writes ``<stem>.verified.json``.
    """
    store, info = open_backup(settings, key_or_latest)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dbops-verify-") as tmp:
        os.chmod(tmp, 0o711)  # the server runs as an unprivileged user when we are root
        server = EmbeddedServer(Path(tmp) / "pg", port=0, options=FAST_OPTIONS)
        try:
            server.start()
            url = postgres.create_database(server.url(), "verify")
            sha, size, toc = restore_into(settings, store, info, url, ui=ui, list_toc=True)
            engine = postgres.make_engine(url)
            try:
                with engine.connect() as conn:
                    restored = table_row_counts(conn)
            finally:
                engine.dispose()
        finally:
            server.destroy()
    problems = _differences(info.manifest.get("tables") or {}, restored, pgdump.toc_tables(toc))
    if problems:
        raise CheckFailed(
            f"backup {info.key} did not restore to what its manifest describes ({len(problems)} problem(s))",
            details="\n".join(problems),
            hint="do not rely on this backup; take a new one with `inv backup` and verify it",
        )
    duration = round(time.monotonic() - t0, 3)
    record = {
        "key": info.key,
        "sha256": sha,
        "size": size,
        "verified_at": clock.iso(precise=True),
        "duration_s": duration,
        "tables": restored,
        "pg_restore_version": pgdump.client_version("pg_restore")[1],
    }
    store.put_json(info.verified_key, record)
    return VerifyResult(info.key, sha, restored, duration, info.verified_key)


def _differences(expected: dict[str, int], restored: dict[str, int], listed: set[str]) -> list[str]:
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
