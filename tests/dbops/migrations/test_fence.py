"""The fence around env.py, on real databases: projects whose env.py builds its own engine.

Each project here is written for the test: an env.py that ignores the
connection dbops offers (as most real ones do) and reads its URL from its own
settings, through psycopg 3, asyncpg, a ``creator=`` function or a module read
at import time.
"""

from __future__ import annotations

import os
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from dbops import postgres
from dbops.errors import ForeignDatabase
from dbops.migrations import Project
from dbops.migrations.fence import Endpoint, target_variables


def picture(url: URL) -> dict:
    """Revision, tables and row counts of a database, read on a connection of the test's own."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).scalars().all()
            rows = {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}
            revision = (conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
                        if "alembic_version" in tables else None)
            indexes = conn.execute(sa.text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")).scalars().all()
    finally:
        engine.dispose()
    return {"revision": revision, "rows": rows, "indexes": indexes}


ENV_OWN_ENGINE = '''
from alembic import context
from sqlalchemy import create_engine, pool

import settings_module
from models import metadata

config = context.config


def run_migrations_offline():
    context.configure(url=settings_module.URL, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = create_engine(settings_module.URL, poolclass=pool.NullPool)  # its own engine, as apps do
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''

SETTINGS_FROM_VARIABLES = '''
import os

# read once, at import time, as settings modules do
URL = "postgresql+psycopg://{user}:{password}@{host}:{port}/{db}".format(
    user=os.environ["POSTGRES_USER"], password=os.environ.get("POSTGRES_PASSWORD", ""),
    host=os.environ["POSTGRES_SERVER"], port=os.environ["POSTGRES_PORT"], db=os.environ["POSTGRES_DB"])
'''

MODELS = '''
import sqlalchemy as sa

metadata = sa.MetaData()
sa.Table("team", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text))
sa.Table("player", metadata, sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("team_id", sa.Integer, sa.ForeignKey("team.id")))
'''

REV1 = '''
revision = "r1"
down_revision = None
from alembic import op
import sqlalchemy as sa


def upgrade():
    op.create_table("team", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.Text))
    op.execute("INSERT INTO team (name) VALUES ('a'), ('b')")


def downgrade():
    op.drop_table("team")
'''

REV2 = '''
revision = "r2"
down_revision = "r1"
from alembic import op
import sqlalchemy as sa


def upgrade():
    op.create_table("player", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("team_id", sa.Integer, sa.ForeignKey("team.id")))


def downgrade():
    op.drop_table("player")
'''

REV3_CONCURRENT = '''
revision = "r3"
down_revision = "r2"
from alembic import op


def upgrade():
    with op.get_context().autocommit_block():
        op.create_index("ix_team_name", "team", ["name"], postgresql_concurrently=True)


def downgrade():
    op.drop_index("ix_team_name", "team")
'''


def write_project(folder: Path, *, env: str = ENV_OWN_ENGINE, settings: str = SETTINGS_FROM_VARIABLES,
                  revisions: dict[str, str] | None = None) -> Project:
    (folder / "versions").mkdir(parents=True)
    (folder / "alembic.ini").write_text(
        "[alembic]\nscript_location = %(here)s\nprepend_sys_path = .\npath_separator = os\n")
    (folder / "env.py").write_text(env)
    (folder / "settings_module.py").write_text(settings)
    (folder / "models.py").write_text(MODELS)
    for name, text in (revisions or {"r1": REV1, "r2": REV2}).items():
        (folder / "versions" / f"{name}.py").write_text(textwrap.dedent(text))
    return Project(folder / "alembic.ini")


@pytest.fixture
def other_db(pg_server):
    """A second database on the same server: the one env.py must not reach."""
    name = f"o_{uuid.uuid4().hex[:10]}"
    url = postgres.create_database(pg_server.url(), name)
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("CREATE TABLE keep (id int)"))
        conn.execute(sa.text("INSERT INTO keep VALUES (1), (2)"))
    yield url
    postgres.drop_database(pg_server.url(), name)


@pytest.fixture
def in_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project's folder, as the working folder (users run dbops from there)."""
    folder = tmp_path / "proj"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def point_settings_at(monkeypatch: pytest.MonkeyPatch, url: URL) -> None:
    """The app's own variables, as the user's shell has them: pointing at ``url``."""
    for name, value in (("POSTGRES_USER", url.username), ("POSTGRES_PASSWORD", url.password or ""),
                        ("POSTGRES_SERVER", url.host), ("POSTGRES_PORT", str(url.port)),
                        ("POSTGRES_DB", url.database)):
        monkeypatch.setenv(name, value)


