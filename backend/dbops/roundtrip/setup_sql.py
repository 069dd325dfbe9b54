"""``--setup-sql``: a file run on the empty throwaway database before the first revision (and after each rebuild).

Plain SQL (``pg_dump --schema-only`` output included, with its psql
meta-commands such as ``\\restrict``) goes through ``psql -X -v
ON_ERROR_STOP=1 -f``; an archive of ``pg_dump -Fc`` through ``pg_restore``.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL

from ..errors import DbopsError, RoundTripToolError, ToolFailed, UsageError
from ..postgres import clients
from ..postgres.programs import conninfo_args, dbname_arg, libpq_env, run
from ..settings import ClientPlaces

#: the first bytes of a pg_dump custom-format archive (restored with pg_restore)
CUSTOM_DUMP = b"PGDMP"


def run_setup_sql(path: Path, url: URL, *, timeout: float, places: ClientPlaces | None = None) -> None:
    """Run a setup file on the database at ``url`` as psql runs it, or restore a custom-format dump.

    A failure is the user's file's: UsageError with psql's own message;
    ``timeout`` (seconds) bounds the run.  ``places``: where psql / pg_restore
    are looked for first (the settings' ``client_places``).
    """
    with path.open("rb") as fh:
        custom = fh.read(len(CUSTOM_DUMP)) == CUSTOM_DUMP
    program = "pg_restore" if custom else "psql"
    try:
        exe = str(clients.find(program, places))
    except DbopsError as exc:
        raise RoundTripToolError(f"cannot run --setup-sql: no {program}", exc.message) from None
    target = conninfo_args(url)
    if custom:
        argv = [exe, *target, "--no-owner", "--no-privileges", "--exit-on-error", "-d", dbname_arg(url), str(path)]
    else:
        argv = [exe, "-X", "-q", "-v", "ON_ERROR_STOP=1", *target, "-d", dbname_arg(url), "-f", str(path)]
    try:
        run(argv, timeout=timeout, env=libpq_env(url))
    except ToolFailed as exc:
        if exc.returncode is None:
            raise UsageError(
                f"--setup-sql {path} did not finish within {timeout:g} s in {program}",
                details=exc.stderr_tail or None,
                hint="raise DBOPS_ROLLBACK_SETUP_TIMEOUT (seconds) if the file is this slow on purpose",
            ) from None
        raise UsageError(
            f"--setup-sql {path} failed in {program} ({'custom-format dump' if custom else 'SQL'}) "
            "on the empty throwaway database",
            details=exc.stderr_tail or None,
            hint="fix the file: it must run without errors on an empty database, as psql runs it "
            "(plain SQL or the output of pg_dump --schema-only), or be a pg_dump custom-format archive",
        ) from None
