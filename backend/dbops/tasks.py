"""The tasks, as one Invoke collection ``ns``: the ``dbops`` command runs it, ``inv`` in a project imports it.

``dbops --list`` shows the tasks, ``dbops --help TASK`` explains one; a project with its own ``tasks.py``
adds them with ``from dbops.tasks import ns``.  Each task parses its flags and calls one core function with
the settings first; errors become exit codes in :func:`dbops.cli.edge`.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import invoke
from invoke import Argument, Collection, Program, Task

# the step packages load Alembic's machinery (~12 MB): imported in their tasks so `dbops backup` stays lean
from dbops import __version__, formats
from dbops.cli import edge, number
from dbops.console import Console
from dbops.errors import ConfirmationRequired, UsageError
from dbops.formats import check_format, text_table
from dbops.redact import mask_url
from dbops.settings import load_settings, normalize_database_url
from dbops.ui import SILENT, set_program


class _Task(Task):
    """Invoke's task, minus one slip: it offers every character of a flag's name as its short flag, ``-``
    included, so ``--compat-ref`` got the short flag ``--`` (``--=STRING`` in ``--help deploy``)."""

    def get_arguments(self, *args, **kwargs):
        arguments = super().get_arguments(*args, **kwargs)
        for argument in arguments:  # dropped after the fact: every other flag keeps the short flag it always had
            argument.names = tuple(n for n in argument.names if n != "-")
        return arguments


task = functools.partial(invoke.task, klass=_Task)

DB_HELP = ("which Postgres: embedded | docker | url (default: url if DATABASE_URL is set, docker if it runs, "
           "else embedded)")


@task(help={"db": DB_HELP})
@edge
def db_up(c, db=None):
    """Start the local Postgres (embedded, docker, or check the URL) and print its URL."""
    from dbops.servers import server_for  # here, not at the top: the other tasks start faster without it

    ui, server = Console(), server_for(load_settings(provider=db))
    url = server.start()
    ui.ok(f"{server.describe()} is up (PostgreSQL {server.version()})")
    ui.say(mask_url(url))


@task(help={"db": DB_HELP})
@edge
def db_down(c, db=None):
    """Stop the local Postgres; its data is kept (a URL database is left alone)."""
    from dbops.servers import server_for  # per task: start-up time

    server = server_for(load_settings(provider=db))
    server.stop()
    Console().ok(f"{server.name}: stopped" if server.owned else "url: not ours to stop; nothing done")


@task(help={"db": DB_HELP})
@edge
def db_shell(c, db=None):
    """Open psql on the local database."""
    from dbops.postgres import clients, programs  # per task: start-up time
    from dbops.servers import server_for  # per task: start-up time

    settings = load_settings(provider=db)
    url = server_for(settings).start()
    argv = [str(clients.find("psql", settings.client_places)), *programs.conninfo_args(url), programs.dbname_arg(url)]
    os.execvpe(argv[0], argv, programs.libpq_env(url))


@task(help={"major": "a PostgreSQL major to install (repeatable; default: every supported one, 14-18)"},
      iterable=["major"])
@edge
def pg_clients(c, major=None):
    """Install PostgreSQL's programs with SSL and contrib (one folder per major) that dbops picks from per server."""
    from dbops.postgres import client_install, clients, server_programs  # per task: start-up time
    from dbops.settings import client_places  # only where the clients go: no other setting can stop an install

    ui = Console()
    majors = [number("--major", m, whole=True, minimum=1) for m in major] if major else list(clients.SUPPORTED_MAJORS)
    for client in client_install.install(majors, places=client_places(), ui=ui):
        programs = server_programs.inspect(client.path.parent, client.major, client.source)
        ui.ok(f"PostgreSQL {client.major}: {client.path.parent} "
              f"({client.version}, SSL {'on' if client.ssl else 'off'}), contrib: {programs.contrib_text()}")


@task(help={"db": DB_HELP})
@edge
def status(c, db=None):
    """Show provider, server version, current revision, heads, pending migrations and model/DB drift."""
    from dbops import sync as step  # imported per task: alembic's machinery is heavy, `inv backup` must stay lean

    Console().say(step.render_status(step.status(load_settings(provider=db))))


