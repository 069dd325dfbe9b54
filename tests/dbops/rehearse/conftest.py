"""Fixtures of the rehearsal tests: a seeded database at the example's first revision, backed up to real S3."""

from __future__ import annotations

import os
import uuid

import pytest
from conftest import S3_ENV_VARS
from deploy_fixtures import BASE
from project_copy import copy_project, forget_app_modules
from s3_server import ACCESS_KEY, BUCKETS, SECRET_KEY

from dbops import backup, postgres
from dbops.migrations import Project
from dbops.settings import load_settings

from .scenarios import add_cases, seed


def environ_for(project, url, *, backup_url: str, endpoint: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "BACKUP_URL")) and k != "DBOPS_DB"}
    env.update({
        "DBOPS_PROJECT_ROOT": str(project),
        "STAGING_DATABASE_URL": url.render_as_string(hide_password=False),
        "STAGING_BACKUP_URL": backup_url,
        "DBOPS_REHEARSE_MAX_BLOCK_MS": "500",  # the fine revisions hold ms; a rewrite here holds ~1 s
        **extra,
    })
    if endpoint:
        env.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                    "AWS_ENDPOINT_URL_S3": endpoint, "AWS_REGION": "us-east-1"})
    return env


@pytest.fixture(scope="module")
def seeded(pg_server, s3_server, tmp_path_factory):
    """A project copy with the scenario revisions, its database at the first revision with 200k users,
    one backup of it in S3; yields (project, database URL, environ, backup key)."""
    if s3_server.proc is None or s3_server.proc.poll() is not None:
        s3_server.start()
    project = copy_project(tmp_path_factory.mktemp("rehearse") / "project")
    add_cases(project)
    name = f"t_{uuid.uuid4().hex[:10]}"
    url = postgres.create_database(pg_server.url(), name)
    with pytest.MonkeyPatch.context() as mp:
        for key in S3_ENV_VARS:
            mp.delenv(key, raising=False)
        env = environ_for(project, url, backup_url=f"s3://{BUCKETS[0]}/rehearse-{name}", endpoint=s3_server.endpoint)
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
            mp.setenv(key, env[key])
        mp.setenv("DBOPS_PROJECT_ROOT", str(project))
        mp.syspath_prepend(str(project / "backend"))
        forget_app_modules()
        engine = postgres.make_engine(url)
        with engine.begin() as conn:
            Project(project / "alembic.ini").upgrade(conn, BASE)
        engine.dispose()
        seed(url)
        key = backup.create_backup(load_settings("staging", environ=env), url).key
        yield project, url, env, key
        forget_app_modules()
    postgres.drop_database(pg_server.url(), name)
