"""The deploy believes only what it measured on its own connection, and an empty capture is never a clean result.

- an env.py that migrates the database its own settings name (not the one dbops deploys to): the deploy cannot end
  SUCCESS, the target is untouched and its revision measured before and after.  dbops' fence around env.py refuses
  that connection outright; either way the exit is non-zero and nothing says SUCCESS or "no findings";
- an env.py whose upgrade does not persist (it rolls back what it ran): the upgrade step measures the target's
  revision on dbops' own connection, finds it unmoved and fails with the measured revisions;
- an env.py with an engine of its own on DATABASE_URL: the rehearsal follows that connection to the copy and
  lints what ran there (the unsafe index of the user's story is found, not "no findings");
- a revision whose statements the rehearsal cannot see (SQL on a raw DBAPI cursor): an error naming the revision
  and its file, never "no findings" - in the rehearsal (the deploy stops, --allow-unsafe or not) and in the dry run
  of a --plan that lints the rehearsal's capture.
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
from dbops.errors import DeployFailed, NothingCaptured, RehearsalFailed, RevisionNotReached

#: an env.py with its own engine on the URL its own settings hold (a constant here), never dbops' connection
OWN_SETTINGS_ENV_PY = '''
from alembic import context
from sqlalchemy import create_engine, pool

from app.domains import load_models

SETTINGS_DATABASE_URL = {url!r}  # "the project's settings": another database than the one dbops deploys to

config = context.config
target_metadata = load_models()

if context.is_offline_mode():
    context.configure(url=SETTINGS_DATABASE_URL, target_metadata=target_metadata, literal_binds=True,
                      transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(SETTINGS_DATABASE_URL, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
'''

#: the most common env.py: an engine of its own from DATABASE_URL (dbops points that variable at its target)
ENV_URL_ENV_PY = OWN_SETTINGS_ENV_PY.replace("SETTINGS_DATABASE_URL = {url!r}", "SETTINGS_DATABASE_URL = "
                                             "__import__('os').environ['DATABASE_URL']")

#: an env.py that runs the migrations on dbops' connection inside a transaction of its own, then rolls it back
#: (a project's "dry run unless told to commit" switch): the upgrade runs, and nothing of it stays
ROLLS_BACK_ENV_PY = '''
from alembic import context

from app.domains import load_models

config = context.config
target_metadata = load_models()

if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes["connection"]
    outer = connection.begin()
    context.configure(connection=connection, target_metadata=target_metadata, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
    outer.rollback()
'''

ADD_PHONE = ("op.add_column('users', sa.Column('phone', sa.Text(), nullable=True))", "op.drop_column('users', 'phone')")

#: the user's story: an index without CONCURRENTLY on a live table - here run on a raw DBAPI cursor, which no
#: SQLAlchemy event sees, so the rehearsal captures nothing of it
RAW_CURSOR_INDEX = ('cursor = op.get_bind().connection.cursor()\n'
                    'cursor.execute("CREATE INDEX ix_users_name ON users (name)")',
                    "op.drop_index('ix_users_name', table_name='users')")


def _line(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _env_py(project: Path, text: str) -> None:
    (project / "alembic" / "env.py").write_text(text)


@pytest.fixture
def elsewhere(pg_server, project: Path, db):
    """Another database on the same server, named by the project's env.py as its own settings' database."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    url = postgres.create_database(pg_server.url(), name)
    _env_py(project, OWN_SETTINGS_ENV_PY.format(url=url.render_as_string(hide_password=False)))
    yield url
    postgres.drop_database(pg_server.url(), name)


def test_an_env_py_on_another_database_never_ends_in_success(project: Path, db, deploy_env, elsewhere, capsys):
    add_revision(project, "a1", BASE, *ADD_PHONE, doc="add phone")
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings_for(deploy_env), DeployOptions(monitor_seconds=0), ui=Console())
    err, r = info.value, info.value.report
    assert err.exit_code != 0 and r.outcome == "failed" and r.failed_step == "upgrade"
    assert current(db) == [BASE] and "phone" not in columns(db, "users")
    assert r.revision_before == [BASE] and r.revision_after == [BASE] and r.db_changed is False
    out = capsys.readouterr().out
    assert "SUCCESS" not in out and "a1" in out
    assert f"db changed no (its revision, read on dbops' own connection, is {BASE} before and after)" in out
    assert SECRET not in out + err.render()