@task(
    help={
        "auto": "no prompts: derive the message from the changes, apply and verify",
        "check_only": "change nothing; exit 0 when at head and models match, 1 otherwise (CI, pre-commit)",
        "force_recreate": "drop and recreate the local database, then upgrade to head (local targets only)",
        "yes": "with --force-recreate: do not ask for confirmation",
        "message": "the migration message (default: derived from the changes)",
        "merge_heads": "two heads: write a merge revision joining them",
        "reparent": "two heads: move the revisions only this branch has (not on the main branch) onto the other head",
        "main_branch": "with --reparent: the branch whose history is shared (default: origin/main, else main)",
        "db": DB_HELP,
    }
)
@edge
def sync(c, auto=False, check_only=False, force_recreate=False, yes=False, message=None, merge_heads=False,
         reparent=False, main_branch=None, db=None):
    """Bring the local database in line with the models: apply pending, generate, apply, verify."""
    from dbops import sync as step  # the package (this task has its name)

    ui = Console()
    settings = load_settings(provider=db)
    if check_only:
        ui.say(step.render_status(step.check(settings)))
        ui.ok("in sync: at head and the models match")
    elif force_recreate:
        step.force_recreate(settings, yes=yes, ui=ui)
    else:
        step.sync(settings, auto=auto, message=message, merge_heads=merge_heads, reparent=reparent,
                  main_branch=main_branch, ui=ui)


@task(help={"env": "local | staging | prod", "db": DB_HELP})
@edge
def config(c, env="local", db=None):
    """Print the resolved settings for an environment, secrets masked."""
    Console().say(text_table(["setting", "value"], load_settings(env, provider=db).describe()))


BACKUP_ENV_HELP = "which environment: local | staging | prod (its <ENV>_DATABASE_URL and <ENV>_BACKUP_URL)"


COMPRESSION_HELP = ("pg_dump's compression: gzip:N (default gzip:1), zstd[:N], lz4[:N] (pg_dump 16+) or none; "
                    "overrides BACKUP_COMPRESSION")


@task(help={"env": BACKUP_ENV_HELP, "db": DB_HELP, "quiet": "no progress line", "compression": COMPRESSION_HELP})
@edge
def backup(c, env="local", db=None, quiet=False, compression=None):
    """Stream pg_dump (custom format) to BACKUP_URL, check it, and write its manifest; non-zero exit on any failure."""
    from dbops import backup as backups  # per task: start-up time
    from dbops.servers import environment_url  # per task: start-up time

    settings, ui = load_settings(env, provider=db, compression=compression), Console(progress=not quiet)
    result = backups.create_backup(settings, environment_url(settings), ui=ui)
    ui.ok(f"backup {result.key} ({result.size:,} bytes, sha256 {result.sha256[:12]}…) in {result.store}")


@task(help={"env": BACKUP_ENV_HELP, "json": "print JSON instead of a table",
            "check": "exit 1 unless the last drill is at most DBOPS_DRILL_MAX_AGE_HOURS old, passed, and recovered "
            "within DBOPS_DRILL_TARGET_S"})
@edge
def backups(c, env="local", json=False, check=False):
    """List the environment's backups, newest first: time, revision, size, duration, verified, last drill."""
    import json as json_

    from dbops import backup as backups_  # per task: start-up time

    settings, ui = load_settings(env), Console()
    found = backups_.list_backups(settings)
    ui.say(json_.dumps([b.to_dict() for b in found], indent=2) if json else backups_.render_backups(found))
    if check:  # with --json only the exit code (and the error) speaks: stdout stays one JSON document
        backups_.check_drills(settings, found, ui=SILENT if json else ui)
    if not found and not json:
        ui.warn(f"no backups yet for --env {env} in {settings.backup_url}; `inv backup --env {env}` makes one")
    for b in [] if json else found:
        if b.damaged:
            ui.warn(f"{b.key}: damaged manifest ({b.damaged}); skipped by restore and prune")
    for u in [] if json else backups_.unfinished_uploads(settings):
        ui.warn(f"unfinished upload {u.key} (still running, or a killed backup; started {u.started:%Y-%m-%d %H:%M} "
                f"UTC): `inv prune-backups --env {env} --confirm` removes it once a day old")


