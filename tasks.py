"""dbops tasks: ``inv --list`` shows them, ``inv --help TASK`` explains one.

Each task parses its flags and calls one core function in ``backend/dbops``
with the settings first; errors become exit codes in ``dbops.cli.edge``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from invoke import task

sys.path.insert(0, str(Path(__file__).resolve().parent / "backend"))

# local and roundtrip load Alembic's machinery (~12 MB): imported in their tasks so `inv backup` stays lean
from dbops import console  # noqa: E402
from dbops.cli import edge  # noqa: E402
from dbops.servers import server_for  # noqa: E402
from dbops.settings import load_settings  # noqa: E402

DB_HELP = "which Postgres: embedded | docker | url (default: url if DATABASE_URL is set, docker if it runs, else embedded)"


@task(help={"db": DB_HELP})
@edge
def db_up(c, db=None):
    """Start the local Postgres (embedded, docker, or check the URL) and print its URL."""
    server = server_for(load_settings(provider=db))
    url = server.start()
    console.ok(f"{server.describe()} is up (PostgreSQL {server.version()})")
    console.say(url.render_as_string(hide_password=True))


@task(help={"db": DB_HELP})
@edge
def db_down(c, db=None):
    """Stop the local Postgres; its data is kept (a URL database is left alone)."""
    server = server_for(load_settings(provider=db))
    server.stop()
    console.ok(f"{server.name}: stopped" if server.owned else "url: not ours to stop; nothing done")


@task(help={"db": DB_HELP})
@edge
def db_shell(c, db=None):
    """Open psql on the local database."""
    from dbops import pgtools

    server = server_for(load_settings(provider=db))
    url = server.start()
    argv = [str(pgtools.find("psql")), *pgtools.conninfo_args(url), pgtools.dbname_arg(url)]
    os.execvpe(argv[0], argv, pgtools.libpq_env(url))


@task(help={"db": DB_HELP})
@edge
def status(c, db=None):
    """Show provider, server version, current revision, heads, pending migrations and model/DB drift."""
    from dbops import local  # imported per task: alembic's machinery is heavy, and `inv backup` must stay lean

    console.say(local.render_status(local.status(load_settings(provider=db))))


@task(
    help={
        "auto": "no prompts: derive the message from the changes, apply and verify",
        "check_only": "change nothing; exit 0 when at head and models match, 1 otherwise (CI, pre-commit)",
        "force_recreate": "drop and recreate the local database, then upgrade to head (local targets only)",
        "yes": "with --force-recreate: do not ask for confirmation",
        "message": "the migration message (default: derived from the changes)",
        "db": DB_HELP,
    }
)
@edge
def sync(c, auto=False, check_only=False, force_recreate=False, yes=False, message=None, db=None):
    """Bring the local database in line with the models: apply pending, generate, apply, verify."""
    from dbops import local

    settings = load_settings(provider=db)
    if check_only:
        console.say(local.render_status(local.check(settings)))
        console.ok("in sync: at head and the models match")
    elif force_recreate:
        local.force_recreate(settings, yes=yes)
    else:
        local.sync(settings, auto=auto, message=message)


@task(help={"env": "local | staging | prod", "db": DB_HELP})
@edge
def config(c, env="local", db=None):
    """Print the resolved settings for an environment, secrets masked."""
    settings = load_settings(env, provider=db)
    console.say(console.table(["setting", "value"], settings.describe()))


ENV_HELP = "which environment: local | staging | prod (its <ENV>_DATABASE_URL and <ENV>_BACKUP_URL)"


@task(help={"env": ENV_HELP, "db": DB_HELP, "quiet": "no progress line"})
@edge
def backup(c, env="local", db=None, quiet=False):
    """Stream pg_dump (custom format) to BACKUP_URL, check it, and write its manifest; non-zero exit on any failure."""
    from dbops import backup as backups

    settings = load_settings(env, provider=db)
    result = backups.create_backup(settings, backups.database_url_for(settings), progress=not quiet)
    console.ok(f"backup {result.key} ({result.size:,} bytes, sha256 {result.sha256[:12]}…) in {result.store}")


@task(help={"env": ENV_HELP, "json": "print JSON instead of a table"})
@edge
def backups(c, env="local", json=False):
    """List the environment's backups, newest first: time, revision, size, duration, verified."""
    import json as json_

    from dbops import backup as backups_

    settings = load_settings(env)
    found = backups_.list_backups(settings)
    console.say(json_.dumps([b.as_dict() for b in found], indent=2) if json else backups_.render_backups(found))
    if not found and not json:
        console.warn(f"no backups yet for --env {env} in {settings.backup_url}; `inv backup --env {env}` makes one")


