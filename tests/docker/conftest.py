"""Fixtures for the container tests: the job image (built once per session) and a Postgres container.

The image is built from this worktree's Dockerfile with ``DBOPS_PYTHON_IMAGE``
as its base (CI: the offline ``dbops/python:3.11-slim``) and nothing made on
the host (the build context is what a clean clone has: ``.dockerignore``
leaves out ``build/``); pip in the build trusts ``DBOPS_BUILD_CA`` or this
host's local CAs (:func:`dbops.containers.image.build_ca`). Layers are reused
between runs.  Postgres is ``DBOPS_POSTGRES_IMAGE`` (CI: ``dbops/postgres:15``)
on a published 127.0.0.1 port; job containers use host networking, so the same
URLs work inside and outside.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from dbops import postgres
from dbops.containers import image
from dbops.servers.docker import DockerServer
from dbops.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
TAG = "dbops-job:test"


def python_base() -> str:
    return os.environ.get("DBOPS_PYTHON_IMAGE") or "python:3.11-slim"


@pytest.fixture(scope="session")
def job_image() -> image.BuiltImage:
    """The job image, built once per session (tag dbops-job:test)."""
    return image.build_job_image(ROOT, tag=TAG, python_image=python_base(), ca_setting=load_settings().build_ca)


@pytest.fixture(scope="session")
def pg_container():
    """A Postgres container for the session (DBOPS_POSTGRES_IMAGE), removed with its volume at the end."""
    name = f"dbops-test-pg-{uuid.uuid4().hex[:8]}"
    server = DockerServer(image=os.environ.get("DBOPS_POSTGRES_IMAGE") or "postgres:16", container=name,
                          volume=name, database="postgres")
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def container_db(pg_container):
    """A new empty database in the Postgres container; dropped afterwards. Yields its URL."""
    name = f"j_{uuid.uuid4().hex[:10]}"
    url = postgres.create_database(pg_container.url(), name)
    yield url
    postgres.drop_database(pg_container.url(), name)