def test_an_upgrade_that_leaves_the_target_unmoved_fails_with_the_measured_revisions(project: Path, db, deploy_env,
                                                                                      capsys):
    add_revision(project, "a1", BASE, *ADD_PHONE, doc="add phone")
    _env_py(project, ROLLS_BACK_ENV_PY)
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings_for(deploy_env), DeployOptions(monitor_seconds=0), ui=Console())
    err, r = info.value, info.value.report
    assert isinstance(err.cause, RevisionNotReached) and err.exit_code == 1
    assert r.failed_step == "upgrade" and "verify" not in [s.name for s in r.steps] and r.outcome == "failed"
    assert current(db) == [BASE] and "phone" not in columns(db, "users")
    assert r.revision_before == [BASE] and r.revision_after == [BASE] and r.db_changed is False and r.recovery == []
    assert err.cause.before == err.cause.after == [BASE] and err.cause.expected == ["a1"]
    text = err.render()
    assert f"is at {BASE}, not at a1: its revision did not move at all" in text
    assert f"before:   {BASE}\n" in text and f"after:    {BASE}\n" in text and "config.attributes['connection']" in text
    assert (f"(nothing was changed in the target database by this run: its revision, read on dbops' own connection, "
            f"is {BASE} before and after)") in text
    out = capsys.readouterr().out
    assert "SUCCESS" not in out and f"revision   {BASE} -> {BASE} (head a1)" in out
    assert f"db changed no (its revision, read on dbops' own connection, is {BASE} before and after)" in out
    assert SECRET not in out + text


def test_a_rehearsal_that_captured_nothing_stops_the_deploy_naming_the_revision(project: Path, db, deploy_env,
                                                                                 pg_server, capsys):
    path = add_revision(project, "a1", BASE, *RAW_CURSOR_INDEX, doc="index on name")
    # --allow-unsafe accepts a known risk, never an empty capture: nothing was rehearsed
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings_for(deploy_env), DeployOptions(rehearse=True, rehearse_server=pg_server.url(),
                                                                allow_unsafe=True, monitor_seconds=0), ui=Console())
    err, r = info.value, info.value.report
    assert isinstance(err.cause, RehearsalFailed) and err.exit_code == 1 and r.failed_step == "rehearse"
    assert current(db) == [BASE] and r.db_changed is False
    line = _line(path, "cursor = ")
    text = err.render()
    assert f"a1 {path}:{line}: nothing was captured: upgrade() has operations (line {line})" in text
    assert "config.attributes['connection']" in err.hint and "raw DBAPI cursor" in text
    out = capsys.readouterr().out
    assert f"[error] {path}:{line}: nothing was captured" in out
    assert "no findings" not in out + text and "SUCCESS" not in out


def test_a_plan_whose_rehearsal_captured_nothing_fails_in_the_dry_run_not_no_findings(project: Path, db, deploy_env,
                                                                                      pg_server, capsys):
    path = add_revision(project, "a1", BASE, *RAW_CURSOR_INDEX, doc="index on name")
    settings = settings_for(deploy_env)
    backup.create_backup(settings, db)  # --plan rehearses on the newest backup
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings, DeployOptions(plan=True, rehearse=True, rehearse_server=pg_server.url()),
                        ui=Console())
    err, r = info.value, info.value.report
    assert isinstance(err.cause, NothingCaptured) and err.exit_code == 1 and r.failed_step == "dry-run"
    line = _line(path, "cursor = ")
    assert err.cause.revisions == [("a1", str(path), line)]
    assert f"nothing was captured for revision a1 ({path.name})" in err.message
    assert f"a1: {path}, line {line}: an operation, 0 statements captured" in err.render()
    out = capsys.readouterr().out
    assert "nothing was captured: upgrade() has operations" in out  # the rehearsal's own error, shown as a warning
    assert "no findings" not in out + err.render() and current(db) == [BASE]


def test_the_rehearsal_follows_env_pys_own_engine_to_the_copy_and_lints_what_ran(project: Path, db, deploy_env,
                                                                                pg_server, capsys):
    _env_py(project, ENV_URL_ENV_PY)
    path = add_revision(project, "a1", BASE, "op.create_index('ix_users_name', 'users', ['name'])",
                        "op.drop_index('ix_users_name', table_name='users')", doc="index on name")
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings_for(deploy_env), DeployOptions(rehearse=True, rehearse_server=pg_server.url(),
                                                                monitor_seconds=0), ui=Console())
    err, r = info.value, info.value.report
    assert isinstance(err.cause, RehearsalFailed) and r.failed_step == "rehearse" and current(db) == [BASE]
    assert f"a1 {path}:{_line(path, 'op.create_index')}: require-concurrent-index-creation" in err.render()
    out = capsys.readouterr().out
    assert "CREATE INDEX ix_users_name ON users (name)" in out and "lock SHARE on users" in out
    assert "nothing was captured" not in out and "no findings" not in out