@task(
    help={
        "env": BACKUP_ENV_HELP,
        "keep": "keep at least the newest N backups (default 7)",
        "days": "also keep every backup younger than D days (at least 1)",
        "daily": "also keep the newest backup of each of the last N days (default DBOPS_BACKUP_KEEP_DAILY, 0)",
        "weekly": "also keep the newest backup of each of the last N ISO weeks (DBOPS_BACKUP_KEEP_WEEKLY)",
        "monthly": "also keep the newest backup of each of the last N months (DBOPS_BACKUP_KEEP_MONTHLY)",
        "dry_run": "only list what would be deleted and why (the default without --confirm)",
        "confirm": "really delete; without it this is a dry run",
    }
)
@edge
def prune_backups(c, env="local", keep=None, days=None, daily=None, weekly=None, monthly=None, dry_run=False,
                  confirm=False):
    """Delete old backups (a dry run unless --confirm); never the newest, the newest verified, one under a day
    old, or an unverified one; keeps daily/weekly/monthly generations too."""
    from dbops import backup as backups  # per task: start-up time

    if dry_run and confirm:
        raise UsageError("--dry-run and --confirm contradict each other", hint="leave out one of them")
    keep, days = number("--keep", keep, whole=True, minimum=1, default=7), number("--days", days, whole=True, minimum=1)
    daily, weekly, monthly = (number(f"--{n}", v, whole=True, minimum=0)
                              for n, v in (("daily", daily), ("weekly", weekly), ("monthly", monthly)))
    result = backups.prune_backups(load_settings(env), keep=keep, days=days, daily=daily, weekly=weekly,
                                   monthly=monthly, confirm=confirm)
    Console().say(backups.render_prune(result))


@task(
    help={
        "env": BACKUP_ENV_HELP,
        "backup": "the backup's key or file name (see `inv backups`), or latest",
        "target_url": "restore into this database URL (default: a new database beside the environment's)",
        "in_place": "replace the environment's own database with the backup (asks for its name, or --yes-i-know)",
        "yes_i_know": "the name of the existing target database, confirming it is replaced",
        "db": DB_HELP,
        "quiet": "no progress line",
        "jobs": "pg_restore --jobs N from the archive fetched through parallel ranged reads (default: the "
        "machine's cores); 1: one stream, no scratch space",
    }
)
@edge
def restore(c, env="local", backup="latest", target_url=None, yes_i_know=None, db=None, quiet=False, in_place=False,
            jobs=None):
    """Restore a backup (fetched, checked, then pg_restore --jobs); an existing database is replaced only when named."""
    from dbops import backup as backups  # per task: start-up time

    settings, ui = load_settings(env, provider=db), Console(progress=not quiet)
    jobs = number("--jobs", jobs, whole=True, minimum=1, maximum=64)
    run = lambda name: backups.restore_backup(settings, backup, target_url, in_place_confirmed_name=name,  # noqa: E731
                                              in_place=in_place, jobs=jobs, ui=ui)
    try:
        result = run(yes_i_know)
    except ConfirmationRequired as exc:
        if yes_i_know is not None or not sys.stdin.isatty():
            raise
        ui.warn(exc.message)
        result = run(ui.ask(f"type {exc.database} to replace it"))
    how = (f"fetch {result.fetch_s:.1f}s, pg_restore --jobs {result.jobs} {result.restore_s:.1f}s" if result.jobs > 1
           else "one stream")
    ui.ok(f"restored {result.key} into {result.target} (checksum ok, {result.duration_s:.1f}s: {how})")


@task(help={"env": BACKUP_ENV_HELP, "backup": "the backup's key or file name, or latest (default)",
            "quiet": "no progress"})
@edge
def verify_backup(c, env="local", backup="latest", quiet=False):
    """Restore a backup into a throwaway local Postgres, check tables and row counts, and mark it verified."""
    from dbops import backup as backups  # per task: start-up time

    ui = Console(progress=not quiet)
    result = backups.verify_backup(load_settings(env), backup, ui=ui)
    ui.ok(f"verified {result.key}: {len(result.tables)} tables, row counts match ({result.duration_s:.1f}s)")


@task(help={"env": BACKUP_ENV_HELP, "backup": "the backup's key or file name, or latest (default)",
            "jobs": "pg_restore --jobs N (default: the machine's cores)", "quiet": "no progress"})
@edge
def drill(c, env="local", backup="latest", jobs=None, quiet=False):
    """Restore drill: restore a backup into a throwaway Postgres, time fetch/restore/checks, record it beside it."""
    from dbops import backup as backups  # per task: start-up time

    ui = Console(progress=not quiet)
    jobs = number("--jobs", jobs, whole=True, minimum=1, maximum=64)
    d = backups.drill(load_settings(env), backup, jobs=jobs, ui=ui)
    ui.ok(f"drill of {d.key}: recovery time {d.recovery_s:.1f}s (fetch {d.fetch_s or 0:.1f}s, decrypt "
          f"{d.decrypt_s or 0:.1f}s, restore {d.restore_s or 0:.1f}s with --jobs {d.jobs}, checks {d.checks_s:.1f}s); "
          f"{d.tables} tables, {d.rows:,} rows as in the manifest")


