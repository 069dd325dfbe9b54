"""Running PostgreSQL's programs strictly, and libpq's connection arguments for a URL.

Argv lists (never a shell), an explicit timeout, a checked exit, the password
in ``PGPASSWORD`` (never in argv), and :class:`~dbops.errors.ToolFailed` with
the tail of stderr.  Which program runs is :mod:`.clients`' choice.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import URL

from ..errors import ToolFailed


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
            check=False,
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
