"""The example app's settings: read once from the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


def _normalise(url: str) -> str:
    """Pin Neon/Render style ``postgres://`` and bare ``postgresql://`` URLs to psycopg2."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


@dataclass(frozen=True)
class AppSettings:
    database_url: str | None
    alembic_ini: Path


@lru_cache(maxsize=1)
def get_settings() -> AppSettings:
    raw = os.environ.get("DATABASE_URL")
    ini = os.environ.get("APP_ALEMBIC_INI") or str(Path(__file__).resolve().parents[2] / "alembic.ini")
    return AppSettings(database_url=_normalise(raw) if raw else None, alembic_ini=Path(ini))
