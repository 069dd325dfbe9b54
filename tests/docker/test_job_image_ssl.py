"""The job image against the servers users have: SSL-only PostgreSQL 15 and 18, backups to S3, --read-only.

The image is built from the repo as a clean clone has it (conftest: no step on
the host but build arguments).  Each server refuses plain connections
(``hostssl`` only, a CA made in the test); the job connects with
``sslmode=verify-full`` and the CA mounted read-only at the path the URL names.
The job container runs ``--read-only`` as a platform may run it; a throwaway
server (verify-backup, the deploy's rehearsal) needs scratch space: with
``--tmpfs /tmp`` verify-backup proves the backup restorable into the source's
major, without it it says so in one clear error.
"""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from pg_servers import SSL_PASSWORD, SSLServer, ensure_clients
from test_job_image import job_env, run, start_app, url_str

from dbops import postgres

pytestmark = pytest.mark.docker

MAJORS = (15, 18)


@pytest.fixture(scope="module", params=MAJORS, ids=[f"pg{m}" for m in MAJORS])
def ssl_server(request, tmp_path_factory):
    ensure_clients(request.param)
    server = SSLServer(tmp_path_factory.mktemp(f"imgssl{request.param}"), request.param)
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def ssl_db(ssl_server: SSLServer):
    """A new database on the SSL-only server; its verify-full URL (sslrootcert: the test CA's host path)."""
    name = f"img_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(ssl_server.url(), name)
    yield url
    postgres.drop_database(ssl_server.url(), name)


@pytest.fixture
def ssl_job(job_image, ssl_server, ssl_db, request):
    """Run the job image against the SSL database: host network, the CA folder mounted read-only, --read-only."""
    s3 = request.getfixturevalue("s3")
    certs = str(ssl_server.certs)
    app, health = start_app(job_image, ssl_db, volumes={certs: {"bind": certs, "mode": "ro"}}, read_only=True)
    env = job_env(ssl_db, health, f"s3://dbops-backups/img{ssl_server.major}", s3)

    def job(command, *, tmpfs: bool = False, **extra_env):
        return run(job_image, command, {**env, **extra_env}, read_only=True,
                   tmpfs={"/tmp": "rw,size=256m"} if tmpfs else None, volumes={certs: {"bind": certs, "mode": "ro"}})

    yield job, env, s3
    app.remove(force=True)


def no_secrets(output: str, env: dict[str, str]) -> None:
    for secret in (SSL_PASSWORD, env["AWS_SECRET_ACCESS_KEY"]):
        assert secret not in output
    assert "Traceback" not in output and "internal error" not in output, output


def test_status_names_the_ssl_client_of_the_servers_major(ssl_job, ssl_server):
    job, env, _ = ssl_job
    r = job(["status"])
    assert r.exit_code == 0, r.output
    m = ssl_server.major
    assert f"PostgreSQL {m}." in r.output
    assert f"pg_dump {m}." in r.output and f"/opt/pg-clients/{m}/bin/pg_dump" in r.output, r.output
    assert "with SSL" in r.output and "SSL, as sslmode asks" in r.output
    no_secrets(r.output, env)