@task(
    help={
        "env": ENV_HELP,
        "keep": "keep at least the newest N backups",
        "days": "also keep every backup younger than D days (at least 1)",
        "confirm": "really delete; without it this is a dry run",
    }
)
@edge
def prune_backups(c, env="local", keep=7, days=None, confirm=False):
    """Delete old backups (a dry run unless --confirm); never the newest, one under a day old, or an unverified one."""
    from dbops import backup as backups

    result = backups.prune_backups(load_settings(env), keep=int(keep), days=int(days) if days else None,
                                   confirm=confirm)
    console.say(backups.render_prune(result))


@task(
    help={
        "env": ENV_HELP,
        "backup": "the backup's key or file name (see `inv backups`), or latest",
        "target_url": "restore into this database URL (default: a new database beside the environment's)",
        "yes_i_know": "the name of the existing target database, confirming it is replaced",
        "db": DB_HELP,
        "quiet": "no progress line",
    }
)
@edge
def restore(c, env="local", backup="latest", target_url=None, yes_i_know=None, db=None, quiet=False):
    """Restore a backup, checking its checksum while streaming; an existing database is replaced only when named."""
    from dbops import backup as backups

    settings = load_settings(env, provider=db)
    run = lambda name: backups.restore_backup(settings, backup, target_url, in_place_confirmed_name=name,  # noqa: E731
                                              progress=not quiet)
    try:
        result = run(yes_i_know)
    except backups.ConfirmationRequired as exc:
        if yes_i_know is not None or not sys.stdin.isatty():
            raise
        console.warn(exc.message)
        result = run(console.ask(f"type {exc.database} to replace it"))
    console.ok(f"restored {result.key} into {result.target} (checksum ok, {result.duration_s:.1f}s)")


@task(help={"env": ENV_HELP, "backup": "the backup's key or file name, or latest (default)", "quiet": "no progress"})
@edge
def verify_backup(c, env="local", backup="latest", quiet=False):
    """Restore a backup into a throwaway local Postgres, check tables and row counts, and mark it verified."""
    from dbops import backup as backups

    result = backups.verify_backup(load_settings(env), backup, progress=not quiet)
    console.ok(f"verified {result.key}: {len(result.tables)} tables, row counts match ({result.duration_s:.1f}s)")


@task(help={"k": "only tests matching this pytest -k expression", "x": "stop at the first failure"})
def test(c, k=None, x=False):
    """Run the whole test suite (real Postgres, real S3; Docker tests where an engine runs)."""
    args = ["-q"] + (["-k", k] if k else []) + (["-x"] if x else [])
    c.run(f"{sys.executable} -m pytest " + " ".join(_quote(a) for a in args), pty=False)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


@task(
    help={
        "config": "the alembic.ini of the project to test (default: this repo's); any Alembic project works",
        "last": "test only the newest N revisions (older ones are applied first without checks)",
        "from": "test REV and every revision after it (older ones are applied first without checks)",
        "setup_sql": "a SQL file run on the empty database before the base revision (extensions, roles, schemas)",
        "json": "also write the report as JSON to this path",
        "server": "run on this Postgres server URL (a throwaway database is created and dropped there); "
        "default: a private embedded PostgreSQL",
    }
)
@edge
def test_rollback(c, config=None, last=None, from_=None, setup_sql=None, json=None, server=None):
    """Prove every migration round-trips (up, down, up) on a throwaway database; exit 1 on any failure.

    Also checks for a single head, missing downgrades and model/database drift at head.
    """
    from dbops import roundtrip
    from dbops.settings import normalize_database_url

    settings = load_settings(alembic_ini=config)
    server_url = normalize_database_url(server, variable="--server") if server else None
    roundtrip.run(settings, last=last, start=from_, setup_sql=setup_sql, json_path=json, server_url=server_url)
