"""Domains of the example app: each ``domains/<name>/models.py`` is found by itself.

``load_models()`` imports every ``app.domains.*.models`` module, so a new
domain needs no edit anywhere else: Alembic's env.py calls it, and the
metadata then holds every table.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from ..db import Base

_HERE = Path(__file__).resolve().parent


def model_modules() -> list[str]:
    """Dotted names of every domain's models module, sorted."""
    names = []
    for info in pkgutil.iter_modules([str(_HERE)]):
        if info.ispkg and (_HERE / info.name / "models.py").is_file():
            names.append(f"{__name__}.{info.name}.models")
    return sorted(names)


def load_models():
    """Import every domain's models and return the shared metadata.

    A module that fails to import raises ImportError with ``path`` set to the
    file, so tools can say which file to fix.
    """
    for name in model_modules():
        try:
            importlib.import_module(name)
        except Exception as exc:
            path = _HERE.joinpath(*name.split(".")[2:]).with_suffix(".py")
            raise ImportError(f"{type(exc).__name__}: {exc}", name=name, path=str(path)) from exc
    return Base.metadata
