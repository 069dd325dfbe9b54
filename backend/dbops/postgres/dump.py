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

from ..errors import CompressionUnsupported, ToolFailed
from ..settings import ClientPlaces
from . import clients
from .client_probe import Client, compression_method, supports_compression
from .programs import conninfo_args, dbname_arg, libpq_env, run

log = logging.getLogger(__name__)


def check_dump_client(server_major: int, url: URL | None = None, *, places: ClientPlaces | None = None) -> Client:
    """The pg_dump for a PostgreSQL ``server_major`` server (at least its major, the same major preferred).

    Raises :class:`ClientTooOld` (or another DbopsError saying what was
    rejected and why) before anything runs.  ``places``: the settings' ``client_places``.
    """
    return clients.choose("pg_dump", url=url, server_major=server_major, places=places)


def check_compression(client: Client, compression: str, *, setting: str = "BACKUP_COMPRESSION") -> None:
    """Raise :class:`CompressionUnsupported` unless ``client`` (the pg_dump chosen for the server) has the method.

    Checked before anything runs.  The pg_dump is not swapped for one that
    has it: the server's own major is what its pg_restore reads back.
    """
    method = compression_method(compression)
    if supports_compression(client, method):
        return
    if client.major < 16:
        reason = (f"pg_dump {client.major} only compresses with gzip; {method} needs pg_dump 16+, and pg_dump "
                  f"{client.major} runs because {client.why or 'it is the one found'}")
    else:
        reason = f"this pg_dump was built without {method}"
    raise CompressionUnsupported(compression, str(client.path), client.major, reason, setting=setting)


def compress_arg(compression: str | None) -> str | None:
    """pg_dump's ``--compress`` value for a normalised spec, in the form every major reads.

    gzip as a bare level (pg_dump 14 reads ``gzip:1`` as level 0, i.e. no
    compression; 15 rejects it) and none as ``0``; zstd and lz4 as
    ``METHOD:LEVEL`` (16+, checked by :func:`check_compression`).
    """
    if compression is None:
        return None
    method, _, level = compression.partition(":")
    if method.isdigit():
        return method
    if method == "none":
        return "0"
    if method == "gzip":
        return level or "6"
    return compression


def check_restore_client(archive_major: int, server_major: int | None = None,
                         url: URL | None = None, compression: str | None = None, *,
                         places: ClientPlaces | None = None) -> Client:
    """The pg_restore that reads an archive of pg_dump ``archive_major`` (compressed with ``compression``)
    and that the target server accepts.  ``places``: the settings' ``client_places``."""
    return clients.choose("pg_restore", url=url, server_major=server_major, archive_major=archive_major,
                          compression=compression, places=places)


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


#: the pipe between pg_dump and dbops (Linux's default is 64 KiB): wide enough that pg_dump
#: rarely waits for the reader between its writes (a reader of a 64 KiB pipe wakes up every 64 KiB)
PIPE_SIZE = 1024 * 1024


def widen_pipe(pipe: object, size: int = PIPE_SIZE) -> None:
    """Grow a pipe's kernel buffer (Linux ``F_SETPIPE_SZ``); elsewhere, or past the system's limit, leave it."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (OSError, AttributeError, ValueError):
        pass


class Dump(Streaming):
    """pg_dump -Fc; ``read(n)`` takes the next bytes of the archive."""

    def __init__(self, argv: list[str], **kwargs):
        super().__init__(argv, **kwargs)
        widen_pipe(self.proc.stdout)

    def read(self, n: int) -> bytes:
        return self.proc.stdout.read(n)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Fill ``buffer`` with the next bytes of the archive (fewer only at its end); how many (0: the end)."""
        return self.proc.stdout.readinto(buffer)


class Restore(Streaming):
    """pg_restore reading an archive from what the caller ``write``s."""

    def __init__(self, argv: list[str], **kwargs):
        super().__init__(argv, **kwargs)
        widen_pipe(self.proc.stdin)

    def write(self, data: bytes) -> bool:
        """Feed bytes; False when pg_restore has stopped reading (it exited)."""
        try:
            self.proc.stdin.write(data)
            return True
        except (BrokenPipeError, ValueError):
            return False


def dump(url: URL, *, timeout: float, snapshot: str | None = None, compress: str | None = None,
         client: Client | None = None) -> Dump:
    """Start ``pg_dump -Fc`` on ``url``; read the archive with the result's ``read(n)``.

    ``compress`` is a normalised compression spec (``gzip:1``, what backups
    use by default, ``zstd:3``, ``lz4:1``, ``none``; None: pg_dump's default),
    passed as :func:`compress_arg` writes it.
    """
    exe = client.path if client is not None else clients.find("pg_dump")
    argv = [str(exe), "--format=custom", "--no-password"]
    if compress is not None:
        argv.append(f"--compress={compress_arg(compress)}")
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    argv += [*conninfo_args(url), dbname_arg(url)]
    return Dump(argv, env=libpq_env(url), timeout=timeout, stdin=False, capture_stdout=False)