FORMAT_HELP = ("text (default) | json | markdown (a pull-request comment); under GitHub Actions "
               "(GITHUB_ACTIONS=true) text and markdown also print ::error annotations on the revision files")


@task(
    help={
        "config": "the alembic.ini of the project to test (default: this repo's); any Alembic project works",
        "last": "test only the newest N revisions (older ones are applied first without checks)",
        "from": "test REV and every revision after it (older ones are applied first without checks)",
        "since": "test only the revisions new or changed since this git ref (a pull request's base) and those "
        "after them; the chain at REF is restored from .dbops/cache/rollback/ (built once); the single-head, "
        "downgrade and models checks still cover the whole chain",
        "setup_sql": "a SQL file run on the empty database before the base revision (extensions, roles, schemas)",
        "json": "also write the report as JSON to this path",
        "server": "run on this Postgres server URL (a throwaway database is created and dropped there); "
        "default: a private embedded PostgreSQL",
        "format": FORMAT_HELP,
    }
)
@edge
def test_rollback(c, config=None, last=None, from_=None, since=None, setup_sql=None, json=None, server=None,
                  format="text"):
    """Prove every migration round-trips (up, down, up) on a throwaway database; exit 1 on any failure.

    Also checks for a single head, missing downgrades and model/database drift at head.
    """
    from dbops import roundtrip  # per task: start-up time

    last = number("--last", last, whole=True, minimum=1)
    settings = load_settings(alembic_ini=config)
    server_url = normalize_database_url(server, variable="--server") if server else None
    roundtrip.run(settings, last=last, start=from_, since=since, setup_sql=setup_sql, json_path=json,
                  server_url=server_url, fmt=format, ui=Console(progress=format == "text"))


# -- the production job ---------------------------------------------------------------

def _local_only_no_backup(env: str, no_backup: bool) -> None:
    if no_backup and env != "local":

        raise UsageError(f"--no-backup is for --env local only; --env {env} always takes a backup first",
                         hint=f"leave out --no-backup (the backup is what a rollback of --env {env} restores)")


DEPLOY_ENV_HELP = "local | staging | prod (settings: <ENV>_NAME over NAME, see docs/configuration.md)"


@task(
    help={
        "env": DEPLOY_ENV_HELP,
        "plan": "preflight + dry run only: say exactly what a deploy would do, change nothing",
        "allow_multiple": "apply more than one pending revision in this run (each in its own transaction)",
        "allow_unsafe": "deploy even when Squawk finds error-level (locking / data-loss) statements",
        "auto_rollback": "downgrade to the previous revision automatically when verify or monitor fails",
        "monitor_minutes": "how long to watch after the upgrade (default DBOPS_MONITOR_MINUTES or 10)",
        "monitor_seconds": "the monitoring window in seconds (overrides --monitor-minutes; 0 skips it)",
        "no_backup": "--env local only: skip the backup",
        "compression": COMPRESSION_HELP,
        "compat": "before the backup, check the code now serving against the new schema (inv compat); "
        "stop on findings unless --allow-unsafe",
        "compat_ref": "with --compat: the git ref now serving (default: the revision the app reports on HEALTH_URL)",
        "rehearse": "after the backup, rehearse the pending revisions on a copy of it (inv rehearse); stop on "
        "error-level findings unless --allow-unsafe (default: on when the backup is at most DBOPS_REHEARSE_AUTO_MB)",
        "no_rehearse": "skip the rehearsal even where it is on by default",
        "rehearse_server": "rehearse on this Postgres server (a scratch database there) instead of a throwaway "
        "local one",
    }
)
@edge
def deploy(c, env="local", plan=False, allow_multiple=False, allow_unsafe=False, auto_rollback=False,
           monitor_minutes=None, monitor_seconds=None, no_backup=False, compression=None, compat=False,
           compat_ref=None, rehearse=False, no_rehearse=False, rehearse_server=None):
    """Ship pending migrations: preflight, lock, backup, rehearse, dry run + lint, upgrade, verify, monitor; report."""
    from dbops.deploy.pipeline import DeployOptions  # per task: start-up time
    from dbops.deploy.pipeline import deploy as run_deploy  # per task: start-up time

    _local_only_no_backup(env, no_backup)
    minutes = number("--monitor-minutes", monitor_minutes, minimum=0, maximum=24 * 60)
    seconds = number("--monitor-seconds", monitor_seconds, minimum=0, maximum=24 * 3600)
    settings = load_settings(env, compression=compression, monitor_minutes=minutes, monitor_seconds=seconds)
    run_deploy(settings, DeployOptions(plan=plan, allow_multiple=allow_multiple, allow_unsafe=allow_unsafe,
                                       auto_rollback=auto_rollback, monitor_seconds=settings.monitor_window_s,
                                       no_backup=no_backup,
                                       compat=compat or bool(compat_ref), compat_ref=compat_ref,
                                       rehearse=_rehearse_choice(rehearse, no_rehearse),
                                       rehearse_server=_rehearse_server(rehearse_server)),
               ui=Console())


