"""The deploy believes only what it measured on its own connection: an env.py that runs the migration on an engine
of its own (built from its own settings: another database) cannot make a deploy end SUCCESS, and a rehearsal of
which nothing was captured is an error naming the revision, never "no findings".

The env.py here ignores the connection dbops hands it and migrates the database its "settings" name.  Once dbops
fences env.py in (every connection checked against the database dbops chose), that env.py is refused instead; so
these tests assert what holds either way: a non-zero exit, the revision named, the target untouched, its
revision measured before and after, and never "no findings" or SUCCESS.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from deploy_fixtures import BASE, SECRET, add_revision, columns, current, settings_for

from dbops import backup, postgres
from dbops.console import Console
from dbops.deploy import pipeline
from dbops.deploy.pipeline import DeployOptions
from dbops.errors import DeployFailed

#: an env.py that builds its own engine from its own settings (here: a constant) and never uses dbops' connection
OWN_ENGINE_ENV_PY = '''
from alembic import context
from sqlalchemy import create_engine, pool

from app.domains import load_models

SETTINGS_DATABASE_URL = {url!r}  # "the project's settings": another database than the one dbops deploys to

config = context.config
target_metadata = load_models()


def run_migrations_offline() -> None:
    context.configure(url=SETTINGS_DATABASE_URL, target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={{"paramstyle": "named"}}, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(SETTINGS_DATABASE_URL, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''

#: the user's story: an index without CONCURRENTLY on a live table, which the lint gate must never wave through
UNSAFE_INDEX = ("op.create_index('ix_users_name', 'users', ['name'])",
                "op.drop_index('ix_users_name', table_name='users')")


@pytest.fixture
def elsewhere(pg_server, project: Path, db):
    """Another database on the same server, named by the project's env.py as its own settings' database."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    url = postgres.create_database(pg_server.url(), name)
    (project / "alembic" / "env.py").write_text(OWN_ENGINE_ENV_PY.format(url=url.render_as_string(False)))
    yield url
    postgres.drop_database(pg_server.url(), name)


def test_an_upgrade_that_leaves_the_target_unmoved_fails_with_the_measured_revisions(project: Path, db, deploy_env,
                                                                                      elsewhere, capsys):
    add_revision(project, "a1", BASE, "op.add_column('users', sa.Column('phone', sa.Text(), nullable=True))",
                 "op.drop_column('users', 'phone')", doc="add phone")
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings_for(deploy_env), DeployOptions(monitor_seconds=0), ui=Console())
    err, r = info.value, info.value.report
    assert err.exit_code != 0 and r.outcome == "failed"
    assert r.failed_step == "upgrade" and "verify" not in [s.name for s in r.steps]
    # measured on dbops' own connection: the target never moved, and the report says so
    assert current(db) == [BASE] and "phone" not in columns(db, "users")
    assert r.revision_before == [BASE] and r.revision_after == [BASE] and r.db_changed is False
    assert r.recovery == []
    out = capsys.readouterr().out
    assert "SUCCESS" not in out and "FAILED" in out
    assert f"revision   {BASE} -> {BASE}" in out
    assert f"db changed no (its revision, read on dbops' own connection, is {BASE} before and after)" in out
    text = err.render()
    assert f"nothing was changed in the target database by this run: its revision, read on dbops' own connection, " \
           f"is {BASE} before and after" in text
    assert SECRET not in out + text


def test_a_rehearsal_that_captured_nothing_stops_the_deploy_naming_the_revision(project: Path, db, deploy_env,
                                                                                 elsewhere, pg_server, capsys):
    path = add_revision(project, "a1", BASE, *UNSAFE_INDEX, doc="index on name")
    settings = settings_for(deploy_env)
    # --allow-unsafe accepts known risks, never an empty capture: nothing was rehearsed
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings, DeployOptions(rehearse=True, rehearse_server=pg_server.url(), allow_unsafe=True,
                                                monitor_seconds=0), ui=Console())
    err, r = info.value, info.value.report
    assert err.exit_code != 0 and r.failed_step == "rehearse"
    assert current(db) == [BASE] and r.revision_after == [BASE] and r.db_changed is False
    out = capsys.readouterr().out + err.render()
    assert "a1" in out and "no findings" not in out and "SUCCESS" not in out
    if r.rehearsal.errors is not None:  # it ran to its end (no fence refused env.py first): the finding says why
        assert f"a1 {path}:" in err.render() and "nothing was captured" in err.render()
        assert "config.attributes['connection']" in err.hint


def test_a_plan_whose_rehearsal_captured_nothing_is_an_error_of_the_dry_run_not_no_findings(project: Path, db,
                                                                                            deploy_env, elsewhere,
                                                                                            pg_server, capsys):
    path = add_revision(project, "a1", BASE, *UNSAFE_INDEX, doc="index on name")
    settings = settings_for(deploy_env)
    backup.create_backup(settings, db)  # --plan rehearses on the newest backup
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings, DeployOptions(plan=True, rehearse=True, rehearse_server=pg_server.url()),
                        ui=Console())
    err, r = info.value, info.value.report
    assert err.exit_code != 0 and r.outcome == "failed" and current(db) == [BASE]
    out = capsys.readouterr().out + err.render()
    assert "a1" in out and "no findings" not in out
    if r.failed_step == "dry-run":  # the rehearsal ran to its end (no fence refused env.py first)
        assert "[error]" in out and "nothing-captured" in out
        assert f"nothing was captured for revision a1 ({path.name})" in err.message
        assert "the rehearsal's capture" in err.message and f"a1: {path}, line " in err.render()
