"""docker-compose.yml for real: db + s3 + app up, then `--profile migrate run migrate` deploys into them."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from dbops.containers import image
from dbops.containers.compose import compose, migrate_command
from dbops.settings import load_settings

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


def inv(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """`inv ARGS` as a user runs it in the repo root, with ``env`` as the whole environment's additions."""
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture
def stack(job_image):
    """A private compose project (COMPOSE_PROJECT_NAME, free ports, fresh volumes): `inv compose-up`, removed after."""
    base = os.environ.get("DBOPS_PYTHON_IMAGE") or image.DEFAULT_PYTHON_IMAGE
    s3_image = image.build_s3_image(ROOT, tag="dbops-s3:test", python_image=base, ca_setting=load_settings().build_ca)
    project = f"dbopstest{uuid.uuid4().hex[:6]}"
    app_port = free_port()
    secrets = {"POSTGRES_PASSWORD": PASSWORD, "S3_ACCESS_KEY": "compose-access", "S3_SECRET_KEY": S3_SECRET}
    plain = {k: v for k, v in os.environ.items() if k not in secrets and not k.endswith("DATABASE_URL")}
    plain.update({
        "COMPOSE_PROJECT_NAME": project, "DBOPS_JOB_IMAGE": job_image.tag, "DBOPS_S3_IMAGE": s3_image.tag,
        "DB_PORT": str(free_port()), "S3_PORT": str(free_port()), "APP_PORT": str(app_port),
    })
    env = {**plain, **secrets}
    try:
        up = inv("compose-up", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        yield env, plain, up.stdout, f"http://127.0.0.1:{app_port}/api/health"
    finally:
        compose(ROOT, ["--profile", "migrate", "down", "--volumes", "--remove-orphans"], env=env,
                project=project, capture=True)


def test_compose_migrate_profile_deploys_into_the_stack(stack):
    env, plain, up_output, health_url = stack
    deadline = time.monotonic() + 60
    while True:  # the app answers (503: the schema is behind its code)
        try:
            code, body = health(health_url)
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            assert time.monotonic() < deadline, "the app container did not answer on its published port"
            time.sleep(0.5)
    assert code == 503 and body["schema"] == "behind"

    # the command compose-up prints, run verbatim, names the compose CLI that exists here
    printed = re.search(r"deploy into it: (.+)$", up_output, re.M).group(1).strip()
    assert printed == migrate_command() and printed.split()[0] in ("docker", "docker-compose"), printed
    assert shutil.which(printed.split()[0]) and (printed.startswith("docker compose ")
                                                 or shutil.which("docker-compose")), printed
    run = subprocess.run(shlex.split(printed), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                         check=False)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "deploy --env local" in out, out
    assert PASSWORD not in out and S3_SECRET not in out
    code, body = health(health_url)
    assert code == 200 and body["schema"] == "at head", body

    again = subprocess.run(shlex.split(printed), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                           check=False)
    assert "nothing to deploy" in again.stdout + again.stderr

    # compose-down needs none of the stack's secrets
    assert not any(k in plain for k in ("POSTGRES_PASSWORD", "S3_ACCESS_KEY", "S3_SECRET_KEY"))
    down = inv("compose-down", "--volumes", env=plain)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stack removed with its volumes" in down.stdout
    from dbops.containers import engine as dockerctl

    left = dockerctl.client().containers.list(
        all=True, filters={"label": f"com.docker.compose.project={env['COMPOSE_PROJECT_NAME']}"})
    assert left == [], [c.name for c in left]