def _rehearse_choice(rehearse: bool, no_rehearse: bool) -> bool | None:
    if rehearse and no_rehearse:

        raise UsageError("--rehearse and --no-rehearse contradict each other", hint="pass one of them (or neither)")
    return True if rehearse else False if no_rehearse else None


def _rehearse_server(raw: str | None, flag: str = "--rehearse-server"):
    from dbops.rehearse import parse_server  # per task: start-up time

    return parse_server(raw, variable=flag)


@task(
    help={
        "env": DEPLOY_ENV_HELP,
        "backup": "the backup's key or file name (default: the newest verified one)",
        "server": "rehearse on this Postgres server URL (a scratch database is created and dropped there); "
        "default: a throwaway PostgreSQL of the backup's major",
        "schema_only": "restore the schema only, with production's table sizes; durations are then not measured",
        "json": "also write the report as JSON to this path",
        "format": FORMAT_HELP + "; json and markdown print the report alone (no progress lines)",
    }
)
@edge
def rehearse(c, env="local", backup=None, server=None, schema_only=False, json=None, format="text"):
    """Run the pending migrations on a copy of the newest backup: locks, hold times, rewrites, scans, durations."""
    from dbops import rehearse as step  # per task: start-up time

    ui, settings = Console(), load_settings(env)
    report = step.rehearse(settings, backup=backup, server_url=_rehearse_server(server, "--server"),
                           schema_only=schema_only, ui=ui if check_format(format) == "text" else SILENT)
    step.write_json(report, Path(json) if json else settings.backups_dir / f"rehearse_{env}_{report.stamp}.json")
    step.show(settings, report, format, ui=ui)
    step.stop_if_unsafe(report)


@task(help={"env": DEPLOY_ENV_HELP, "to": "downgrade to this revision (default: the revision before the last deploy)",
            "no_backup": "--env local only: skip the fresh backup"})
@edge
def rollback(c, env="local", to=None, no_backup=False):
    """Take a fresh backup, then downgrade to the revision before the last deploy (refuses irreversible ones)."""
    from dbops.deploy.rollback import rollback_database  # per task: start-up time

    _local_only_no_backup(env, no_backup)
    rollback_database(load_settings(env), to=to, no_backup=no_backup, ui=Console())


@task(help={"env": DEPLOY_ENV_HELP, "minutes": "how long to watch (default DBOPS_MONITOR_MINUTES or 10)",
            "seconds": "how long to watch, in seconds (overrides --minutes)"})
@edge
def monitor(c, env="local", minutes=None, seconds=None):
    """Watch the health URL and the database (connections, blocked queries, long transactions); fail on trouble."""
    from dbops import monitor as watch  # per task: start-up time

    minutes = number("--minutes", minutes, minimum=0.01, maximum=24 * 60)
    seconds = number("--seconds", seconds, minimum=1, maximum=24 * 3600)
    settings = load_settings(env, monitor_minutes=minutes, monitor_seconds=seconds)
    watch.monitor_only(settings, seconds=settings.monitor_window_s, ui=Console())


@task(iterable=["revision"],
      help={"env": DEPLOY_ENV_HELP,
            "revision": "lint this revision: an id or its file's path (repeatable; default: the pending ones)",
            "format": FORMAT_HELP})
@edge
def lint(c, env="local", revision=None, format="text"):
    """Lint migration SQL with Squawk, one revision at a time; exit 1 on error-level findings.

    Style-only rules never fail it; `# dbops: allow <rule>: <why>` in a revision file accepts a finding.
    """
    from dbops import dryrun  # per task: start-up time

    dryrun.lint_pending(load_settings(env), list(revision or []), fmt=format, ui=Console())


