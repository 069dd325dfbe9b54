"""The job image of a user's project: dbops' Dockerfile template, built from a clean clone, deploying to SSL-only prod.

A user's project (the ``import_time_url`` scenario: plain SQLAlchemy, ``DATABASE_URL`` read at import, a
``requirements.txt``) gets the template as its ``Dockerfile`` and ``.dockerignore`` (what ``dbops init`` writes)
and, for this test only, the dbops wheel built from this checkout (``DBOPS_SPEC``; a user names the package
index or a git URL instead); the project is committed, cloned as Render clones it, and the clone is built with
``docker build`` on ``DBOPS_PYTHON_IMAGE`` (pip trusts this host's CAs: the build arguments of
:func:`dbops.containers.image.build_args`).  The image then runs as a platform runs a job: ``--read-only``,
``--tmpfs /tmp``, host networking, against a PostgreSQL 15 that takes SSL connections only, its CA mounted where
the URL's ``sslrootcert`` says, backups to S3.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from pg_servers import SSL_PASSWORD, SSLServer, ensure_clients
from s3_server import ACCESS_KEY, SECRET_KEY
from test_job_image import SECRET_WORDS, url_str

from dbops import postgres
from dbops.containers import engine as dockerctl
from dbops.containers import image
from dbops.settings import load_settings

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "backend" / "dbops" / "templates"
PROJECT = ROOT / "tests" / "scenarios" / "users" / "import_time_url"
TAG = "dbops-user-job:test"
HEAD = "c7e2b5a9f1d4"
#: where prod is before the deploy: one revision behind head, the first products in it
BEFORE = "6a1f4d8c2e7b"
#: where the job container finds prod's CA (the URL's sslrootcert)
CA_IN_CONTAINER = "/certs/ca.crt"
#: a fixed date for the wheel's files, so the same sources give the same wheel and the image's venv layer is reused
SOURCE_DATE_EPOCH = "315532800"


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", "-c", "user.name=dev", "-c", "user.email=dev@example.com", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def build_wheel(out: Path) -> Path:
    """The dbops wheel from a copy of what this checkout ships (a build in the checkout would pick up build/)."""
    src = out / "src"
    (src / "backend").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "backend" / "dbops", src / "backend" / "dbops",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
                          cwd=src, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH})
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = out.glob("dbops-*.whl")
    with zipfile.ZipFile(wheel) as z:  # the template ships as package data (what `dbops init` reads)
        assert {"dbops/templates/job.Dockerfile", "dbops/templates/job.dockerignore"} <= set(z.namelist())
    return wheel


@pytest.fixture(scope="module")
def user_image(tmp_path_factory) -> image.BuiltImage:
    """The user's project in git with the template as its Dockerfile, cloned, and the clone built: once a module."""
    work = tmp_path_factory.mktemp("user-image")
    wheel = build_wheel(work / "wheel")
    repo = Path(shutil.copytree(PROJECT, work / "inventory-service",
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc")))
    shutil.copy(TEMPLATES / "job.Dockerfile", repo / "Dockerfile")
    shutil.copy(TEMPLATES / "job.dockerignore", repo / ".dockerignore")
    shutil.copy(wheel, repo / wheel.name)
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "the dbops job image", cwd=repo)
    clone = work / "clone"
    git("clone", "-q", str(repo), str(clone), cwd=work)
    args = image.build_args(os.environ.get("DBOPS_PYTHON_IMAGE") or "python:3.11-slim-bookworm",
                            load_settings().build_ca)
    args["DBOPS_SPEC"] = wheel.name
    start = time.monotonic()
    built = dockerctl.build_image(clone, tag=TAG, buildargs=args)
    return image.BuiltImage(tag=TAG, id=built.id, size_bytes=built.attrs["Size"], seconds=time.monotonic() - start)


@pytest.fixture(scope="module")
def prod_server(tmp_path_factory):
    """PostgreSQL 15 taking SSL connections only (a password, hostssl lines only, a CA made here)."""
    ensure_clients(15)
    server = SSLServer(tmp_path_factory.mktemp("user-image-prod"), 15)
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def prod(prod_server: SSLServer):
    """Prod one revision behind head, migrated by the project's own `alembic upgrade`: (its URL as the host reaches
    it, the URL the job container is given)."""
    name = f"inventory_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(prod_server.url(), name)
    done = subprocess.run([str(Path(sys.executable).parent / "alembic"), "upgrade", BEFORE], cwd=PROJECT,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "DATABASE_URL": url_str(url), "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    yield url, url.set(query={"sslmode": "verify-full", "sslrootcert": CA_IN_CONTAINER})
    postgres.drop_database(prod_server.url(), name)


@pytest.fixture(scope="module")
def health_url():
    """The project's plain health endpoint (an HTTP 200 on the host; the job reaches it over host networking)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"status": "ok"}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/health"
    httpd.shutdown()
    httpd.server_close()


def job(prod_server: SSLServer, command: list[str] | None, env: dict[str, str], *, tmpfs: bool = True):
    """`docker run --rm --read-only [--tmpfs /tmp] --network host -v <CA>:/certs/ca.crt:ro -e ... <image> command`."""
    return dockerctl.run_job(TAG, command, environment=env, network_mode="host", timeout=300, read_only=True,
                             tmpfs={"/tmp": "rw,size=256m"} if tmpfs else None,
                             volumes={str(prod_server.ca): {"bind": CA_IN_CONTAINER, "mode": "ro"}})


def version(url) -> list[str]:
    engine = postgres.make_engine(url)
    try:
        with engine.connect() as conn:
            if not conn.execute(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar_one():
                return []
            return list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def clean(output: str) -> None:
    for secret in (SSL_PASSWORD, SECRET_KEY):
        assert secret not in output
    assert "Traceback" not in output and "internal error" not in output, output


def test_the_image_holds_the_project_dbops_and_the_ssl_clients_and_no_build_leftovers(user_image):
    img = dockerctl.client().images.get(user_image.tag)
    cfg = img.attrs["Config"]
    assert cfg["User"] == "10001:10001"
    assert cfg["Entrypoint"] == ["dbops"] and cfg["Cmd"] == ["deploy", "--env", "prod"]
    assert cfg["WorkingDir"] == "/app"
    for var in cfg["Env"]:
        assert not SECRET_WORDS.search(var), var
    for layer in img.history():  # the build's CA stays in the build stages
        created = layer.get("CreatedBy", "")
        assert "PIP_CA_CERT" not in created and "BEGIN CERTIFICATE" not in created, created
    # the official base ~120 MB, venv ~100 MB, PostgreSQL 14-18 client and server programs ~100 MB, libs ~45 MB
    assert user_image.size_mb < 420, f"image is {user_image.size_mb:.0f} MB"
    script = "id -u; ls -A /app; ls /etc/pip.conf /etc/build-ca.pem 2>/dev/null; command -v /opt/venv/bin/pip gcc git"
    listing = dockerctl.run_job(TAG, ["-c", f"{script} || true"], entrypoint=["/bin/sh"], timeout=120)
    assert listing.exit_code == 0, listing.output
    lines = listing.output.split()
    assert lines[0] == "10001"
    assert {"alembic.ini", "migrations", "inventory", "requirements.txt"} <= set(lines), lines
    for unwanted in (".git", ".whl", "pip.conf", "build-ca.pem", "/opt/venv/bin/pip", "/gcc", "/git", "__pycache__"):
        assert not any(line.endswith(unwanted) for line in lines), listing.output
    # the project's own dependency (psycopg2 for its engine) beside dbops, and every major's pg_dump with SSL
    code = ("import inventory.models, psycopg2\n"
            "from dbops.postgres import clients as c\n"
            "print(*(c.choose('pg_dump', server_major=m).ssl for m in (14, 15, 16, 17, 18)))\n")
    r = dockerctl.run_job(TAG, ["-c", code], entrypoint=["python"], environment={"DATABASE_URL": "postgresql+psycopg2://x/y"},
                          timeout=120)
    assert r.exit_code == 0 and r.output.split() == ["True"] * 5, r.output


def test_read_only_job_deploys_the_project_to_ssl_only_prod_then_status_shows_it_at_head(
        user_image, prod_server, prod, health_url, s3):
    host_url, job_url = prod
    env = {
        "DATABASE_URL": url_str(job_url),
        "HEALTH_URL": health_url,
        "BACKUP_URL": "s3://dbops-backups/inventory",
        "AWS_ENDPOINT_URL_S3": s3.endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": "us-east-1",
        "BACKUP_SSE": "off",
        "DBOPS_MONITOR_MINUTES": "0",
    }
    # status reads prod (through the CA mounted read-only): one revision pending, nothing written, no scratch space
    r = job(prod_server, ["status"], env, tmpfs=False)
    assert r.exit_code == 0, r.output
    clean(r.output)
    assert "PostgreSQL 15." in r.output and "pending    1" in r.output, r.output
    assert version(host_url) == [BEFORE]

    r = job(prod_server, None, env)  # the image's CMD: dbops deploy --env prod
    assert r.exit_code == 0, r.output
    clean(r.output)
    assert "pg_dump 15." in r.output, r.output  # the backup ran the client of prod's major, with SSL
    # the rehearsal ran in the image, on a throwaway PostgreSQL 15 in the tmpfs
    assert "rehearse on a copy of" in r.output and "rehearsal skipped" not in r.output, r.output
    assert version(host_url) == [HEAD]
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket="dbops-backups").get("Contents", [])]
    assert any(k.startswith("inventory/") and k.endswith(".dump") for k in keys), keys

    r = job(prod_server, ["status"], env, tmpfs=False)
    assert r.exit_code == 0, r.output
    clean(r.output)
    assert f"current    {HEAD}" in r.output and "pending    none" in r.output, r.output
    r = job(prod_server, ["deploy", "--env", "prod"], env)
    assert r.exit_code == 0 and "nothing to deploy" in r.output, r.output
