"""The hostile user: a table of bad inputs across every task, each refused cleanly with nothing changed.

Each case runs a task in-process (the task function, through ``dbops.cli.edge``,
exactly as ``inv`` calls it) with its flags as the strings a shell hands over,
and asserts: the exit code, a message of a few lines naming what is wrong, no
traceback and no "internal error", and the same fingerprint of the database
(revision, row counts, ``dbops`` tables, the server's databases) and of the
backup store (every file, ``.partial`` ones too) before and after.

One database, one project copy and one backup serve the whole module.  A few
cases that depend on invoke's own flag parsing run ``inv`` as a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import invoke
import pytest
import sqlalchemy as sa
from project_copy import ROOT, copy_project, forget_app_modules
from sqlalchemy.engine import URL

from dbops import postgres, tasks
from dbops.migrations import Project

BASE = "dc524d74cab6"
SECRET = "Hostile-Pa55-7q1z"
#: variables a case starts without (the developer's own environment must not leak in)
CLEARED = ("DATABASE_URL", "LOCAL_DATABASE_URL", "PROD_DATABASE_URL", "STAGING_DATABASE_URL", "BACKUP_URL",
           "PROD_BACKUP_URL", "STAGING_BACKUP_URL", "HEALTH_URL", "PROD_HEALTH_URL", "NOTIFY_WEBHOOK_URL",
           "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "DBOPS_DB", "DBOPS_DEBUG", "RENDER_API_KEY",
           "PROD_RENDER_API_KEY", "RENDER_JOB_SERVICE_ID", "PROD_RENDER_JOB_SERVICE_ID")


@pytest.fixture(scope="module")
def world(pg_server, tmp_path_factory):
    """The module's project copy, database at BASE (with rows), and one local backup of it."""
    root = copy_project(tmp_path_factory.mktemp("hostile") / "project")
    name = "hostile_app"
    url = postgres.create_database(pg_server.url(), name)
    engine = postgres.make_engine(url)
    try:
        with engine.connect() as conn:
            Project(root / "alembic.ini").upgrade(conn, BASE)
            conn.commit()
    finally:
        engine.dispose()
    url = url.set(password=SECRET)
    store = root / "offsite"  # the store; run reports go to root/backups, beside it (a report is no change)
    env = {
        "DBOPS_PROJECT_ROOT": str(root),
        "DATABASE_URL": url.render_as_string(hide_password=False),
        "PROD_DATABASE_URL": url.render_as_string(hide_password=False),
        "PROD_BACKUP_URL": f"file://{store}",
        "PROD_HEALTH_URL": "http://127.0.0.1:9/api/health",  # well formed; nothing answers there
        "DBOPS_DEPLOY_LOCK_WAIT": "1",
        "DBOPS_MONITOR_MINUTES": "0",
    }
    with pytest.MonkeyPatch.context() as mp:
        _apply(mp, env)
        from dbops import backup
        from dbops.settings import load_settings

        backup.create_backup(load_settings("prod"), url)
    yield {"root": root, "url": url, "env": env, "store": store, "server": pg_server}
    postgres.drop_database(pg_server.url(), name)