@task(help={"env": DEPLOY_ENV_HELP,
            "ref": "the git commit, tag or branch now serving (default: the revision the app reports on "
            "HEALTH_URL, else the database's, mapped to the commit that added its file)",
            "server": "upgrade the throwaway database on this Postgres server URL (default: a private embedded one)"})
@edge
def compat(c, env="local", ref=None, server=None):
    """Check the code now serving against the schema the pending revisions produce; exit 1 if it would break."""
    from dbops import compat as step  # per task: start-up time

    server_url = normalize_database_url(server, variable="--server") if server else None
    step.run(load_settings(env), ref=ref, server_url=server_url, ui=Console())


@task(help={"env": DEPLOY_ENV_HELP, "revision": "the applied revision whose edited file is accepted"})
@edge
def accept_migration_change(c, env="local", revision=None):
    """Accept a deliberate edit to an applied migration file: record its new sha256 for the environment."""
    from dbops.deploy.checksums import accept_migration_change as accept  # per task: start-up time

    if not revision:

        raise UsageError("--revision is required", hint="inv accept-migration-change --env ENV --revision REV")
    old, new = accept(load_settings(env), revision)
    Console().ok(f"{revision}: accepted sha256 {new} (was {old or 'not recorded'})")


@task(help={"yes": "add lines to existing files (pyproject.toml, .gitignore) without asking",
            "force": "overwrite an existing file that differs from what init writes (the Dockerfile, the workflow)",
            "action": "the `uses:` of the workflow: dbops' action as owner/repo@SHA (default: the commit dbops "
                      "was installed from)",
            "dockerfile": "where the job image's Dockerfile goes (default Dockerfile; e.g. dbops.Dockerfile "
                          "when Dockerfile is your app's)"})
@edge
def init(c, yes=False, force=False, action=None, dockerfile="Dockerfile"):
    """Adopt dbops in this project: [tool.dbops], .gitignore lines, the job Dockerfile, a CI workflow."""
    from dbops import init as step  # per task: start-up time

    settings = load_settings()
    step.init(settings.root, settings.alembic_ini, yes=yes, force=force, uses=action, dockerfile_path=dockerfile,
              ui=Console())


@task
@edge
def heads(c):
    """Exit 1 when the migration history has more than one head; needs no database (pre-commit, CI)."""
    from dbops.migrations import Project  # per task: start-up time

    Console().ok(f"one head: {Project(load_settings().alembic_ini).single_head()}")


# -- containers, compose, Render ------------------------------------------------------

PYTHON_IMAGE_HELP = "base image of the build (default DBOPS_PYTHON_IMAGE or python:3.11-slim-bookworm)"


@task(help={"tag": "name of the job image (default dbops-job:latest)", "python_image": PYTHON_IMAGE_HELP,
            "s3": "also build the SeaweedFS image of the compose s3 service (dbops-s3:latest)"})
@edge
def image(c, tag="dbops-job:latest", python_image=None, s3=False):
    """Build the job image (docker build of this checkout; pip's extra CAs: DBOPS_BUILD_CA, else this host's)."""
    from dbops.containers import image as images  # per task: start-up time

    settings = load_settings()
    base = python_image or settings.python_image
    built = [images.build_job_image(settings.root, tag=tag, python_image=base, ca_setting=settings.build_ca)]
    if s3:
        built.append(images.build_s3_image(settings.root, python_image=base, ca_setting=settings.build_ca))
    for b in built:
        Console().ok(f"{b.tag}: {b.size_mb:.0f} MB ({b.id[7:19]}), built in {b.seconds:.0f}s")


@task(help={"services": "which services to start (default: db s3 app)", "build": "(re)build the images first"},
      iterable=["services"])
@edge
def compose_up(c, services=None, build=False):
    """Start the local stack with docker compose (db, s3, app); `migrate` waits for their health checks."""
    from dbops.containers import compose  # per task: start-up time

    settings = load_settings()
    compose.compose(settings.root, ["up", "-d", *(["--build"] if build else []),
                                    *(services or ["db", "s3", "app"])], env=compose.build_env(settings.build_ca))
    Console().ok(f"stack is up; deploy into it: {compose.migrate_command()}")


@task(help={"volumes": "also delete the stack's volumes (database and S3 data)"})
@edge
def compose_down(c, volumes=False):
    """Stop and remove the local compose stack (its data volumes stay unless --volumes)."""
    from dbops.containers.compose import compose  # per task: start-up time

    compose(load_settings().root,
            ["--profile", "migrate", "down", "--remove-orphans", *(["--volumes"] if volumes else [])],
            secrets_needed=False)
    Console().ok("stack removed" + (" with its volumes" if volumes else "; volumes kept"))


