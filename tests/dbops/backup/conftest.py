"""Fixtures of the backup tests (the servers, S3 and project copies are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from .helpers import migrate, seed


@pytest.fixture
def app_db(project, fresh_db):
    """A database migrated to the first revision with some users and posts."""
    migrate(project, fresh_db)
    seed(fresh_db)
    return fresh_db
