"""Copies of this repo's example project for tests, and forgetting its imported ``app`` modules.

A module of its own (not conftest.py): test modules import these by name, and
``conftest`` is not one module when several folders have a conftest.py.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def copy_project(dest: Path) -> Path:
    """A complete copy of this repo's Alembic project (alembic.ini, alembic/, backend/app) in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "alembic.ini", dest / "alembic.ini")
    shutil.copytree(ROOT / "alembic", dest / "alembic", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "backend" / "app", dest / "backend" / "app", ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "backups").mkdir(exist_ok=True)
    return dest


def forget_app_modules() -> None:
    for name in list(sys.modules):
        if name == "app" or name.startswith("app."):
            del sys.modules[name]