@task(help={"env": "local | staging | prod: picks <ENV>_RENDER_* settings and the default command",
            "service": "the srv-... id of the job service "
                       "(default <ENV>_RENDER_JOB_SERVICE_ID / RENDER_JOB_SERVICE_ID)",
            "command": "the job's start command (default: inv deploy --env ENV)",
            "commit": "first deploy the job service at this full commit SHA and wait until it is live",
            "timeout": "seconds for the whole run: the service's deploy, the job, the retries (default 3600); "
                       "a job still running then is canceled",
            "poll": "seconds between status checks (default 5)",
            "backoff": "seconds before the first retry of a 429/5xx answer, doubling up to 30 (default 1)"})
@edge
def render_job(c, env="prod", service=None, command=None, commit=None, timeout=None, poll=None, backoff=None):
    """Run the deploy as a Render one-off job (--commit: on that commit's build) and wait; exit 0 if it succeeded."""
    from dbops import render_api  # per task: start-up time

    ui = Console()
    commit = render_api.check_commit(commit) if commit is not None else None
    timeout = number("--timeout", timeout, minimum=1, maximum=7 * 24 * 3600, default=3600)
    poll = number("--poll", poll, minimum=0.01, maximum=3600, default=5)
    backoff = number("--backoff", backoff, minimum=0, maximum=300, default=1)
    config = render_api.RenderConfig.from_settings(load_settings(env), service_id=service)
    job = render_api.run_job(config, command or f"inv deploy --env {env}", commit=commit, timeout=timeout,
                             poll_interval=poll, backoff=backoff, ui=ui)
    ui.ok(f"render job {job.id} succeeded in {job.describe_duration()}")


FLEET_HELP = {"env": DEPLOY_ENV_HELP,
              "fleet_file": "a fleet file (TOML, one table per environment) instead of [tool.dbops.fleet.ENV] "
              "(also DBOPS_FLEET_FILE)"}


