"""Scratch space: the temporary folders throwaway servers and copied projects live in.

``tempfile`` picks the folder (``TMPDIR``, else ``/tmp``, ``/var/tmp``, ...).
:func:`free_bytes` says how much room a folder has (the restore's fetch
checks it before it writes the archive).  When none is writable, as in
``docker run --read-only`` without a tmpfs, the
caller gets :class:`~dbops.errors.NoScratchSpace` naming what needed the space
and how to give it some, instead of ``tempfile``'s bare ``FileNotFoundError``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import NoScratchSpace


def mkdtemp(prefix: str, *, purpose: str, dir: str | Path | None = None) -> Path:
    """A new private temporary folder (the caller deletes it), in ``dir`` (default: tempfile's choice);
    NoScratchSpace when none can be made."""
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=str(dir) if dir else None))
    except OSError as exc:  # FileNotFoundError "No usable temporary directory", EROFS, ENOSPC, EACCES
        raise NoScratchSpace(purpose, exc.strerror or str(exc), tried=_tried(exc)) from None


@contextmanager
def temporary_directory(prefix: str, *, purpose: str, dir: str | Path | None = None) -> Iterator[Path]:
    """:func:`mkdtemp`, deleted at the end whatever happens."""
    path = mkdtemp(prefix, purpose=purpose, dir=dir)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def scratch_folder(dir: str | Path | None = None) -> Path:
    """The folder scratch files go into: ``dir`` when given, else tempfile's (``TMPDIR``, ``/tmp``, ...)."""
    return Path(dir) if dir else Path(tempfile.gettempdir())


def free_bytes(folder: Path) -> int | None:
    """Bytes free for an unprivileged writer in ``folder`` (``shutil.disk_usage``); None: it cannot be asked."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _tried(exc: OSError) -> str:
    """The folders tempfile tried: its own list when it gave up, else the one it picked."""
    text = str(exc)
    if "No usable temporary directory found in" in text:
        return text.split("found in", 1)[1].strip()
    return str(exc.filename or tempfile.tempdir or "$TMPDIR")