def test_read_only_deploy_backs_up_to_s3_then_verify_backup_restores_into_the_same_major(ssl_job, ssl_server, ssl_db):
    job, env, s3 = ssl_job
    r = job(None, tmpfs=True)  # the image's CMD: inv deploy --env prod (a rehearsal's throwaway server needs /tmp)
    assert r.exit_code == 0, r.output
    no_secrets(r.output, env)
    assert f"pg_dump {ssl_server.major}." in r.output, r.output  # the backup says which binary ran
    # the default rehearsal ran in the image, on a throwaway server of prod's major from /opt/pg-clients
    assert "rehearse on a copy of" in r.output and "rehearsal skipped" not in r.output, r.output
    # /app/backups is read-only: the report went beside the backup in S3, and the run says so
    assert "Read-only file system" in r.output
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket="dbops-backups").get("Contents", [])]
    prefix = f"img{ssl_server.major}/prod/"
    assert any(k.startswith(prefix) and k.endswith(".dump") for k in keys), keys
    assert any(k.startswith(prefix) and k.endswith(".json") and "/deploy_prod_" in k for k in keys), keys
    engine = postgres.make_engine(ssl_db)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        engine.dispose()

    # no scratch space on a read-only root: one clear error, exit 2, nothing verified
    r = job(["verify-backup", "--env", "prod"])
    assert r.exit_code == 2, r.output
    assert "no writable temporary folder for a throwaway PostgreSQL server" in r.output, r.output
    assert "--tmpfs /tmp" in r.output
    no_secrets(r.output, env)
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket="dbops-backups").get("Contents", [])]
    assert not any(k.endswith(".verified.json") for k in keys), keys

    # with a tmpfs, as the hint says: a throwaway server of the source's major, as uid 10001
    r = job(["verify-backup", "--env", "prod"], tmpfs=True)
    assert r.exit_code == 0, r.output
    assert f"a throwaway PostgreSQL {ssl_server.major} from /opt/pg-clients/{ssl_server.major}/bin" in r.output
    assert "verified" in r.output
    no_secrets(r.output, env)
    verified = [k for k in (o["Key"] for o in s3.client().list_objects_v2(Bucket="dbops-backups")["Contents"])
                if k.endswith(".verified.json")]
    assert len(verified) == 1, verified
    record = json.loads(s3.client().get_object(Bucket="dbops-backups", Key=verified[0])["Body"].read())
    assert record["server_major"] == ssl_server.major


def test_a_wrong_ca_is_one_clear_error(ssl_job, ssl_db, tmp_path):
    job, env, _ = ssl_job
    # the job's own CA bundle (Debian's) does not hold the test CA: verify-full must refuse the server
    url = ssl_db.set(query={"sslmode": "verify-full", "sslrootcert": "/etc/ssl/certs/ca-certificates.crt"})
    r = job(["status"], DATABASE_URL=url_str(url))
    assert r.exit_code == 3, r.output
    assert "certificate verify failed" in r.output, r.output
    no_secrets(r.output, env)


def test_an_encrypted_backup_in_the_image_verifies_only_with_the_teams_key(ssl_job, ssl_server):
    """The image carries the `encrypt` extra: BACKUP_AGE_RECIPIENTS encrypts the backup to the team's key, the
    store holds no plaintext archive, verify-backup needs BACKUP_AGE_IDENTITY and says which key it lacks."""
    pyrage = pytest.importorskip("pyrage")  # the identity is made here, as `age-keygen` would make it
    job, env, s3 = ssl_job
    team = pyrage.x25519.Identity.generate()
    recipient = str(team.to_public())
    r = job(["backup", "--env", "prod"], BACKUP_AGE_RECIPIENTS=recipient)
    assert r.exit_code == 0, r.output
    no_secrets(r.output, env)
    client = s3.client()
    prefix = f"img{ssl_server.major}/prod/"
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="dbops-backups", Prefix=prefix)["Contents"]]
    (dump,) = [k for k in keys if k.endswith(".dump")]
    body = client.get_object(Bucket="dbops-backups", Key=dump)["Body"].read()
    assert body.startswith(b"age-encryption.org/v1") and b"PGDMP" not in body
    manifest = json.loads(client.get_object(Bucket="dbops-backups",
                                            Key=dump.removesuffix(".dump") + ".manifest.json")["Body"].read())
    assert manifest["recipients"] == [recipient]

    r = job(["verify-backup", "--env", "prod"], tmpfs=True)  # no identity: refused, naming the key
    assert r.exit_code == 2 and recipient in r.output, r.output
    r = job(["verify-backup", "--env", "prod"], tmpfs=True, BACKUP_AGE_IDENTITY=str(team))
    assert r.exit_code == 0 and "verified" in r.output, r.output
    assert str(team) not in r.output
    no_secrets(r.output, env)
