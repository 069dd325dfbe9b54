"""Many databases: one change rolled out across a fleet of tenant databases or schemas (``dbops fleet.*``).

A pipeline above the deploy: each target is deployed with the deploy's own steps, the fleet adds the waves,
the budget, the run manifest and the shards.

- :mod:`.targets`     the fleet of an environment (``[tool.dbops.fleet.<env>]`` or a fleet file): groups in
                      order, targets (database per tenant, schema per tenant), the budget, the backup policy
- :mod:`.status`      ``fleet.status``: revisions, pending, last outcome, lock; a schema fleet in UNION ALL reads
- :mod:`.manifest`    the run manifest in the object store: plan, claims (conditional writes), records
- :mod:`.target_run`  one target's deploy: the deploy pipeline's steps on that target
- :mod:`.rollout`     ``fleet.deploy``: backups by policy, the rehearsal on a copy of the canary, lint once, waves,
                      the worker pool within the budget, stop rules, resume
- :mod:`.report`      the fleet report and each failed target's recovery command
- :mod:`.emit`        ``fleet.plan``: a Kubernetes Indexed Job or a GitHub Actions matrix of shards

:func:`restore` (``fleet.restore``) puts a failed target's backup back, its URL from the configuration.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DbopsError, UsageError
from ..migrations import Project
from ..settings import Settings
from ..ui import SILENT, UI
from .emit import EMITS, ShardPlan, emit
from .manifest import RunManifest, TargetRecord, new_run_id, open_run_store, runs
from .status import FleetStatus, status
from .targets import Fleet, Target, fleet_table, load_fleet, variables

# the rollout (fleet.deploy) is imported from dbops.fleet.rollout by its task: it loads the deploy pipeline, the
# dry run and Squawk, which fleet.status and fleet.plan never need (start-up time)
__all__ = ["EMITS", "Fleet", "FleetStatus", "RunManifest", "ShardPlan", "Target", "TargetRecord", "fleet_status",
           "load_fleet", "plan", "restore", "status"]


def fleet_status(settings: Settings, fleet: Fleet, *, run: str | None = None) -> tuple[FleetStatus, list[str]]:
    """``fleet.status``: the fleet read now, with the last outcomes of ``run`` (default: the newest run);
    (the status, warnings)."""
    warnings: list[str] = []
    manifest = None
    try:
        store = open_run_store(settings)
        chosen = run or (runs(store, settings.env) or [None])[-1]
        if chosen is not None:
            manifest = RunManifest(store, settings.env, chosen)
            manifest.plan()  # an unknown --run is a UsageError here
    except DbopsError as exc:
        if run is not None:
            raise
        warnings.append(f"last outcomes unknown: the run manifest could not be read ({exc.message})")
        manifest = None
    return status(settings, fleet, Project(settings.alembic_ini), manifest=manifest), warnings


def restore(settings: Settings, fleet: Fleet, name: str, backup: str, *, confirmed: str | None,
            jobs: int | None = None, ui: UI = SILENT):
    """``fleet.restore``: the backup ``backup`` put back in place of target ``name``'s database (its URL from the
    fleet's configuration and the environment); replaced only when ``confirmed`` is that database's name."""
    from .. import backup as backups  # start-up: fleet.status never restores

    t = fleet.target(name)
    if t.schema is not None:
        raise UsageError(f"{name} is schema {t.schema} of database {t.database}: a backup is of the whole database, "
                         "and restoring it in place would roll back every schema in it",
                         hint=f"restore it beside the database (`dbops restore --env {settings.env} --backup "
                         f"{backup} --target-url URL-of-a-new-database`) and copy the schema back from there")
    return backups.restore_backup(settings.with_(database_url=t.url), backup, t.url, in_place_confirmed_name=confirmed,
                                  jobs=jobs, ui=ui)


def plan(settings: Settings, *, shards: int, kind: str, run: str | None = None, fleet_file: str | Path | None = None,
         image: str = "dbops-job:latest", secret: str | None = None, install: str = "pip install dbops") -> str:
    """``fleet.plan``: the run handed to Kubernetes or GitHub Actions in ``shards`` shards (nothing connects)."""
    table, _ = fleet_table(settings, fleet_file)
    p = ShardPlan(settings.env, run or new_run_id(), shards, variables(table), image=image, secret=secret,
                  install=install)
    return emit(p, kind)