def _fleet_tasks() -> Collection:
    """``dbops fleet.status`` / ``fleet.deploy`` / ``fleet.plan``: one change across many tenant databases or schemas
    (defined here, inside a function, so they live in the ``fleet`` collection only)."""

    @task(help={**FLEET_HELP, "format": "text | json | markdown",
                "run": "the run whose outcomes are shown (default: the newest; shards of one run together)"})
    @edge
    def status(c, env="local", fleet_file=None, format="text", run=None):
        """Where every target of the fleet stands: revision, pending, last deploy outcome, lock; totals per revision."""
        from dbops import fleet  # per task: start-up time

        check_format(format)
        settings = load_settings(env)
        found, warnings = fleet.fleet_status(settings, fleet.load_fleet(settings, fleet_file), run=run)
        ui = Console()
        for line in warnings:
            ui.warn(line)
        ui.say(formats.formatted(found, format, text=found.text, markdown=found.markdown))

    @task(iterable=["target"],
          help={**FLEET_HELP, "run": "start or join this run (every shard of one run names it)",
                "resume": "finish this run: every target without a record (nothing recorded runs again)",
                "shard": "I/N: deploy every N-th target from I (Kubernetes: $(JOB_COMPLETION_INDEX)/N)",
                "target": "only this target (repeatable); with --resume a failed target runs again",
                "max_failures": "stop after more than N failed targets (default: the fleet's max-failures, else 0)",
                "allow_unsafe": "deploy even when Squawk or the rehearsal finds error-level statements",
                "allow_multiple": "apply more than one pending revision per target",
                "rehearse": "rehearse the pending revisions on a copy of the first canary target before any "
                "target changes (default: when its backup is at most DBOPS_REHEARSE_AUTO_MB)",
                "no_rehearse": "skip the rehearsal on the canary's copy",
                "rehearse_server": "rehearse on this Postgres server (a scratch database there) instead of a "
                "throwaway local one"})
    @edge
    def deploy(c, env="local", fleet_file=None, run=None, resume=None, shard=None, target=None, max_failures=None,
               allow_unsafe=False, allow_multiple=False, rehearse=False, no_rehearse=False, rehearse_server=None):
        """Roll the pending revisions out across the fleet: canary first, then batches, within the budget."""
        from dbops.fleet import load_fleet  # per task: start-up time
        from dbops.fleet.rollout import RolloutOptions, deploy, parse_shard  # per task: the deploy pipeline is heavy

        settings = load_settings(env)
        opts = RolloutOptions(run=run, resume=resume, shard=parse_shard(shard), targets=tuple(target or ()),
                              max_failures=number("--max-failures", max_failures, whole=True, minimum=0),
                              allow_unsafe=allow_unsafe, allow_multiple=allow_multiple,
                              rehearse=_rehearse_choice(rehearse, no_rehearse),
                              rehearse_server=_rehearse_server(rehearse_server))
        deploy(settings, load_fleet(settings, fleet_file), opts, ui=Console())

    @task(help={**FLEET_HELP, "shards": "how many shards (pods, matrix jobs)", "emit": "k8s | github",
                "run": "the run id the shards share (default: a new one)", "image": "the job image (k8s)",
                "secret": "the Kubernetes Secret with the variables (default dbops-fleet-ENV)",
                "install": "how a GitHub runner installs dbops (default: pip install dbops)",
                "output": "write to this file instead of printing it"})
    @edge
    def plan(c, env="prod", fleet_file=None, shards=None, emit="k8s", run=None, image="dbops-job:latest",
             secret=None, install="pip install dbops", output=None):
        """Hand one run to a Kubernetes Indexed Job or a GitHub Actions matrix (no scheduler of dbops' own)."""
        from dbops import fleet  # per task: start-up time

        count = number("--shards", shards, whole=True, minimum=1, maximum=1000, default=1)
        text = fleet.plan(load_settings(env), shards=count, kind=emit, run=run, fleet_file=fleet_file, image=image,
                          secret=secret, install=install)
        if output:
            Path(output).write_text(text)
            Console().ok(f"wrote {output}")
        else:
            Console().say(text)

    @task(help={**FLEET_HELP, "target": "the target whose database is replaced (a database target, not a schema)",
                "backup": "the backup's key, as the fleet report names it",
                "yes_i_know": "the name of the target's database, confirming it is replaced",
                "jobs": "pg_restore --jobs N (default: the machine's cores)"})
    @edge
    def restore(c, env="local", fleet_file=None, target=None, backup=None, yes_i_know=None, jobs=None):
        """Put a target's backup back in place of its database (the URL from the fleet's configuration)."""
        from dbops import fleet  # per task: start-up time

        if not target or not backup:
            raise UsageError("fleet.restore needs --target NAME and --backup KEY",
                             hint="the fleet deploy's report prints the command for each failed target")
        settings, ui = load_settings(env), Console()
        result = fleet.restore(settings, fleet.load_fleet(settings, fleet_file), target, backup, confirmed=yes_i_know,
                               jobs=number("--jobs", jobs, whole=True, minimum=1, maximum=64), ui=ui)
        ui.ok(f"restored {result.key} into {result.target} (checksum ok, {result.duration_s:.1f}s)")

    return Collection("fleet", status, deploy, plan, restore)


#: every task of the toolkit: `dbops` runs it; a project's own tasks.py imports it (``from dbops.tasks import ns``)
ns = Collection.from_module(sys.modules[__name__])
ns.add_collection(_fleet_tasks())


class _Program(Program):
    """Invoke's program over :data:`ns`, with Alembic's ``-c/--config`` in place of Invoke's own config file flag."""

    def core_args(self):
        return [*(a for a in super().core_args() if a.name != "config"),
                Argument(names=("config", "c"), help="your project's alembic.ini, as `alembic -c` takes it (also "
                         "ALEMBIC_CONFIG; default: the first alembic.ini from this folder up)")]

    def update_config(self, merge: bool = True) -> None:
        ini = self.args.config.value
        self.args.config.set_value(None, cast=False)  # not Invoke's runtime config file
        super().update_config(merge)
        if ini:  # what Alembic's CLI does with -c: every task, and env.py, read the same variable
            os.environ["ALEMBIC_CONFIG"] = ini


def main(argv: list[str] | None = None) -> None:
    """The ``dbops`` command (and ``python -m dbops``): every task of :data:`ns`, exit codes as ``inv``'s."""
    try:
        set_program("dbops")  # the commands dbops prints are spelled `dbops <task>`
        _Program(namespace=ns, name="dbops", binary="dbops", version=__version__).run(argv)
        sys.stdout.flush()
    except BrokenPipeError:  # `dbops --list | head`: the reader left; no traceback (Python's own recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