def _apply(mp: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key in CLEARED:
        mp.delenv(key, raising=False)
    for key in [k for k in os.environ if k.startswith("DBOPS_")]:
        mp.delenv(key, raising=False)
    for key, value in env.items():
        if value is None:
            mp.delenv(key, raising=False)
        else:
            mp.setenv(key, value)


def fingerprint(world) -> dict:
    """What must not change: revision, every table's row count, dbops tables, databases; every store file."""
    url: URL = world["url"]
    engine = postgres.make_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.execute(sa.text(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")).scalars().all()
            counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in tables}
            revision = list(Project.current(conn))
            databases = sorted(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
    finally:
        engine.dispose()
    files = sorted((p.relative_to(world["store"]).as_posix(), p.stat().st_size)
                   for p in world["store"].rglob("*") if p.is_file())
    return {"revision": revision, "rows": counts, "databases": databases, "store": files}


def run_task(name: str, kwargs: dict) -> tuple[int, str]:
    """A task called as ``inv`` calls it; (exit code, everything it printed plus the edge's message)."""
    body = getattr(tasks, name)
    try:
        body(invoke.Context(), **kwargs)
    except invoke.exceptions.Exit as exc:
        return exc.code, exc.message or ""
    return 0, ""


def case(id_, task, kwargs=None, env=None, code=2, says=(), marks=()):
    return pytest.param(task, kwargs or {}, env or {}, code, (says,) if isinstance(says, str) else says, id=id_,
                        marks=marks)


P = "postgresql://app:Hostile-Pa55-7q1z@127.0.0.1:5432/app"
CASES = [
    # -- database URLs ----------------------------------------------------------------------------
    case("url-not-a-url", "config", env={"DATABASE_URL": "not a url"}, says="DATABASE_URL"),
    case("url-mysql", "status", env={"DATABASE_URL": "mysql://u:p@h/db"}, says="'mysql' scheme"),
    case("url-no-host", "status", env={"DATABASE_URL": "postgresql://u:p@/db"}, says="no host"),
    case("url-no-database", "status", env={"DATABASE_URL": "postgresql://u:p@h:5432/"}, says="names no database"),
    case("url-port-letters", "status", env={"DATABASE_URL": "postgresql://u:p@h:x/db"}, says="port 'x'"),
    case("url-port-too-big", "status", env={"DATABASE_URL": "postgresql://u:p@h:70000/db"}, says="70000"),
    case("url-port-zero", "status", env={"DATABASE_URL": "postgresql://u:p@h:0/db"}, says="port '0'"),
    case("url-port-negative", "config", env={"DATABASE_URL": "postgresql://u:p@h:-1/db"}, says="port '-1'"),
    case("url-sqlite", "backup", env={"DATABASE_URL": "sqlite:///x.db"}, says="'sqlite' scheme"),
    case("prod-placeholder-changeme", "deploy", {"env": "prod"},
         env={"PROD_DATABASE_URL": "postgresql://u:changeme@h/db"}, says="placeholder password"),
    case("prod-placeholder-postgres", "backup", {"env": "prod"},
         env={"PROD_DATABASE_URL": "postgresql://postgres:postgres@h/db"}, says="placeholder password"),
    case("staging-placeholder-secret", "config", {"env": "staging"},
         env={"STAGING_DATABASE_URL": "postgresql://u:secret@h/db"}, says="STAGING_DATABASE_URL"),
    case("prod-url-port-letters", "deploy", {"env": "prod"},
         env={"PROD_DATABASE_URL": "postgresql://u:pw1234@h:abc/db"}, says="PROD_DATABASE_URL"),
    # -- environment and provider -----------------------------------------------------------------
    case("env-unknown", "config", {"env": "qa"}, says="unknown environment"),
    case("env-uppercase", "deploy", {"env": "PROD"}, says="unknown environment"),
    case("env-empty", "backups", {"env": ""}, says="unknown environment"),
    case("db-flag-unknown", "status", {"db": "mongo"}, says="unknown database provider"),
    case("db-variable-unknown", "config", env={"DBOPS_DB": "oracle"}, says="unknown database provider"),
    # -- numeric variables ------------------------------------------------------------------------
    case("lock-timeout-letters", "config", env={"DBOPS_LOCK_TIMEOUT_MS": "abc"}, says="DBOPS_LOCK_TIMEOUT_MS"),
    case("lock-timeout-zero", "config", env={"DBOPS_LOCK_TIMEOUT_MS": "0"}, says="at least 1"),
    case("lock-timeout-float", "deploy", {"env": "prod"}, env={"DBOPS_LOCK_TIMEOUT_MS": "1e3"}, says="whole number"),
    case("statement-timeout-negative", "deploy", {"env": "prod"}, env={"DBOPS_STATEMENT_TIMEOUT_MS": "-1"},
         says="DBOPS_STATEMENT_TIMEOUT_MS"),
    case("connect-timeout-fraction", "status", env={"DBOPS_CONNECT_TIMEOUT": "1.5"}, says="DBOPS_CONNECT_TIMEOUT"),
    case("monitor-minutes-negative-var", "deploy", {"env": "prod"}, env={"DBOPS_MONITOR_MINUTES": "-5"},
         says="DBOPS_MONITOR_MINUTES"),
    case("monitor-minutes-word-var", "monitor", {"env": "prod"}, env={"DBOPS_MONITOR_MINUTES": "ten"},
         says="DBOPS_MONITOR_MINUTES"),
    case("lock-retries-zero", "deploy", {"env": "prod"}, env={"DBOPS_LOCK_RETRIES": "0"}, says="DBOPS_LOCK_RETRIES"),
    case("deploy-lock-wait-letters", "rollback", {"env": "prod"}, env={"DBOPS_DEPLOY_LOCK_WAIT": "x"},
         says="DBOPS_DEPLOY_LOCK_WAIT"),
    case("verify-timeout-negative", "deploy", {"env": "prod"}, env={"DBOPS_VERIFY_TIMEOUT": "-1"},
         says="DBOPS_VERIFY_TIMEOUT"),
    case("health-timeout-zero", "monitor", {"env": "prod"}, env={"DBOPS_HEALTH_TIMEOUT": "0"},
         says="DBOPS_HEALTH_TIMEOUT"),
    case("monitor-interval-zero", "monitor", {"env": "prod"}, env={"DBOPS_MONITOR_INTERVAL": "0"},
         says="DBOPS_MONITOR_INTERVAL"),
    case("long-transaction-zero", "monitor", {"env": "prod"}, env={"DBOPS_LONG_TRANSACTION": "0"},
         says="DBOPS_LONG_TRANSACTION"),
    case("monitor-failures-zero", "deploy", {"env": "prod"}, env={"DBOPS_MONITOR_FAILURES": "0"},
         says="DBOPS_MONITOR_FAILURES"),
    case("error-budget-over-one", "deploy", {"env": "prod"}, env={"DBOPS_MONITOR_ERROR_BUDGET": "2"},
         says="DBOPS_MONITOR_ERROR_BUDGET"),
    case("error-budget-letters", "monitor", {"env": "prod"}, env={"DBOPS_MONITOR_ERROR_BUDGET": "lots"},
         says="DBOPS_MONITOR_ERROR_BUDGET"),
    case("embedded-port-too-big", "db_up", env={"DBOPS_EMBEDDED_PORT": "70000", "DATABASE_URL": None},
         says="DBOPS_EMBEDDED_PORT"),
    case("embedded-port-letters", "db_down", env={"DBOPS_EMBEDDED_PORT": "x"}, says="DBOPS_EMBEDDED_PORT"),
    case("backup-timeout-zero", "backup", {"env": "prod"}, env={"DBOPS_BACKUP_TIMEOUT": "0"},
         says="DBOPS_BACKUP_TIMEOUT"),
    # -- backup settings --------------------------------------------------------------------------
    case("sse-unknown", "backup", {"env": "prod"}, env={"BACKUP_SSE": "rot13"}, says="BACKUP_SSE"),
    case("compression-11", "backup", {"env": "prod"}, env={"BACKUP_COMPRESSION": "11"}, says="BACKUP_COMPRESSION"),
    case("compression-word", "backup", {"env": "prod"}, env={"BACKUP_COMPRESSION": "best"},
         says="BACKUP_COMPRESSION"),
    case("backup-url-ftp", "backups", {"env": "prod"}, env={"PROD_BACKUP_URL": "ftp://x/y"}, says="unsupported scheme"),
    case("backup-url-no-bucket", "backup", {"env": "prod"}, env={"PROD_BACKUP_URL": "s3:///prefix"},
         says="names no bucket"),
    case("backup-url-credentials", "prune_backups", {"env": "prod"},
         env={"PROD_BACKUP_URL": "s3://AKIAXX:secretxyz@bucket/p"}, says="credentials"),
    case("backup-url-file-host", "backup", {"env": "prod"}, env={"PROD_BACKUP_URL": "file://host/srv/backups"},
         says="file:// URLs are local paths"),
    case("backup-url-unset-staging", "backups", {"env": "staging"}, says="STAGING_BACKUP_URL"),
    case("backup-url-unset-prune", "prune_backups", {"env": "staging"}, says="STAGING_BACKUP_URL"),
    # -- web URLs -----------------------------------------------------------------------------------
    case("health-url-scheme", "deploy", {"env": "prod"}, env={"PROD_HEALTH_URL": "htp://x/health"},
         says="HEALTH_URL"),
    case("health-url-port-too-big", "deploy", {"env": "prod"}, env={"PROD_HEALTH_URL": "http://h:99999/health"},
         says="99999"),
    case("health-url-port-letters", "monitor", {"env": "prod"}, env={"PROD_HEALTH_URL": "http://h:abc/health"},
         says="port 'abc'"),
    case("health-url-words", "monitor", {"env": "prod"}, env={"PROD_HEALTH_URL": "the app"}, says="HEALTH_URL"),
    case("health-url-no-host", "deploy", {"env": "prod"}, env={"PROD_HEALTH_URL": "https://"}, says="HEALTH_URL"),
    case("webhook-ftp", "deploy", {"env": "prod"}, env={"NOTIFY_WEBHOOK_URL": "ftp://hooks/x"},
         says="NOTIFY_WEBHOOK_URL"),
    case("webhook-no-host", "rollback", {"env": "prod"}, env={"NOTIFY_WEBHOOK_URL": "http://:80/x"},
         says="NOTIFY_WEBHOOK_URL"),
    case("endpoint-no-scheme", "backup", {"env": "prod"}, env={"AWS_ENDPOINT_URL_S3": "localhost:9000"},
         says="AWS_ENDPOINT_URL_S3"),
    case("endpoint-port-letters", "backups", {"env": "prod"}, env={"AWS_ENDPOINT_URL": "http://s3:xx"},
         says="AWS_ENDPOINT_URL"),
    # -- prune-backups flags ------------------------------------------------------------------------
    case("keep-letters", "prune_backups", {"env": "prod", "keep": "x"}, says="--keep"),
    case("keep-zero", "prune_backups", {"env": "prod", "keep": "0"}, says="--keep must be at least 1"),
    case("keep-negative", "prune_backups", {"env": "prod", "keep": "-3", "confirm": True}, says="--keep"),
    case("keep-fraction", "prune_backups", {"env": "prod", "keep": "1.5", "confirm": True}, says="whole number"),
    case("days-zero", "prune_backups", {"env": "prod", "days": "0", "confirm": True}, says="--days"),
    case("days-letters", "prune_backups", {"env": "prod", "days": "week"}, says="--days"),
    case("daily-negative", "prune_backups", {"env": "prod", "daily": "-1", "confirm": True}, says="--daily"),
    case("monthly-letters", "prune_backups", {"env": "prod", "monthly": "twelve", "confirm": True}, says="--monthly"),
    case("dry-run-and-confirm", "prune_backups", {"env": "prod", "dry_run": True, "confirm": True}, says="contradict"),
    # -- encryption and a BACKUP_URL naming a file ---------------------------------------------------
    case("age-recipient-is-a-secret-key", "backup", {"env": "prod"},
         env={"PROD_BACKUP_AGE_RECIPIENTS": "AGE-SECRET-KEY-1" + "Q" * 58},
         says="not a recipient"),
    case("age-recipient-garbled", "backup", {"env": "prod"}, env={"BACKUP_AGE_RECIPIENTS": "age1notakey"},
         says="not an age recipient"),
    case("backup-url-names-a-dump", "backups", {"env": "prod"}, env={"PROD_BACKUP_URL": "s3://bucket/prod/db.dump"},
         says="names a file"),
    case("backup-url-names-a-dump-prune", "prune_backups", {"env": "prod", "confirm": True},
         env={"PROD_BACKUP_URL": "s3://bucket/prod/db.dump"}, says="names a file"),
    # -- deploy / rollback / monitor flags ---------------------------------------------------------
    case("monitor-minutes-negative", "deploy", {"env": "prod", "monitor_minutes": "-5"}, says="--monitor-minutes"),
    case("monitor-minutes-letters", "deploy", {"env": "prod", "monitor_minutes": "ten"}, says="--monitor-minutes"),
    case("monitor-minutes-nan", "deploy", {"env": "prod", "monitor_minutes": "nan"}, says="--monitor-minutes"),
    case("monitor-minutes-inf", "deploy", {"env": "prod", "monitor_minutes": "inf"}, says="--monitor-minutes"),
    case("monitor-minutes-huge", "deploy", {"env": "prod", "monitor_minutes": "100000"}, says="at most"),
    case("monitor-seconds-negative", "deploy", {"env": "prod", "monitor_seconds": "-1"}, says="--monitor-seconds"),
    case("monitor-seconds-letters", "deploy", {"env": "local", "monitor_seconds": "1m"}, says="--monitor-seconds"),
    case("deploy-no-backup-prod", "deploy", {"env": "prod", "no_backup": True}, says="--no-backup"),
    case("deploy-no-backup-staging", "deploy", {"env": "staging", "no_backup": True}, says="--no-backup"),
    case("rollback-no-backup-prod", "rollback", {"env": "prod", "no_backup": True}, says="--no-backup"),
    case("monitor-minutes-flag-negative", "monitor", {"env": "prod", "minutes": "-1"}, says="--minutes"),
    case("monitor-minutes-flag-zero", "monitor", {"env": "prod", "minutes": "0"}, says="--minutes"),
    case("monitor-seconds-flag-zero", "monitor", {"env": "prod", "seconds": "0"}, says="--seconds"),
    case("monitor-seconds-flag-letters", "monitor", {"env": "prod", "seconds": "abc"}, says="--seconds"),
    case("rollback-to-unknown", "rollback", {"env": "prod", "to": "nope123"}, code=(1, 2), says="nope123"),
    case("deploy-staging-unset", "deploy", {"env": "staging"}, says="STAGING_"),
    case("monitor-staging-unset", "monitor", {"env": "staging", "seconds": "5"}, env={"DATABASE_URL": None},
         says="STAGING_DATABASE_URL"),
    # -- test-rollback flags ------------------------------------------------------------------------
    case("last-zero", "test_rollback", {"last": "0"}, says="--last"),
    case("last-letters", "test_rollback", {"last": "all"}, says="--last"),
    case("config-missing", "test_rollback", {"config": "/nonexistent/alembic.ini"}, says="does not exist"),
    case("server-mysql", "test_rollback", {"server": "mysql://u:p@h/db"}, says="--server"),
    case("server-port", "test_rollback", {"server": "postgresql://u:p@h:99999/db"}, says="--server"),
    case("server-no-db", "test_rollback", {"server": "postgresql://u:p@h:5432"}, says="--server"),
    # -- render-job flags ---------------------------------------------------------------------------
    case("render-timeout-letters", "render_job", {"timeout": "soon"}, says="--timeout"),
    case("render-timeout-negative", "render_job", {"timeout": "-1"}, says="--timeout"),
    case("render-poll-zero", "render_job", {"poll": "0"}, says="--poll"),
    case("render-commit-short", "render_job", {"commit": "96e86db"}, says="--commit must be a full commit SHA"),
    case("render-commit-empty", "render_job", {"commit": ""}, says="--commit must be a full commit SHA"),
    case("pg-clients-major-letters", "pg_clients", {"major": ["sixteen"]}, says="--major"),
    case("pg-clients-major-negative", "pg_clients", {"major": ["16", "-1"]}, says="--major"),
    # -- restore / verify-backup ---------------------------------------------------------------------
    case("restore-unknown-key", "restore", {"env": "prod", "backup": "nope.dump"}, says="no backup 'nope.dump'"),
    case("restore-target-garbage", "restore", {"env": "prod", "target_url": "garbage"}, says="--target-url"),
    case("restore-target-port", "restore", {"env": "prod", "target_url": "postgresql://u:p@h:x/db"},
         says="--target-url"),
    case("restore-target-mysql", "restore", {"env": "prod", "target_url": "mysql://u:p@h/db"}, says="--target-url"),
    case("restore-in-place-and-target", "restore", {"env": "prod", "in_place": True, "target_url": P},
         says="--in-place and --target-url name two different targets"),
    case("restore-target-pooler", "restore",
         {"env": "prod", "target_url": "postgresql://u:pw9876@ep-cool-123-pooler.us-east-2.aws.neon.tech/db"},
         says="pooler"),
    case("restore-latest-none", "restore", {"env": "prod"}, env={"PROD_BACKUP_URL": "__EMPTY__"},
         says="no complete backup"),
    case("restore-jobs-zero", "restore", {"env": "prod", "jobs": "0"}, says="--jobs"),
    case("restore-jobs-word", "restore", {"env": "prod", "jobs": "all"}, says="--jobs must be a whole number"),
    case("drill-jobs-zero", "drill", {"env": "prod", "jobs": "0"}, says="--jobs"),
    case("drill-unknown-key", "drill", {"env": "prod", "backup": "nope.dump"}, says="no backup 'nope.dump'"),
    case("drill-none", "drill", {"env": "prod"}, env={"PROD_BACKUP_URL": "__EMPTY__"}, says="no complete backup"),
    case("verify-unknown-key", "verify_backup", {"env": "prod", "backup": "20200101T000000.000000Z_x"},
         says="no backup"),
    case("verify-none", "verify_backup", {"env": "prod"}, env={"PROD_BACKUP_URL": "__EMPTY__"},
         says="no complete backup"),
    # -- accept-migration-change / lint ------------------------------------------------------------
    case("accept-no-revision", "accept_migration_change", {"env": "prod"}, says="--revision is required"),
    case("accept-unknown-revision", "accept_migration_change", {"env": "prod", "revision": "zzz999"},
         code=(1, 2), says="zzz999"),
    case("lint-unknown-revision", "lint", {"env": "prod", "revision": ["nope42"]}, code=(1, 2), says="nope42"),
    # -- the project itself -------------------------------------------------------------------------
    case("ini-corrupt-status", "status", env={"__PROJECT__": "corrupt-ini"}, code=(1, 2), says="alembic.ini"),
    case("ini-corrupt-deploy", "deploy", {"env": "prod"}, env={"__PROJECT__": "corrupt-ini"}, code=(1, 2),
         says="alembic.ini"),
    case("ini-corrupt-test-rollback", "test_rollback", env={"__PROJECT__": "corrupt-ini"}, code=(1, 2),
         says="alembic.ini"),
    case("migration-syntax-error", "test_rollback", env={"__PROJECT__": "syntax-error"}, code=(1, 2),
         says="broken_rev"),
    case("migration-syntax-error-deploy", "deploy", {"env": "prod"}, env={"__PROJECT__": "syntax-error"},
         code=(1, 2), says="broken_rev"),
    case("models-import-error-deploy", "deploy", {"env": "prod"}, env={"__PROJECT__": "models-import"},
         code=2, says=("models.py", "no_such_module_xyz")),
    case("models-name-error-deploy", "deploy", {"env": "prod"}, env={"__PROJECT__": "models-name"},
         code=2, says=("models.py", "NameError")),
    # -- the docker provider: the engine's refusals are settings, named (a real engine; nothing is created) ----
    case("docker-image-bad-reference", "status",
         env={"DBOPS_DB": "docker", "DATABASE_URL": None, "DBOPS_DOCKER_CONTAINER": "dbops-hostile-none",
              "DBOPS_POSTGRES_IMAGE": "Bad Image!"},
         says=("docker start", "'Bad Image!'", "invalid reference format", "DBOPS_POSTGRES_IMAGE"),
         marks=pytest.mark.docker),
    case("docker-container-bad-name", "status",
         env={"DBOPS_DB": "docker", "DATABASE_URL": None, "DBOPS_DOCKER_CONTAINER": "bad name!",
              "DBOPS_POSTGRES_IMAGE": "__LOCAL_IMAGE__"},  # an image this machine has, so the create is tried
         says=("docker start", "'bad name!'", "Invalid container name", "DBOPS_DOCKER_CONTAINER"),
         marks=pytest.mark.docker),
    case("docker-image-cannot-be-pulled", "status",
         env={"DBOPS_DB": "docker", "DATABASE_URL": None, "DBOPS_DOCKER_CONTAINER": "dbops-hostile-none",
              "DBOPS_POSTGRES_IMAGE": "127.0.0.1:9/nope/postgres:1"},
         code=3, says=("127.0.0.1:9/nope/postgres:1", "could not be pulled", "DBOPS_POSTGRES_IMAGE"),
         marks=pytest.mark.docker),
]


def _broken_project(world, kind: str) -> Path:
    """A copy of the project with a corrupt alembic.ini or a revision file that does not compile."""
    dest = world["root"].parent / f"broken-{kind}"
    if not dest.exists():
        copy_project(dest)
        if kind == "corrupt-ini":
            (dest / "alembic.ini").write_text("[alembic\nscript_location = %(here)s/alembic\n")
        elif kind.startswith("models-"):  # a pending revision, and models that fail to load
            models = dest / "backend" / "app" / "domains" / "users" / "models.py"
            bad = "import no_such_module_xyz\n" if kind == "models-import" else "undefined_name_in_models\n"
            models.write_text(models.read_text() + "\n" + bad)
            (dest / "alembic" / "versions" / "2099_a1_pending.py").write_text(
                f'"""pending"""\nrevision = "a1pending"\ndown_revision = "{BASE}"\nbranch_labels = None\n'
                "depends_on = None\ndef upgrade():\n    pass\ndef downgrade():\n    pass\n")
        else:
            (dest / "alembic" / "versions" / "2099_broken_rev.py").write_text(
                f'"""broken"""\nrevision = "broken_rev"\ndown_revision = "{BASE}"\ndef upgrade(:\n    pass\n')
    return dest


def _local_image() -> str:
    """A tag of an image this engine already has (no pull), or skip."""
    from dbops.containers.engine import client

    tags = [t for image in client().images.list() for t in image.tags]
    if not tags:
        pytest.skip("the Docker engine has no tagged image to create a container from")
    return sorted(tags)[0]


@pytest.mark.parametrize("task,kwargs,env,code,says", CASES)
def test_bad_input_is_refused_cleanly_and_changes_nothing(world, task, kwargs, env, code, says, capsys, tmp_path):
    env = dict(env)
    project = env.pop("__PROJECT__", None)
    if env.get("PROD_BACKUP_URL") == "__EMPTY__":
        env["PROD_BACKUP_URL"] = f"file://{tmp_path / 'empty'}"
    if env.get("DBOPS_POSTGRES_IMAGE") == "__LOCAL_IMAGE__":
        env["DBOPS_POSTGRES_IMAGE"] = _local_image()
    with pytest.MonkeyPatch.context() as mp:
        _apply(mp, {**world["env"], **env})
        if project:
            broken = _broken_project(world, project)
            mp.setenv("DBOPS_PROJECT_ROOT", str(broken))
            mp.syspath_prepend(str(broken / "backend"))
            forget_app_modules()
        before = fingerprint(world)
        try:
            got, message = run_task(task, kwargs)
        finally:
            if project:
                forget_app_modules()
        printed = capsys.readouterr()
        after = fingerprint(world)
    text = "\n".join([printed.out, printed.err, message])
    codes = code if isinstance(code, tuple) else (code,)
    assert got in codes, f"exit {got}, expected {codes}:\n{text}"
    assert "Traceback" not in text and "internal error" not in text, text
    assert message.startswith("error: "), message
    assert len(message.splitlines()) <= 6, message
    for word in says:
        assert word.lower() in message.lower(), f"{word!r} not in:\n{message}"
    assert SECRET not in text
    assert after == before


def inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.startswith("DBOPS_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize("args,says", [
    (("prune-backups", "--env", "prod", "--keep", "x"), "--keep must be a whole number"),
    (("deploy", "--env", "prod", "--monitor-minutes", "-5"), "--monitor-minutes must be at least 0"),
    (("monitor", "--env", "prod", "--minutes", "-1"), "--minutes"),
], ids=["keep-letters-cli", "monitor-minutes-cli", "minutes-cli"])
def test_bad_flags_through_inv_itself(world, args, says):
    before = fingerprint(world)
    r = inv(*args, env=world["env"])
    assert r.returncode == 2, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr + r.stdout
    assert fingerprint(world) == before


@pytest.mark.parametrize("debug", ["", "1"], ids=["plain", "DBOPS_DEBUG=1"])
def test_the_edge_turns_any_unexpected_exception_into_one_masked_line(debug, monkeypatch, capsys):
    """The catch-all: one line, the hint to rerun with DBOPS_DEBUG=1, exit 1; the traceback only under debug."""
    from dbops.cli import edge

    monkeypatch.setenv("DBOPS_DEBUG", debug)
    monkeypatch.setenv("PROD_DATABASE_URL", f"postgresql://app:{SECRET}@db.example.com/app")

    @edge
    def body():
        raise RuntimeError(f"cannot frobnicate postgresql://app:{SECRET}@db.example.com/app\nsecond line")

    with pytest.raises(invoke.exceptions.Exit) as info:
        body()
    err = capsys.readouterr().err
    message = info.value.message
    assert info.value.code == 1
    assert message.splitlines()[0] == "internal error: RuntimeError: cannot frobnicate postgresql://app:***@db.example.com/app"
    assert "DBOPS_DEBUG=1" in message and "second line" not in message
    assert SECRET not in message + err
    assert ("Traceback" in err) == bool(debug)