class ScriptRestore(Restore):
    """pg_restore writing the archive's SQL, minus the statements the target rejects, into psql.

    For an archive of pg_dump 17+ restored into a server before 17: every
    pg_restore that reads it sends ``SET transaction_timeout = 0``, which such
    a server rejects.  pg_restore ``--file=-`` writes the same statements as
    SQL; that one line is dropped; psql runs the rest with ``ON_ERROR_STOP``
    (the ``--exit-on-error`` of a direct restore).  Both programs must exit 0.
    """

    #: lines of pg_restore's SQL the target does not know (exact, stripped)
    DROPPED = (b"SET transaction_timeout = 0;",)

    def __init__(self, argv: list[str], psql: Restore, *, env: dict[str, str], timeout: float):
        self.psql = psql
        super().__init__(argv, env=env, timeout=timeout, stdin=True, capture_stdout=True)

    def _drain_stdout(self) -> None:  # pg_restore's SQL → psql, line by line (COPY data included)
        try:
            for line in iter(self.proc.stdout.readline, b""):
                if line.strip() in self.DROPPED:
                    continue
                if not self.psql.write(line):
                    break  # psql stopped: its exit says why
        finally:
            try:
                self.psql.proc.stdin.close()
            except OSError:
                pass

    def kill(self) -> None:
        super().kill()
        self.psql.kill()

    def wait(self) -> None:
        try:
            self.proc.stdin.close()  # the archive is in; pg_restore's last SQL must reach psql before we go on
        except OSError:
            pass
        for t in self._threads:
            t.join(timeout=self.timeout)
        try:
            super().wait()
        except ToolFailed:
            self.psql.kill()
            raise
        self.psql.wait()


def restore(url: URL, *, timeout: float, client: Client | None = None, schema_only: bool = False) -> Restore:
    """Start ``pg_restore`` into ``url`` (an empty database), reading the archive from stdin.

    ``--exit-on-error`` stops at the first error; ownership and grants are not
    restored (``--no-owner --no-privileges``): the restoring user owns everything,
    which works on any server whatever roles it has.  A ``client`` with a
    ``via`` psql restores through :class:`ScriptRestore`.  ``schema_only``:
    the definitions without the data (``--schema-only``, for ``inv rehearse``).
    """
    only = ["--schema-only"] if schema_only else []
    if client is not None and client.via is not None:
        psql = Restore([str(client.via.path), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-password",
                        *conninfo_args(url), "-d", dbname_arg(url)],
                       env=libpq_env(url), timeout=timeout, stdin=True, capture_stdout=False)
        return ScriptRestore([str(client.path), "--no-owner", "--no-privileges", *only, "--file=-"], psql,
                             env=libpq_env(url), timeout=timeout)
    argv = [
        str(client.path if client is not None else clients.find("pg_restore")),
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
        *only,
        "--no-password",
        *conninfo_args(url),
        f"--dbname={dbname_arg(url)}",
    ]
    return Restore(argv, env=libpq_env(url), timeout=timeout, stdin=True, capture_stdout=False)


class FileRestore(Streaming):
    """``pg_restore --jobs N`` reading an archive file; :meth:`kill` lets it cancel its workers' queries first."""

    def kill(self) -> None:
        """SIGTERM (pg_restore cancels its workers' queries and stops them), SIGKILL after a few seconds."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._finish(check=False)


def restore_file(url: URL, path: Path, *, jobs: int, timeout: float, client: Client) -> FileRestore:
    """Start ``pg_restore --jobs=N`` of the archive file ``path`` into ``url`` (an empty database).

    The flags of :func:`restore`; the archive is a seekable file, which
    parallel restore needs (it cannot read standard input).  ``wait()`` for the exit.
    """
    argv = [str(client.path), "--exit-on-error", "--no-owner", "--no-privileges", f"--jobs={jobs}",
            "--no-password", *conninfo_args(url), f"--dbname={dbname_arg(url)}", str(path)]
    return FileRestore(argv, env=libpq_env(url), timeout=timeout, stdin=False, capture_stdout=False)


def list_archive(*, timeout: float, client: Client | None = None) -> Restore:
    """Start ``pg_restore --list`` reading an archive from stdin; its table of contents ends up in ``stdout_lines``."""
    argv = [str(client.path if client is not None else clients.find("pg_restore")), "--list"]
    return Restore(argv, env=libpq_env(URL.create("postgresql")), timeout=timeout, stdin=True,
                   capture_stdout=True)


def list_file(path: Path, *, timeout: float, client: Client) -> list[str]:
    """``pg_restore --list`` of the archive file ``path``: its table of contents, one line each."""
    return run([str(client.path), "--list", str(path)], timeout=timeout,
               env=libpq_env(URL.create("postgresql"))).stdout.splitlines()


_TOC_TABLE = re.compile(r"^\d+;\s+\d+\s+\d+\s+TABLE\s+(\S+)\s+(\S+)\s")


def toc_tables(lines: list[str]) -> set[str]:
    """``schema.table`` of every TABLE entry in a ``pg_restore --list`` output."""
    out = set()
    for line in lines:
        m = _TOC_TABLE.match(line)
        if m:
            out.add(f"{m.group(1)}.{m.group(2)}")
    return out
