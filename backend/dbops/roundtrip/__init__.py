"""The round-trip tester behind ``inv test-rollback``.

Proves every migration round-trips on a throwaway database, and reports each
check on its own:

- **single head**: the history has one head (else: the heads and the merge command);
- **downgrades implemented**: no empty / ``pass`` / ``NotImplementedError``
  downgrade unless the revision is marked irreversible (:mod:`.irreversible`);
- **round trip**: the per-revision stairway (:mod:`.stairway`) with exact
  catalog snapshots (:mod:`dbops.postgres.schema_snapshot`);
- **models match database**: autogenerate finds nothing at head (the
  project's own env.py, exactly as ``alembic check`` runs it).

:func:`run` is the one entry point and returns a :class:`RoundTripReport`;
it talks only through the UI it is handed (the progress line, the report
text), silent by default.  ``tasks.py`` only parses flags.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from alembic.util.exc import CommandError
from sqlalchemy.engine import URL, Connection

from ..errors import MigrationError, RoundTripFailed, RoundTripToolError, UsageError
from ..formats import check_format, show_report
from ..migrations import Project, describe_diff
from ..migrations.runner import env_is_async, foreign_env, frozen_gc
from ..postgres.extensions import created_in
from ..redact import mask_url, reason
from ..servers.throwaway import given_or_throwaway, throwaway_database
from ..settings import Settings
from ..ui import SILENT, UI
from . import graph, irreversible
from .irreversible import (
    irreversible_downgrade,
)
from .report import (
    DATA_ONLY,
    DOWNGRADES,
    FAILED,
    MODELS,
    OK,
    SINGLE_HEAD,
    SKIPPED,
    STAIRWAY,
    CheckResult,
    RoundTripReport,
    annotations,
    formatted,
)
from .setup_sql import CUSTOM_DUMP
from .since import select_since
from .stairway import Stairway

#: how much of a plain --setup-sql file is read for the extensions it creates (they come first in a dump)
SETUP_SQL_READ = 8 * 1024 * 1024

log = logging.getLogger(__name__)

__all__ = ["RoundTripFailed", "RoundTripReport", "RoundTripToolError", "irreversible_downgrade", "run"]


def run(
    settings: Settings,
    *,
    last: int | None = None,
    start: str | None = None,
    since: str | None = None,
    setup_sql: str | Path | None = None,
    setup: Callable[[Connection], None] | None = None,
    json_path: str | Path | None = None,
    server_url: URL | None = None,
    server_flag: str | None = "--server",
    fmt: str = "text",
    ui: UI = SILENT,
) -> RoundTripReport:
    """Round-trip test the Alembic project of ``settings.alembic_ini``; raise RoundTripFailed on any failure.

    ``last``/``start`` limit the stairway to the newest revisions (older ones
    are applied first without checks); ``since`` (a git ref) to the revisions
    new or changed since that commit and their descendants, the others restored
    from an archive cached under ``settings.state_dir`` (:mod:`.since`); ``setup_sql`` (a file) and ``setup``
    (a callable taking the connection) run on the empty database before the
    base revision; ``server_url`` is a server to create the throwaway database
    on (default: a private PostgreSQL, contrib extensions first, destroyed at the end); ``server_flag``: the
    caller's option for it, offered when that server lacks an extension a revision creates.
    Shows a progress line and then the report through ``ui`` in ``fmt`` (text,
    json, markdown: :func:`.report.formatted`; under GitHub Actions, text and
    markdown also get an annotation per failed revision); writes it as JSON to
    ``json_path``.
    """
    check_format(fmt)
    began = time.perf_counter()
    modules_before = set(sys.modules)  # loading the revision files below may import the project's modules
    project = Project(settings.alembic_ini)
    directory = project.script
    sql = _setup_sql_path(setup_sql)
    order = graph.topological(directory)
    if not order:
        raise UsageError(f"{project.ini} has no revisions to test", hint="create one with `alembic revision`")
    changes = None
    if since is not None:
        if last is not None or start is not None:
            raise UsageError("--since cannot be combined with --last or --from", hint="use one of them")
        changes = select_since(project, order, since)
        selected = changes.selected
    else:
        selected = graph.select(project, order, last=last, start=start)
    _require_async_driver(project)

    checks: list[CheckResult] = [_single_head(directory)]
    bar = ui.progress()
    with given_or_throwaway(server_url, prefix="dbops-roundtrip-", places=settings.client_places,
                            purpose="the round trip's throwaway PostgreSQL server", server_flag=server_flag,
                            needs=_extensions_created(order, sql)) as server, \
            throwaway_database(server) as db:
        report = RoundTripReport(config=str(project.ini), server=mask_url(server), database=db.name)
        with foreign_env(project, db.url, modules_before=modules_before), frozen_gc():
            stairway = Stairway(settings, project, db, order, selected, setup_sql=sql, setup=setup, progress=bar,
                                cache=changes is not None)
            try:
                report.revisions = stairway.walk()
                report.prepared = len(stairway.prepared)
                if changes is not None:
                    report.since = f"{changes.ref} ({changes.commit[:12]})"
                    report.base_cached = stairway.base_cached
                checks.append(_downgrades(order if changes is not None else selected, report))
                report.one_shot = list(stairway.one_shot)
                checks.append(_stairway_check(report, stairway.completed))
                checks.append(_models(stairway, order))
                report.rebuilds, report.replayed = stairway.rebuilds, stairway.replayed
                report.repairs = stairway.repairs
                report.snapshot_note = stairway.tracker_note
            finally:
                bar.done()
                try:
                    stairway.close()
                finally:
                    stairway.drop_checkpoint()
    report.checks = checks
    report.seconds = time.perf_counter() - began
    unwritten = report.write_json(Path(json_path)) if json_path else None

    def commands() -> str:
        return annotations(report, _revision_paths(directory, report), root=settings.root)

    show_report(ui, formatted(report, fmt), commands, fmt=fmt, github_actions=settings.github_actions)
    if unwritten:  # after the report, on its own line; a JSON report on stdout stays a document of its own
        (ui.warn if fmt == "text" else log.warning)(unwritten)
    if not report.ok:
        raise RoundTripFailed(report)
    return report


def _extensions_created(order, setup_sql: Path | None) -> frozenset[str]:
    """The extensions the revisions (and a plain --setup-sql file) create: what the throwaway server should carry."""
    texts = [Path(s.path).read_text(errors="replace") for s in order]
    if setup_sql is not None:
        with setup_sql.open("rb") as fh:
            head = fh.read(SETUP_SQL_READ)
        if not head.startswith(CUSTOM_DUMP):  # a custom-format dump is not read here
            texts.append(head.decode(errors="replace"))
    return created_in("\n".join(texts))


def _revision_paths(directory, report: RoundTripReport) -> dict[str, str]:
    """revision -> its file, for the annotations."""
    return {r.revision: str(directory.get_revision(r.revision).path) for r in report.revisions}


def _require_async_driver(project: Project) -> None:
    """An async env.py gets a ``postgresql+asyncpg`` URL: asyncpg and greenlet must be installed."""
    if not env_is_async(project):
        return
    import importlib.util

    missing = [m for m in ("asyncpg", "greenlet") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(
            f"{project.script.dir}/env.py builds an async engine, so it is offered a postgresql+asyncpg URL, "
            f"but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed",
            hint=f"install the {' and '.join(missing)} package{'s' if len(missing) > 1 else ''} "
            "in the environment that runs dbops (they are in dbops' dev extras)",
        )


def _setup_sql_path(path: str | Path | None) -> Path | None:
    """The --setup-sql file, checked readable before anything starts (it runs later, through psql)."""
    if path is None:
        return None
    path = Path(path)
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise UsageError(
            f"cannot read --setup-sql {path}: {exc.strerror}",
            hint="pass the path of a .sql file (or of a `pg_dump -Fc` archive)",
        ) from None
    return path


def _single_head(directory) -> CheckResult:
    problem = graph.heads_problem(directory)
    if problem is None:
        heads = list(directory.get_heads())
        return CheckResult(SINGLE_HEAD, OK, f"one head ({heads[0]})" if heads else "no revisions")
    return CheckResult(
        SINGLE_HEAD, FAILED, problem.message, details=[f"head {h}" for h in problem.heads], hint=problem.hint
    )


def _downgrades(selected, report: RoundTripReport) -> CheckResult:
    """Unmarked empty downgrades fail, except data-only revisions (their upgrade left the schema as it was).

    Each problem is told once, under its revision; this check names the revisions.
    """
    found = [irr for irr in (irreversible.irreversible_downgrade(s) for s in selected) if irr is not None]
    data_only = {r.revision for r in report.revisions if r.result == DATA_ONLY}
    unmarked = [irr for irr in found if not irr.marked and irr.revision not in data_only]
    marked = [irr for irr in found if irr.marked]
    for irr in unmarked:  # not reached by the walk: the problem still goes under the revision
        result = report.revision(irr.revision)
        if result is not None and not any(p.startswith("irreversible:") for p in result.problems):
            result.problems.append(f"irreversible: {irr.reason} ({irr.path})")
    if unmarked:
        return CheckResult(
            DOWNGRADES,
            FAILED,
            f"{len(unmarked)} revision(s) cannot be downgraded and are not marked irreversible: "
            + ", ".join(irr.revision for irr in unmarked),
            hint="implement downgrade(); if the change truly cannot be undone, put "
            "`irreversible = True` (or a `# dbops: irreversible` comment) in the revision file",
        )
    note = ""
    if marked:
        note += f"; {len(marked)} marked irreversible (upgraded only): " + ", ".join(i.revision for i in marked)
    if data_only:
        note += f"; {len(data_only)} data only: " + ", ".join(sorted(data_only))
    return CheckResult(DOWNGRADES, OK, f"{len(selected)} revisions checked{note}")


def _stairway_check(report: RoundTripReport, completed: bool) -> CheckResult:
    failed = [r for r in report.revisions if r.result == FAILED]
    reached = [r for r in report.revisions if r.up_ms is not None]
    if failed:
        return CheckResult(
            STAIRWAY,
            FAILED,
            f"{len(failed)} of {len(report.revisions)} revisions do not round-trip: "
            + ", ".join(r.revision for r in failed),
            hint="fix downgrade() in the named revision files so it undoes exactly what upgrade() does "
            "(an upgrade that fails on its own: make it work in its own `alembic upgrade`, e.g. "
            "`postgresql.ENUM(..., create_type=False)` for an enum type an earlier revision created), "
            "then run `inv test-rollback --from <revision>`",
        )
    if not completed:  # pragma: no cover - a stop always comes with a failed revision
        return CheckResult(STAIRWAY, FAILED, f"stopped after {len(reached)} revisions")
    return CheckResult(
        STAIRWAY,
        OK,
        f"{len(reached)} revisions: each downgrade restored the schema exactly, each upgrade again reproduced it",
    )


def _models(stairway: Stairway, order) -> CheckResult:
    """dbops' comparison (:mod:`dbops.migrations.compare`: autogenerate, enum labels, CHECK constraints …)
    against the database at the heads, through the project's own env.py: what ``inv status`` and
    ``sync --check-only`` compare.
    """
    if not stairway.completed:
        try:
            stairway.rebuild(order)
        except RoundTripToolError:
            raise
        except Exception as exc:
            return CheckResult(
                MODELS, SKIPPED, f"not checked: the heads could not be reached ({reason(exc, typed=True)})"
            )
    runner = stairway.runner
    lines: list[str] = []
    try:
        diffs, _metadata = runner.check_models()  # `alembic check` + dbops' comparison, on the run's scripts
        lines = [describe_diff(d) for d in diffs]
    except (MigrationError, CommandError, ImportError) as exc:
        text = getattr(exc, "message", None) or str(exc)
        if "MetaData" in text or "target_metadata" in text:
            return CheckResult(MODELS, SKIPPED, "not checked: env.py gives no target_metadata")
        return CheckResult(MODELS, FAILED, f"autogenerate could not run: {reason(exc)}")
    finally:
        if stairway.conn is not None and stairway.conn.in_transaction():
            stairway.conn.commit()
    if lines:
        return CheckResult(
            MODELS,
            FAILED,
            f"the models and the database at head differ ({len(lines)} difference(s))",
            details=lines,
            hint="generate a revision for these changes (`inv sync`), "
            "or fix the migration that should have made them",
        )
    return CheckResult(MODELS, OK, "autogenerate finds no difference at head (with CHECK constraints and server "
                       "defaults); enum labels match")