def test_an_upgrade_runs_on_the_chosen_database_though_the_app_settings_name_another(
        in_project: Path, fresh_db: URL, other_db: URL, monkeypatch: pytest.MonkeyPatch):
    point_settings_at(monkeypatch, other_db)  # the shell's settings: another database
    project = write_project(in_project)
    before_other = picture(other_db)
    with postgres.connect(fresh_db) as conn:
        project.upgrade(conn, "head")
        conn.commit()
    assert picture(fresh_db)["revision"] == ["r2"]
    assert picture(other_db) == before_other
    assert os.environ["POSTGRES_DB"] == other_db.database  # the user's variables are theirs again


def test_status_with_pending_revisions_compares_at_head_and_commits_nothing(
        in_project: Path, fresh_db: URL, monkeypatch: pytest.MonkeyPatch):
    point_settings_at(monkeypatch, fresh_db)
    project = write_project(in_project)
    before = picture(fresh_db)
    with postgres.connect(fresh_db) as conn:
        state = project.state(conn)
    assert [s.revision for s in state.pending] == ["r1", "r2"]
    assert state.diff_error is None
    assert state.diffs == []  # the models match the schema at head, compared on env.py's own connection
    assert picture(fresh_db) == before == {"revision": None, "rows": {}, "indexes": []}


def test_status_does_not_run_an_autocommit_block_and_says_so(
        in_project: Path, fresh_db: URL, monkeypatch: pytest.MonkeyPatch):
    point_settings_at(monkeypatch, fresh_db)
    project = write_project(in_project, revisions={"r1": REV1, "r2": REV2, "r3": REV3_CONCURRENT})
    with postgres.connect(fresh_db) as conn:
        project.upgrade(conn, "r2")
        conn.commit()
    before = picture(fresh_db)
    with postgres.connect(fresh_db) as conn:
        state = project.state(conn)
    assert "autocommit block" in state.diff_error
    assert picture(fresh_db) == before


def test_a_connection_to_another_database_is_refused_before_any_statement(
        in_project: Path, fresh_db: URL, other_db: URL):
    hard_coded = f'URL = "{other_db.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)}"\n'
    project = write_project(in_project, settings=hard_coded)
    before = picture(other_db), picture(fresh_db)
    with postgres.connect(fresh_db) as conn, pytest.raises(ForeignDatabase) as caught:
        project.upgrade(conn, "head")
    error = caught.value
    assert error.tried.startswith(f"127.0.0.1:{other_db.port}/{other_db.database}")
    assert error.meant.startswith(f"127.0.0.1:{fresh_db.port}/{fresh_db.database}")
    assert "url-variables" in error.hint
    assert (other_db.password or "") not in error.render() or not other_db.password
    assert (picture(other_db), picture(fresh_db)) == before


def test_an_engine_made_with_creator_is_checked_by_the_server_it_reaches(
        in_project: Path, fresh_db: URL, other_db: URL):
    env = ENV_OWN_ENGINE.replace(
        "engine = create_engine(settings_module.URL, poolclass=pool.NullPool)",
        "import psycopg2\n    engine = create_engine('postgresql+psycopg2://', poolclass=pool.NullPool, "
        "creator=lambda: psycopg2.connect(settings_module.DSN))")
    dsn = f'DSN = "host=127.0.0.1 port={other_db.port} dbname={other_db.database} user={other_db.username}"\n'
    project = write_project(in_project, env=env, settings=f"URL = 'unused'\n{dsn}")
    before = picture(other_db)
    with postgres.connect(fresh_db) as conn, pytest.raises(ForeignDatabase) as caught:
        project.upgrade(conn, "head")
    assert f"database {other_db.database}" in caught.value.tried
    assert picture(other_db) == before


def test_an_offline_run_allows_no_connection(in_project: Path, fresh_db: URL):
    env = ENV_OWN_ENGINE.replace("if context.is_offline_mode():", "if False:")  # online, even for --sql
    project = write_project(in_project, env=env, settings="URL = 'postgresql://u@127.0.0.1:1/x'\n")
    with pytest.raises(ForeignDatabase) as caught:
        project.upgrade_sql(fresh_db, None)
    assert "no database" in caught.value.message


