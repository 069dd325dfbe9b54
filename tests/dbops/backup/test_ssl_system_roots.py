"""``sslrootcert=system``, which dbops' own hint recommends, against a real SSL-only PostgreSQL 15.

libpq 16+ reads ``system`` as "OpenSSL's default CA store"; pg_dump and psql 14 and 15 take it for a file name,
and the driver's bundled libpq looks in the OpenSSL folder of the machine it was built on.  dbops hands every
client the file of the system's CAs instead, found as OpenSSL finds it: ``SSL_CERT_FILE`` first.  The tests
point ``SSL_CERT_FILE`` at the CA made in the test (the only way to make a throwaway CA "the system's" without
changing this machine's store), and without it use the machine's own bundle, which does not hold that CA.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from deploy_fixtures import BASE
from pg_servers import SSL_PASSWORD, SSLServer, ensure_clients

from dbops import postgres
from dbops.postgres import clients, programs
from dbops.settings import system_ca_bundle

from .helpers import migrate
from .test_majors_ssl import sh, shell_env


@pytest.fixture(scope="module")
def ssl_server(tmp_path_factory):
    ensure_clients(15)
    server = SSLServer(tmp_path_factory.mktemp("ssl15"), 15)
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def prod_db(ssl_server: SSLServer, project: Path):
    """A database on the SSL server at the first revision; its verify-full URL with the test's CA file."""
    name = f"prod_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(ssl_server.url(), name)
    migrate(project, url, BASE)
    yield url
    postgres.drop_database(ssl_server.url(), name)


def system_url(url, **query: str):
    return url.set(query={"sslmode": "verify-full", "sslrootcert": "system", **query})


def without_system_trust(env: dict[str, str]) -> dict[str, str]:
    """The environment without the CA-file variables of this machine (the job image has none of them)."""
    return {k: v for k, v in env.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}


def test_pg_dump_15_alone_does_not_know_system(ssl_server: SSLServer, prod_db):
    """Why dbops translates: the client programs of 14 and 15 read ``system`` as a file's name."""
    pg_dump = clients.choose("pg_dump", url=prod_db, server_major=15)
    assert pg_dump.major == 15
    url = system_url(prod_db)
    r = subprocess.run([str(pg_dump.path), "--schema-only", programs.dbname_arg(url), *programs.conninfo_args(url)],
                       env={**without_system_trust(programs.libpq_env(url)), "SSL_CERT_FILE": str(ssl_server.ca)},
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode != 0 and 'root certificate file "system"' in r.stderr, r.stderr


def test_system_roots_work_for_the_driver_and_pg_dump_15(ssl_server: SSLServer, prod_db, project: Path,
                                                           tmp_path: Path):
    env = {**without_system_trust(shell_env(project, system_url(prod_db), tmp_path)),
           "SSL_CERT_FILE": str(ssl_server.ca)}
    r = sh("inv backup --env prod", env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert list((tmp_path / "offsite").rglob("*.dump")), r.stdout
    r = sh("inv backups --env prod", env)
    assert r.returncode == 0 and BASE in r.stdout, r.stdout + r.stderr
    r = sh("inv status --db url", {**env, "DATABASE_URL": env["PROD_DATABASE_URL"]})
    assert r.returncode == 0, r.stdout + r.stderr
    shown = r.stdout + r.stderr
    assert f"sslrootcert={ssl_server.ca}" in shown  # what sslrootcert=system stands for here
    assert "sslmode=verify-full" in shown and "=***&" not in shown


def test_the_systems_cas_that_did_not_sign_it_are_one_clear_error_nothing_masked_but_the_password(
        ssl_server: SSLServer, prod_db, project: Path, tmp_path: Path):
    bundle = system_ca_bundle(without_system_trust(dict(os.environ)))[0]
    assert bundle is not None  # this machine's own store: it does not hold the CA made in the test
    env = without_system_trust(shell_env(project, system_url(prod_db), tmp_path))
    r = sh("inv backup --env prod", env)
    assert r.returncode == 3, r.stdout + r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith("error: cannot connect to postgresql+psycopg2://postgres:***@"), first
    assert "sslmode=verify-full" in first
    assert f"sslrootcert={bundle}" in first
    assert first.count("***") == 1, first  # the password, and nothing else
    hint = next(line for line in r.stderr.splitlines() if line.startswith("hint:"))
    assert "the system's CAs" in hint and "what sslrootcert=system stands for" in hint and "***" not in hint, hint
    assert "mount it (-v /path/ca.crt:/certs/ca.crt:ro)" in hint
    assert SSL_PASSWORD not in r.stdout + r.stderr


def test_system_roots_with_a_weaker_sslmode_are_refused_as_libpq_refuses_them(ssl_server: SSLServer, prod_db,
                                                                                 project: Path, tmp_path: Path):
    env = shell_env(project, system_url(prod_db, sslmode="require"), tmp_path)
    r = sh("inv backup --env prod", env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("error: PROD_DATABASE_URL: asks sslrootcert=system with sslmode=require"), r.stderr
    assert "use ?sslmode=verify-full&sslrootcert=system" in r.stderr
    # the command the hint names works
    env = {**without_system_trust(shell_env(project, system_url(prod_db), tmp_path)),
           "SSL_CERT_FILE": str(ssl_server.ca)}
    assert sh("inv backup --env prod", env).returncode == 0

