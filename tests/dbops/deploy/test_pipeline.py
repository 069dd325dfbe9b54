"""``inv deploy`` end to end against real Postgres and the example app served by uvicorn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deploy_fixtures import ADD_PHONE, BASE, SECRET, add_revision, backup_file, columns, current, settings_for

from dbops.console import Console
from dbops.deploy import checksums, pipeline, rollback
from dbops.deploy.pipeline import DeployOptions
from dbops.errors import DeployFailed


def test_clean_deploy_end_to_end(project: Path, db, app, deploy_env, capsys):
    add_revision(project, "a1", BASE, *ADD_PHONE, doc="add phone")
    settings = settings_for(deploy_env)

    report = pipeline.deploy(settings, DeployOptions(monitor_seconds=1), ui=Console())

    assert report.outcome == "success"
    assert current(db) == ["a1"]
    assert "phone" in columns(db, "users")
    assert [s.name for s in report.steps] == ["settings", "lock", "preflight", "backup", "dry-run", "upgrade", "verify",
                                              "monitor"]
    assert all(s.status == "ok" for s in report.steps)
    assert report.revision_before == [BASE] and report.revision_after == ["a1"]
    # the backup exists where BACKUP_URL says, and its checksum is the file's
    backup = backup_file(deploy_env, report.backup.key)
    assert backup.is_file() and backup.stat().st_size == report.backup.size
    # dry-run SQL and the JSON report: under backups/ and beside the backup
    sql = Path(report.dry_run_sql).read_text()
    assert "-- ==== revision a1: add phone" in sql and "ALTER TABLE users ADD COLUMN phone TEXT" in sql
    data = json.loads(Path(report.path).read_text())
    assert data["outcome"] == "success" and data["backup"]["sha256"] == report.backup.sha256
    assert (backup.parent / Path(report.path).name).is_file()
    assert (backup.parent / Path(report.dry_run_sql).name).is_file()
    assert report.health and report.health[0].ok and report.health[0].revision == ["a1"]
    assert report.monitor.samples >= 2
    out = capsys.readouterr().out
    assert "SUCCESS" in out and "a1" in out
    assert SECRET not in out and SECRET not in Path(report.path).read_text()


def test_nothing_pending_exits_clean_without_backup(project: Path, db, deploy_env, tmp_path, capsys):
    settings = settings_for(deploy_env, PROD_HEALTH_URL="http://127.0.0.1:9/never-called")
    report = pipeline.deploy(settings, ui=Console())
    assert report.outcome == "nothing to deploy"
    assert report.backup is None
    assert not (tmp_path / "offsite").exists()
    assert "nothing to deploy" in capsys.readouterr().out


def test_plan_says_what_would_happen_and_changes_nothing(project: Path, db, deploy_env, tmp_path, capsys):
    add_revision(project, "a1", BASE, *ADD_PHONE, doc="add phone")
    report = pipeline.deploy(settings_for(deploy_env), DeployOptions(plan=True), ui=Console())
    assert report.outcome == "planned"
    assert current(db) == [BASE] and "phone" not in columns(db, "users")
    assert not (tmp_path / "offsite").exists()  # no backup
    out = capsys.readouterr().out
    assert "would now" in out and "a1  add phone" in out and "nothing was changed" in out
    assert "ALTER TABLE users ADD COLUMN phone TEXT" in out


def test_edited_applied_migration_is_refused_until_accepted(project: Path, db, deploy_env):
    settings = settings_for(deploy_env)
    first = add_revision(project, "a1", BASE, *ADD_PHONE)
    pipeline.deploy(settings, DeployOptions(monitor_seconds=0))
    first.write_text(first.read_text().replace("nullable=True", "nullable=True, comment='x'"))
    add_revision(project, "a2", "a1",
                 "op.create_index('ix_users_name', 'users', ['name'], postgresql_concurrently=True)"
                 if False else "op.add_column('users', sa.Column('nick', sa.Text()))",
                 "op.drop_column('users', 'nick')")
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings, DeployOptions(monitor_seconds=0))
    err = info.value
    assert err.report.failed_step == "preflight"
    assert first.name in err.message and "a1" in err.message
    assert "inv accept-migration-change --env prod --revision a1" in err.render()
    assert current(db) == ["a1"] and err.report.backup is None

    old, new = checksums.accept_migration_change(settings, "a1")
    assert old != new
    assert pipeline.deploy(settings, DeployOptions(monitor_seconds=0)).outcome == "success"
    assert current(db) == ["a2"]


def test_two_pending_need_allow_multiple(project: Path, db, deploy_env):
    settings = settings_for(deploy_env)
    add_revision(project, "a1", BASE, *ADD_PHONE)
    add_revision(project, "a2", "a1", "op.add_column('users', sa.Column('nick', sa.Text()))",
                 "op.drop_column('users', 'nick')")
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings, DeployOptions(monitor_seconds=0))
    assert "2 revisions are pending (a1, a2)" in info.value.message
    assert "--allow-multiple" in info.value.render()
    assert info.value.exit_code == 2 and current(db) == [BASE]

    report = pipeline.deploy(settings, DeployOptions(monitor_seconds=0, allow_multiple=True))
    assert report.outcome == "success" and current(db) == ["a2"]
    assert "-- ==== revision a1" in Path(report.dry_run_sql).read_text()
    assert "-- ==== revision a2" in Path(report.dry_run_sql).read_text()


def test_a_second_deploy_waits_then_names_the_holder(project: Path, db, deploy_env):
    from dbops.postgres.lock import DeployLock

    add_revision(project, "a1", BASE, *ADD_PHONE)
    with DeployLock(db, "dbops deploy prod otherhost pid=4242", wait_s=1):
        with pytest.raises(DeployFailed) as info:
            pipeline.deploy(settings_for(deploy_env), DeployOptions(monitor_seconds=0))
    err = info.value
    assert err.report.failed_step == "lock"
    assert "another deploy holds the deploy lock: 'dbops deploy prod otherhost pid=4242'" in err.message
    assert "since 20" in err.message and err.exit_code == 4
    assert current(db) == [BASE] and err.report.backup is None
    # released with its connection: the next deploy goes through
    assert pipeline.deploy(settings_for(deploy_env), DeployOptions(monitor_seconds=0)).outcome == "success"


def test_a_long_transaction_makes_the_upgrade_fail_fast_retried_and_unchanged(project: Path, db, deploy_env):
    import sqlalchemy as sa

    from dbops import postgres

    add_revision(project, "a1", BASE, *ADD_PHONE)
    engine = postgres.make_engine(db)
    with engine.connect() as blocker:
        blocker.execute(sa.text("SELECT count(*) FROM users"))  # holds ACCESS SHARE until rollback
        import time

        t0 = time.monotonic()
        with pytest.raises(DeployFailed) as info:
            pipeline.deploy(settings_for(deploy_env), DeployOptions(monitor_seconds=0))
        elapsed = time.monotonic() - t0
        blocker.rollback()
    engine.dispose()
    r = info.value.report
    assert r.failed_step == "upgrade" and r.upgrade_attempts == 3
    assert "lock_timeout=300ms" in info.value.message and "55P03" in info.value.message
    assert elapsed < 15
    assert r.db_changed is False and current(db) == [BASE] and "phone" not in columns(db, "users")
    assert r.recovery == []  # nothing changed: fix and rerun
    assert "nothing was changed" in info.value.render()


def test_health_failing_after_upgrade_reports_and_rollback_restores(project: Path, db, deploy_env, capsys):
    from deploy_fixtures import App

    add_revision(project, "a1", BASE, *ADD_PHONE)
    broken = App(project, db.set(database="no_such_db"))  # the app cannot reach its database: 503
    try:
        settings = settings_for(deploy_env, PROD_HEALTH_URL=broken.url)
        with pytest.raises(DeployFailed) as info:
            pipeline.deploy(settings, DeployOptions(monitor_seconds=5), ui=Console())
    finally:
        broken.stop()
    r = info.value.report
    assert r.failed_step == "verify" and "HTTP 503" in r.error
    assert not any(s.name == "monitor" for s in r.steps)  # nothing after the failed step
    assert r.db_changed is True and r.revision_after == ["a1"]
    assert r.recovery == ["inv rollback --env prod", f"inv restore --env prod --backup {r.backup_key} --in-place",
                          f"inv restore --env prod --backup {r.backup_key} --in-place --yes-i-know {db.database}"]
    assert "inv rollback --env prod" in info.value.render()
    saved = json.loads(Path(r.path).read_text())
    assert saved["failed_step"] == "verify" and saved["db_changed"] is True

    rb = rollback.rollback_database(settings, ui=Console())
    assert rb.outcome == "success" and current(db) == [BASE] and "phone" not in columns(db, "users")
    assert rb.backup and backup_file(deploy_env, rb.backup.key).is_file()  # a fresh backup first
    assert SECRET not in capsys.readouterr().out


def test_auto_rollback_downgrades_when_verify_fails(project: Path, db, deploy_env):
    add_revision(project, "a1", BASE, *ADD_PHONE)
    # the app answers 404 there: preflight passes (it answers), verify fails after the upgrade (not 200)
    missing = deploy_env["PROD_HEALTH_URL"].replace("/api/health", "/api/no-such-endpoint")
    settings = settings_for(deploy_env, PROD_HEALTH_URL=missing, DBOPS_VERIFY_TIMEOUT="0.5")
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings, DeployOptions(monitor_seconds=1, auto_rollback=True))
    r = info.value.report
    assert r.failed_step == "verify"
    assert r.outcome == "rolled back" and r.rollback.outcome == "ok"
    assert current(db) == [BASE] and r.revision_after == [BASE]
    assert r.recovery == [f"inv restore --env prod --backup {r.backup_key} --in-place",
                          f"inv restore --env prod --backup {r.backup_key} --in-place --yes-i-know {db.database}"]


def test_irreversible_revision_is_refused_by_rollback(project: Path, db, deploy_env):
    add_revision(project, "a1", BASE, "op.execute('UPDATE users SET name = lower(name)')", "pass")
    settings = settings_for(deploy_env)
    report = pipeline.deploy(settings, DeployOptions(monitor_seconds=0))
    with pytest.raises(DeployFailed) as info:
        rollback.rollback_database(settings)
    assert "revision a1 cannot be downgraded: its downgrade() is empty" in info.value.message
    assert f"inv restore --env prod --backup {report.backup_key}" in info.value.render()
    assert current(db) == ["a1"]


def test_backup_failure_means_no_upgrade(project: Path, db, deploy_env):
    add_revision(project, "a1", BASE, *ADD_PHONE)
    settings = settings_for(deploy_env, PROD_BACKUP_URL="file:///dev/null/cannot-write-here")
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings, DeployOptions(monitor_seconds=0))
    r = info.value.report
    assert r.failed_step == "backup"
    assert [s.name for s in r.steps][-1] == "backup"
    assert current(db) == [BASE] and r.db_changed is False and r.recovery == []


def test_unsafe_sql_stops_the_deploy_unless_allowed(project: Path, db, deploy_env):
    add_revision(project, "a1", BASE, "op.create_index('ix_users_name', 'users', ['name'])",
                 "op.drop_index('ix_users_name', table_name='users')")
    settings = settings_for(deploy_env)
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings, DeployOptions(monitor_seconds=0))
    err = info.value
    assert err.report.failed_step == "dry-run"
    assert "require-concurrent-index-creation" in err.render() and "autocommit_block" in err.render()
    assert err.report.lint[0].revision == "a1"
    assert current(db) == [BASE]
    report = pipeline.deploy(settings, DeployOptions(monitor_seconds=0, allow_unsafe=True))
    assert report.outcome == "success" and current(db) == ["a1"]


def test_concurrently_in_an_autocommit_block_deploys_clean(project: Path, db, deploy_env):
    add_revision(
        project, "a1", BASE,
        """
        with op.get_context().autocommit_block():
            op.create_index('ix_users_name', 'users', ['name'], postgresql_concurrently=True)
        """,
        """
        with op.get_context().autocommit_block():
            op.drop_index('ix_users_name', table_name='users', postgresql_concurrently=True)
        """,
    )
    report = pipeline.deploy(settings_for(deploy_env), DeployOptions(monitor_seconds=0))
    assert report.outcome == "success" and not [f for f in report.lint if f.level == "error"]
    assert "CREATE INDEX CONCURRENTLY ix_users_name" in Path(report.dry_run_sql).read_text()
    assert current(db) == ["a1"]
    assert rollback.rollback_database(settings_for(deploy_env)).outcome == "success"
    assert current(db) == [BASE]


@pytest.mark.parametrize(
    "extra, needle",
    [
        ({"PROD_DATABASE_URL": "postgresql://app:S3cr3t-Pa55w0rd-xyz@ep-cool-123-pooler.eu-central-1.aws.neon.tech/app"},
         "use the direct host ep-cool-123.eu-central-1.aws.neon.tech in PROD_DATABASE_URL"),
        ({"PROD_BACKUP_URL": ""}, "PROD_BACKUP_URL: is not set: a backup is mandatory"),
    ],
)
def test_bad_settings_are_refused_before_anything(project: Path, db, deploy_env, extra, needle):
    env = {**deploy_env, **extra}
    env = {k: v for k, v in env.items() if v}
    with pytest.raises(DeployFailed) as info:
        pipeline.deploy(settings_for(env), DeployOptions(monitor_seconds=0))
    assert needle in info.value.render()
    assert SECRET not in info.value.render()
    assert info.value.report.failed_step == "settings"


class Webhook:
    """A Slack-compatible webhook on loopback that records what it receives."""

    def __init__(self, status: int = 200):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        self.status, self.texts = status, []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.texts.append(json.loads(self.rfile.read(int(self.headers["content-length"])))["text"])
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/services/T000/B000/XXXXSECRETXXXX"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_webhook_gets_the_outcome_and_its_failure_never_fails_a_good_deploy(project: Path, db, deploy_env, capsys):
    hook = Webhook()
    add_revision(project, "a1", BASE, *ADD_PHONE)
    pipeline.deploy(settings_for(deploy_env, PROD_NOTIFY_WEBHOOK_URL=hook.url), DeployOptions(monitor_seconds=0),
                    ui=Console())
    assert len(hook.texts) == 1 and "inv deploy --env prod: success" in hook.texts[0] and "-> a1" in hook.texts[0]

    hook.status = 500
    add_revision(project, "a2", "a1", "op.add_column('users', sa.Column('nick', sa.Text()))",
                 "op.drop_column('users', 'nick')")
    report = pipeline.deploy(settings_for(deploy_env, PROD_NOTIFY_WEBHOOK_URL=hook.url),
                             DeployOptions(monitor_seconds=0), ui=Console())
    assert report.outcome == "success" and current(db) == ["a2"]
    assert "HTTP 500" in report.notify_error
    out = capsys.readouterr().out
    assert "notification failed" in out and "XXXXSECRETXXXX" not in out
    hook.httpd.shutdown()