def test_a_settings_module_read_at_import_is_read_again_for_the_next_database(
        in_project: Path, fresh_db: URL, other_db: URL, monkeypatch: pytest.MonkeyPatch):
    point_settings_at(monkeypatch, fresh_db)
    project = write_project(in_project)
    with postgres.connect(fresh_db) as conn:
        project.upgrade(conn, "r1")
        conn.commit()
    with postgres.connect(other_db) as conn:  # the next step: another database, the same process
        project.upgrade(conn, "r1")
        conn.commit()
    assert picture(fresh_db)["revision"] == ["r1"]
    assert picture(other_db)["revision"] == ["r1"]
    assert picture(other_db)["rows"]["team"] == 2


def test_an_async_env_py_with_its_own_engine_gets_the_chosen_database(
        in_project: Path, fresh_db: URL, other_db: URL, monkeypatch: pytest.MonkeyPatch):
    env = '''
import asyncio
import os
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine
from models import metadata


def do_run(connection):
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


async def main():
    engine = create_async_engine(os.environ["DATABASE_URL"])
    async with engine.connect() as connection:
        await connection.run_sync(do_run)
        await connection.commit()
    await engine.dispose()


asyncio.run(main())
'''
    monkeypatch.setenv("DATABASE_URL", other_db.set(drivername="postgresql+asyncpg")
                       .render_as_string(hide_password=False))
    project = write_project(in_project, env=env)
    before_other = picture(other_db)
    with postgres.connect(fresh_db) as conn:
        state = project.state(conn)
        assert state.diffs == [] and state.diff_error is None
        project.upgrade(conn, "head")
        conn.commit()
    assert picture(fresh_db)["revision"] == ["r2"]
    assert picture(other_db) == before_other


def test_endpoints_compare_loopback_names_and_sockets_as_one_host():
    a = Endpoint("127.0.0.1", 5432, "app")
    assert a.same_place(Endpoint("localhost", 5432, "app"))
    assert a.same_place(Endpoint("/var/run/postgresql", 5432, "app"))
    assert not a.same_place(Endpoint("127.0.0.1", 5433, "app"))
    assert not a.same_place(Endpoint("db.example.com", 5432, "app"))
    assert not a.same_place(Endpoint("127.0.0.1", 5432, "app_prod"))


def test_the_variables_keep_the_driver_the_user_chose():
    url = sa.engine.make_url("postgresql://u:pw@db:5433/app?sslmode=verify-full&sslrootcert=/ca.pem")
    values = target_variables(url, names=("APP_URL",), environ={"DATABASE_URL": "postgresql+psycopg://x@y/z"})
    assert values["DATABASE_URL"].startswith("postgresql+psycopg://u:pw@db:5433/app")
    assert values["APP_URL"].startswith("postgresql://u:pw@db:5433/app")
    assert (values["POSTGRES_SERVER"], values["POSTGRES_PORT"], values["POSTGRES_DB"]) == ("db", "5433", "app")
    assert (values["PGSSLMODE"], values["PGSSLROOTCERT"]) == ("verify-full", "/ca.pem")
    async_values = target_variables(url, async_driver=True, environ={})
    assert async_values["DATABASE_URL"] == "postgresql+asyncpg://u:pw@db:5433/app"  # TLS from PGSSL*


def test_dbops_timeouts_hold_on_the_connection_env_py_opens(
        in_project: Path, fresh_db: URL, monkeypatch: pytest.MonkeyPatch):
    from dbops.migrations.upgrade import set_timeouts

    point_settings_at(monkeypatch, fresh_db)
    seen = '''
revision = "r1"
down_revision = None
from alembic import op


def upgrade():
    op.execute("CREATE TABLE seen AS SELECT current_setting('lock_timeout') AS lock, "
               "current_setting('statement_timeout') AS statement, pg_backend_pid() AS pid")


def downgrade():
    op.drop_table("seen")
'''
    project = write_project(in_project, revisions={"r1": seen})
    with postgres.connect(fresh_db) as conn:
        set_timeouts(conn, lock_timeout_ms=1234, statement_timeout_ms=56789)
        own_pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        conn.commit()
        project.upgrade(conn, "head")
        conn.commit()
        lock, statement, pid = conn.execute(sa.text("SELECT lock, statement, pid FROM seen")).one()
    assert pid != own_pid  # the revision ran on env.py's own connection
    assert (lock, statement) == ("1234ms", "56789ms")
