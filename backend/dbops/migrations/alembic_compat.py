"""The Alembic releases dbops runs on, 1.12 to the newest: where their API differs, one function each.

A team's pinned Alembic stays theirs (Flask-Migrate projects often pin 1.12-1.15).  Alembic 1.16 added
``[tool.alembic]`` in pyproject.toml (``Config(toml_file=)``, ``get_alembic_option``,
``get_prepend_sys_paths_list``); before it, every option is in the ini's ``[alembic]`` section.
"""

from __future__ import annotations

import re

from alembic.config import Config

#: whether this Alembic reads ``[tool.alembic]`` (1.16+)
READS_TOML = hasattr(Config, "get_alembic_option")


def make_config(ini: str | None, toml: str | None, **kwargs) -> Config:
    """``Config(ini, toml_file=toml, ...)``; before 1.16 the ini alone (a toml-only project is refused earlier)."""
    if READS_TOML:
        return Config(ini, toml_file=toml, **kwargs)
    return Config(ini, **kwargs)


def option(cfg: Config, name: str) -> str | None:
    """An ``[alembic]`` option, from the toml or the ini (1.16+), from the ini (before)."""
    return cfg.get_alembic_option(name) if READS_TOML else cfg.get_main_option(name)


def prepend_sys_paths(cfg: Config) -> list[str]:
    """``prepend_sys_path``'s folders, split as the running Alembic splits them."""
    if READS_TOML:
        return list(cfg.get_prepend_sys_paths_list() or [])
    raw = cfg.get_main_option("prepend_sys_path")
    return [p for p in re.split(r", *|(?: +)", raw) if p] if raw else []  # Alembic 1.12-1.15's own split
