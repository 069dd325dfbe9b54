"""``inv test-rollback --since REF``: round-trip only the revisions a change adds, from a cached base.

The revisions *since* ``REF`` are those whose file is new or changed against
that commit (or not committed yet), and every revision after them: the rest
is the chain as it was at ``REF``.  That state (the ``--setup-sql`` file, then
those revisions applied in one ``alembic upgrade``, as the stairway applies
unchecked revisions) is built once and kept as a ``pg_dump -Fc`` archive in
``.dbops/cache/rollback/`` (``Settings.state_dir``), named by a key of
everything that built it: the revision files' contents in order, env.py,
the setup file and the server's major.  A CI cache of that folder keeps it
from one pull request to the next; a change to any of those makes a new key,
so an archive is never used for a chain it was not built from.  The folder
keeps the newest archive only.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic.script import Script
from sqlalchemy.engine import URL

from .. import git
from ..errors import DbopsError, RoundTripToolError, ToolFailed
from ..migrations import Project
from ..postgres import clients
from ..postgres.programs import conninfo_args, dbname_arg, libpq_env, run
from ..redact import reason
from ..settings import ClientPlaces
from . import graph

log = logging.getLogger(__name__)

#: format of the cached archives; bump when what they hold changes
CACHE_VERSION = "1"
#: where the archives live under ``Settings.state_dir``
CACHE_FOLDER = Path("cache") / "rollback"
#: upper bound of one pg_dump of the base
DUMP_TIMEOUT_S = 600


@dataclass
class Since:
    """The revisions ``--since REF`` tests (and their descendants) and the base they start from."""

    ref: str
    commit: str
    #: the revisions to round-trip, in walk order
    selected: list[Script]
    #: the revisions of the chain at REF (applied first, from the cache when it has them)
    base: list[Script]


def select_since(project: Project, order: list[Script], ref: str) -> Since:
    """The revisions new or changed since ``ref`` and all their descendants; UsageError for a bad ref."""
    paths = [Path(s.path).resolve() for s in order]
    repo = git.toplevel(Path(project.script.dir))
    commit = git.resolve(repo, ref)
    changed = git.changed_since(repo, commit, sorted({p.parent for p in paths}))
    roots = [s.revision for s, p in zip(order, paths, strict=True) if p in changed]
    keep: set[str] = set()
    for root in roots:
        if root not in keep:
            keep |= graph.descendants_of(order, root)
    return Since(ref=ref, commit=commit, selected=[s for s in order if s.revision in keep],
                 base=[s for s in order if s.revision not in keep])


def cache_path(state_dir: Path, project: Project, base: Sequence[Script], setup_sql: Path | None,
               server_major: int) -> Path:
    """Where the archive of ``base`` applied lives: named by a key of everything that built it."""
    h = hashlib.sha256(f"dbops-rollback-base {CACHE_VERSION} pg{server_major}\n".encode())
    env_py = Path(project.script.dir) / "env.py"
    for label, path in [("env.py", env_py), *(("revision " + s.revision, Path(s.path)) for s in base)]:
        h.update(f"{label}\n".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    if setup_sql is not None:
        h.update(b"setup\n")
        with setup_sql.open("rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return Path(state_dir) / CACHE_FOLDER / f"{h.hexdigest()[:32]}.dump"


def save(url: URL, path: Path, *, places: ClientPlaces | None = None) -> bool:
    """Keep the database at ``url`` as a ``pg_dump -Fc`` archive at ``path`` (written beside it, then renamed).

    A pg_dump that fails, or a folder that cannot be written, only costs the
    next run a build of the base: a warning, the run goes on (False).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("cannot keep the base of --since in %s: %s", path.parent, exc.strerror)
        return False
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        exe = str(clients.choose("pg_dump", url=url, places=places).path)
        run([exe, "--format=custom", "--compress=0", "--no-password", *conninfo_args(url),
             "-f", str(part), dbname_arg(url)], timeout=DUMP_TIMEOUT_S, env=libpq_env(url))
        part.replace(path)
        for old in path.parent.glob("*.dump"):  # one base is kept: a CI cache of the folder stays one archive
            if old != path:
                old.unlink(missing_ok=True)
        return True
    except DbopsError as exc:  # the run itself is not harmed: the next one builds the base again
        part.unlink(missing_ok=True)
        log.warning("cannot keep the base of --since (pg_dump): %s", _told(exc))
    except OSError as exc:
        part.unlink(missing_ok=True)
        log.warning("cannot keep the base of --since at %s: %s", path, reason(exc))
    return False


def restore(path: Path, url: URL, *, places: ClientPlaces | None = None) -> None:
    """Restore the cached archive at ``path`` into the empty database at ``url``; RoundTripToolError on failure."""
    try:
        exe = str(clients.choose("pg_restore", url=url, places=places).path)
        run([exe, *conninfo_args(url), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
             "-d", dbname_arg(url), str(path)], timeout=DUMP_TIMEOUT_S, env=libpq_env(url))
    except DbopsError as exc:
        raise RoundTripToolError(f"cannot restore the cached base of --since ({path})", _told(exc)) from None


def _told(exc: DbopsError) -> str:
    tail = exc.stderr_tail if isinstance(exc, ToolFailed) else ""
    return exc.message + (f": {tail}" if tail else "")
