"""Copies of this repo's example project for tests, and forgetting its imported ``app`` modules.

A copy is made from git's view of the tree: the files git tracks (the index,
so a file staged for the change under test is in) with their content in the
work tree (so an edit under test is in too).  A file that merely lies in the
work tree — a revision another run wrote into ``alembic/versions/`` while the
suite runs, a ``__pycache__`` — is not copied, so it cannot turn unrelated
tests red ("2 heads").  Outside a git checkout (a source tarball) the folders
are copied as they are.

A module of its own (not conftest.py): test modules import these by name, and
``conftest`` is not one module when several folders have a conftest.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: what a copy of the example project holds, relative to the repository root
PROJECT_PATHS = ("alembic.ini", "alembic", "backend/app")


def tracked_files(root: Path, paths: tuple[str, ...]) -> list[str] | None:
    """The files under ``paths`` that git tracks in ``root`` (index entries); None outside a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--", *paths],
                             capture_output=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return [name for name in out.decode().split("\0") if name]


def copy_project(dest: Path, *, root: Path = ROOT) -> Path:
    """A complete copy of this repo's Alembic project (alembic.ini, alembic/, backend/app) in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    files = tracked_files(root, PROJECT_PATHS)
    if files is None:
        shutil.copy(root / "alembic.ini", dest / "alembic.ini")
        for folder in PROJECT_PATHS[1:]:
            shutil.copytree(root / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        for name in files:
            source = root / name
            if source.is_file():  # a tracked file deleted by the change under test is not copied
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, dest / name)
    (dest / "backups").mkdir(exist_ok=True)
    return dest


def forget_app_modules() -> None:
    for name in list(sys.modules):
        if name == "app" or name.startswith("app."):
            del sys.modules[name]
