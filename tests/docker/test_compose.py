"""docker-compose.yml for real: db + s3 + app up, then `--profile migrate run migrate` deploys into them."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from dbops.containers import image
from dbops.containers.compose import compose

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "compose-pw-" + uuid.uuid4().hex[:8]
S3_SECRET = "compose-s3-secret-" + uuid.uuid4().hex[:8]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def health(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def stack(job_image):
    """A private compose project (own name, free ports, fresh volumes) with db, s3 and app up; removed after."""
    base = os.environ.get("DBOPS_PYTHON_IMAGE") or "python:3.11-slim"
    s3_image = image.build_s3_image(ROOT, tag="dbops-s3:test", python_image=base)
    project = f"dbopstest{uuid.uuid4().hex[:6]}"
    app_port = free_port()
    env = {
        "POSTGRES_PASSWORD": PASSWORD, "S3_ACCESS_KEY": "compose-access", "S3_SECRET_KEY": S3_SECRET,
        "DBOPS_JOB_IMAGE": job_image.tag, "DBOPS_S3_IMAGE": s3_image.tag,
        "DB_PORT": str(free_port()), "S3_PORT": str(free_port()), "APP_PORT": str(app_port),
    }
    try:
        compose(ROOT, ["up", "-d", "db", "s3", "app"], env=env, project=project, capture=True)
        yield env, project, f"http://127.0.0.1:{app_port}/api/health"
    finally:
        compose(ROOT, ["--profile", "migrate", "down", "--volumes", "--remove-orphans"], env=env,
                          project=project, capture=True)


def test_compose_migrate_profile_deploys_into_the_stack(stack):
    env, project, health_url = stack
    deadline = time.monotonic() + 60
    while True:  # the app answers (503: schema not at head yet)
        try:
            code, body = health(health_url)
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            assert time.monotonic() < deadline, "the app container did not answer on its published port"
            time.sleep(0.5)
    assert code == 503 and body["schema"] == "not at head"

    run = compose(ROOT, ["--profile", "migrate", "run", "--rm", "migrate"], env=env, project=project,
                            capture=True, timeout=600)
    out = run.stdout + run.stderr
    assert "deploy --env local" in out, out
    assert PASSWORD not in out and S3_SECRET not in out
    code, body = health(health_url)
    assert code == 200 and body["schema"] == "at head", body

    again = compose(ROOT, ["--profile", "migrate", "run", "--rm", "migrate"], env=env, project=project,
                              capture=True, timeout=600)
    assert "nothing to deploy" in again.stdout + again.stderr
