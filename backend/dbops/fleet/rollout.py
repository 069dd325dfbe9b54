"""``fleet.deploy``: one change rolled out across the fleet in waves, within a connection budget, resumable.

1. The run: a new one, ``--run RUN`` (every shard of one run names it; the first writes the plan), or
   ``--resume RUN`` (a new epoch: what has no record runs, nothing recorded runs again).
2. This process's targets: the plan's, or every N-th from ``--shard I/N`` (Kubernetes' completion index).
3. Once for the change: the targets' revisions read (:mod:`.status`); the backups the policy takes before the
   first wave (a schema fleet's shared database, ``per-database``, ``per-server``: one pass per server, a
   server-level entry in the manifest); the rehearsal of the pending revisions on a restored copy of the first
   canary target (:mod:`dbops.rehearse`, on its policy backup or one taken for it); the pending revisions' dry
   run and Squawk's lint.  Error-level findings of either stop the rollout before any target changes unless
   ``--allow-unsafe``.
4. The waves: the groups in order (the canary first), each in batches.  A pool of worker processes (the fence
   around env.py sets process-wide variables: one env.py per process) deploys each target with the deploy's
   own steps (:mod:`.target_run`); a server never has more than ``budget // 4`` targets in flight (``// 3``
   when their runs take no backup: what one target's deploy holds at most), a shared database one schema at a
   time (its deploy lock).  Each worker claims its target in the manifest (a conditional write) and records
   the outcome as soon as it is known.
5. A failure in a canary group stops the rollout before any other group (shards wait for the whole canary
   group in the manifest); more than ``--max-failures`` failures stop it after the wave.
6. The report (JSON under backups/ and in the manifest), one webhook summary; :class:`FleetFailed` when a
   target failed or the rollout stopped, each failed target with its own recovery command.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass

from .. import dryrun, rehearse, squawk, webhook
from ..clock import iso, stamp
from ..deploy import backup_step
from ..errors import DbopsError, FleetFailed, LintFailed, RehearsalFailed, UsageError
from ..migrations import Project
from ..redact import mask_url, reason
from ..settings import Settings
from ..ui import SILENT, UI
from .manifest import RunManifest, TargetRecord, new_run_id, open_run_store, worker_name
from .report import FleetReport, NotRun, restore_command
from .status import read_states
from .target_run import deploy_target
from .targets import Fleet, Target


@dataclass
class RolloutOptions:
    #: join (or start) this run: every shard of one run names it
    run: str | None = None
    #: finish this run: what has no record yet
    resume: str | None = None
    #: (index, count): this process deploys every count-th target from index
    shard: tuple[int, int] | None = None
    #: only these targets (with --resume: a failed one runs again)
    targets: tuple[str, ...] = ()
    #: None: the fleet's max-failures
    max_failures: int | None = None
    allow_unsafe: bool = False
    allow_multiple: bool = False
    #: the rehearsal on a copy of the canary: True --rehearse, False --no-rehearse, None: deploy's default
    rehearse: bool | None = None
    #: rehearse on this server (a scratch database there) instead of a throwaway local one
    rehearse_server: object | None = None
    #: how long a shard waits for the other shards' canary targets
    wave_wait_s: float = 3600.0
    poll_s: float = 1.0


def parse_shard(raw: str | None) -> tuple[int, int] | None:
    """``I/N`` (0 <= I < N): Kubernetes' ``$JOB_COMPLETION_INDEX/N``, a matrix's ``${{ matrix.shard }}/N``."""
    if raw is None:
        return None
    index, _, count = str(raw).partition("/")
    if not (index.strip().isdigit() and count.strip().isdigit()) or not 0 <= int(index) < int(count):
        raise UsageError(f"--shard {raw!r} is not INDEX/COUNT with 0 <= INDEX < COUNT",
                         hint="e.g. --shard 0/4 (Kubernetes: --shard $(JOB_COMPLETION_INDEX)/4)")
    return int(index), int(count)


def plan_of(fleet: Fleet, run_id: str) -> dict:
    """The run's plan: groups and targets in order, no URL (the manifest holds no secret)."""
    index, targets = 0, []
    for g in fleet.groups:
        for t in g.targets:
            targets.append({"index": index, **t.to_dict()})
            index += 1
    return {"run": run_id, "env": fleet.env, "created_at": iso(), "budget": fleet.budget, "backup": fleet.backup,
            "groups": [{"name": g.name, "canary": g.canary, "batch": g.batch} for g in fleet.groups],
            "targets": targets}


def deploy(settings: Settings, fleet: Fleet, opts: RolloutOptions | None = None, *, ui: UI = SILENT) -> FleetReport:
    """Roll the pending revisions out across ``fleet``; returns the report, or raises FleetFailed carrying it."""
    opts = opts or RolloutOptions()
    return _Rollout(settings, fleet, opts, ui).execute()


class _Rollout:
    def __init__(self, settings: Settings, fleet: Fleet, opts: RolloutOptions, ui: UI):
        self.settings, self.fleet, self.opts, self.ui = settings, fleet, opts, ui
        if opts.run and opts.resume:
            raise UsageError("--run and --resume contradict each other",
                             hint="--run RUN starts or joins a run (shards); --resume RUN finishes one")
        self.project = Project(settings.alembic_ini)
        self.max_failures = fleet.max_failures if opts.max_failures is None else opts.max_failures
        #: targets in flight per server in this process: a shard takes its share of the fleet's budget
        share = fleet.budget // opts.shard[1] if opts.shard else fleet.budget
        self.share = max(1, share)
        self.slots = max(1, share // fleet.connections_per_target)

    def execute(self) -> FleetReport:
        started = time.monotonic()
        settings, opts, ui = self.settings, self.opts, self.ui
        store = open_run_store(settings, check=True)
        run_id = opts.resume or opts.run or new_run_id()
        manifest = self.manifest = RunManifest(store, settings.env, run_id)
        if opts.resume:
            plan, epoch = manifest.plan(), manifest.next_epoch()
        else:
            plan, epoch = manifest.write_plan(plan_of(self.fleet, run_id)), 0
        shard = opts.shard
        r = self.report = FleetReport(settings.env, run_id, shard=f"{shard[0]}/{shard[1]}" if shard else None,
                                      epoch=epoch)
        self.epoch, self.plan = epoch, plan
        planned = self.planned(plan)
        mine = [(i, t) for i, t in planned if shard is None or i % shard[1] == shard[0]]
        todo = self.unfinished(mine)
        ui.heading(f"fleet deploy --env {settings.env}: run {run_id}" + (f" shard {r.shard}" if shard else "")
                   + f", {len(todo)} of {len(mine)} target(s) to do")
        try:
            if todo:
                self.states, _ = read_states(self.settings, [t for _, t in todo], self.share)
                r.backup = self.backups_once([t for _, t in todo])
                r.rehearsal = self.rehearse_canary(todo)
                r.lint = self.lint_once()
                self.waves(todo)
            else:
                r.lint, r.backup = "nothing to do", "nothing to do"
        finally:
            r.finished_at, r.seconds = iso(), time.monotonic() - started
            self.finish(store)
        if not r.ok:
            raise FleetFailed(r)
        return r

    # -- which targets -------------------------------------------------------------
    def planned(self, plan: dict) -> list[tuple[int, Target]]:
        """The plan's targets (their URLs from the configuration: the manifest has none), in plan order."""
        by_name = {t.name: t for t in self.fleet.targets}
        out = []
        missing = [p["name"] for p in plan["targets"] if p["name"] not in by_name]
        if missing:
            raise UsageError(f"run {plan['run']} planned {len(missing)} target(s) this fleet configuration does not "
                             f"have: {', '.join(missing[:10])}",
                             hint=f"check the fleet configuration ({self.fleet.source}) and its variables; the run's "
                             "targets are fixed when it starts")
        for p in plan["targets"]:
            out.append((p["index"], dataclasses.replace(by_name[p["name"]], group=p["group"])))
        unknown = [n for n in self.opts.targets if n not in {t.name for _, t in out}]
        if unknown:
            raise UsageError(f"--target {', '.join(unknown)}: not in run {plan['run']}",
                             hint="`dbops fleet.status --env ENV --run RUN` lists the run's targets")
        return out

    def unfinished(self, mine: list[tuple[int, Target]]) -> list[tuple[int, Target]]:
        """Targets without a record (with --target: those named, a failed one too); a target another worker
        of this epoch claimed is left to it."""
        outcomes, claims = self.manifest.outcomes(), self.manifest.claimed()
        todo = []
        for i, t in mine:
            if self.opts.targets and t.name not in self.opts.targets:
                continue
            outcome = outcomes.get(i)
            if outcome is not None and not (self.opts.targets and outcome == "failed"):
                continue
            if self.epoch in claims.get(i, []):
                self.report.not_run.append(NotRun(t.name, t.group, "claimed by another worker of this run, no "
                                                  "record yet (a running shard, or one that was killed)"))
                continue
            todo.append((i, t))
        return todo

    # -- once for the change -------------------------------------------------------
    def rehearse_canary(self, todo: list[tuple[int, Target]]) -> dict:
        """The pending revisions rehearsed (:mod:`dbops.rehearse`) on a restored copy of the first target to be
        deployed that has any pending (the canary group's first, in plan order), before any target changes.
        Its backup: the policy's (taken before the first wave), else one taken now for the rehearsal.  Skipped
        with a reason as deploy's is (``--no-rehearse``; on by default when the backup is at most
        DBOPS_REHEARSE_AUTO_MB); error-level findings stop the rollout unless ``--allow-unsafe``."""
        opts, settings, ui = self.opts, self.settings, self.ui
        rh: dict = {"ran": False, "why": "", "target": None, "backup": None}

        def skip(why: str) -> dict:
            rh["why"] = why
            ui.say(f"rehearsal skipped: {why}")
            return rh

        if opts.rehearse is False:
            return skip("--no-rehearse")
        if opts.rehearse is None and settings.rehearse_auto_mb <= 0:
            return skip("off by default (DBOPS_REHEARSE_AUTO_MB=0); --rehearse runs it")
        states = {s.name: s for s in self.states}
        canaries = {g["name"] for g in self.plan["groups"] if g["canary"]}
        order = [t for _, t in todo if t.group in canaries] + [t for _, t in todo if t.group not in canaries]
        chosen = next((t for t in order if states.get(t.name) and states[t.name].revision is not None
                       and self.project.pending(tuple(states[t.name].revision))), None)
        if chosen is None:
            return skip("no target to do has a pending revision that could be read")
        rh["target"] = chosen.name
        if chosen.schema is not None:
            return skip(f"the first target, {chosen.name}, is a schema: a copy of its database would be rehearsed "
                        "without the tenant's search_path (schema fleets are not rehearsed)")
        key = self.taken.get(chosen.place)
        if key is None and self.fleet.backup == "none" and opts.rehearse is None:
            return skip(f"backup = \"none\" ({self.fleet.backup_reason}): no backup of {chosen.name} to rehearse "
                        "on; --rehearse takes one for the rehearsal")
        s = settings.with_(database_url=chosen.url)
        if key is None:
            ui.say(f"backing up {chosen.describe()} for the rehearsal on its copy...")
            key = backup_step.take(s, chosen.database_url, None).key
            rh["backup_taken_for_rehearsal"] = True
        rh["backup"] = key
        run, why, _ = rehearse.deploy_decision(s, opts.rehearse, key, server_url=opts.rehearse_server)
        if not run:
            return skip(why)
        rh["ran"], rh["why"] = True, why
        ui.heading(f"rehearse on a copy of {chosen.name} ({key}; {why})")
        found = rehearse.rehearse(s, backup=key, server_url=opts.rehearse_server, ui=ui)
        ui.say(rehearse.render(found))
        rehearse.write_json(found, settings.backups_dir
                            / f"fleet_{settings.env}_{self.manifest.run_id}_e{self.epoch}_rehearse_{stamp()}.json")
        rh.update(errors=len(found.errors), findings=[f.to_dict() for f in found.findings], failure=found.failure,
                  expected_upgrade_s=found.upgrade_s, path=found.path)
        if found.errors:
            nothing_ran = any(f.kind in rehearse.NOTHING_RAN for f in found.errors)
            if nothing_ran or not opts.allow_unsafe:
                stop = (f"the rehearsal on a copy of {chosen.name} found {len(found.errors)} error-level "
                        "finding(s): no target was changed")
                self.report.stopped = stop
                self.report.not_run += [NotRun(t.name, t.group, f"not started: {stop}") for _, t in todo]
                self.report.rehearsal = rh
                self.report.lint = "not run: the rehearsal stopped the rollout first"
                ui.fail(f"rollout stopped: {stop}")
                if nothing_ran:
                    rehearse.stop_if_unsafe(found)
                raise RehearsalFailed(found, hint=(
                    "no target was changed. Rewrite the revision the safer way shown for each finding (a new "
                    "revision), then deploy the fleet again; or, after deciding the risk is acceptable:\n"
                    f"  dbops fleet.deploy --env {settings.env} --resume {self.manifest.run_id} --allow-unsafe"))
            ui.warn(f"the rehearsal found {len(found.errors)} error-level finding(s): deployed with --allow-unsafe")
        return rh

    def lint_once(self) -> str:
        """The pending revisions of the targets to do, dry-run and linted once; LintFailed stops everything."""
        revisions: list[str] = []
        for current in sorted({tuple(sorted(s.revision)) for s in self.states if s.revision is not None}):
            for script in self.project.pending(current):
                if script.revision not in revisions:
                    revisions.append(script.revision)
        if not revisions:
            return "nothing pending"
        found = dryrun.lint_revisions(self.project, revisions)
        self.ui.say(dryrun.findings_text(found))
        if found.errors and not self.opts.allow_unsafe:
            raise LintFailed(found.findings, details=squawk.render_findings(found.errors),
                             hint="rewrite the migration the safer way shown above, or pass --allow-unsafe after "
                             "deciding the lock/data risk is acceptable; no target was changed")
        note = f"{len(revisions)} revision(s) linted once for the fleet: {len(found.findings)} finding(s)"
        if found.errors:
            note += f", {len(found.errors)} error-level accepted (--allow-unsafe)"
        self.ui.ok(note)
        return note

    def backups_once(self, targets: list[Target]) -> str:
        """The backup policy applied: ``none`` (its reason), ``per-target`` (each database target in its own run,
        a schema fleet's shared database once now: a dump is of the whole database), ``per-database`` (every
        database once now, before the first wave), ``per-server`` (:meth:`server_passes`)."""
        fleet = self.fleet
        self.taken: dict[tuple[str, str], str] = {}
        if fleet.backup == "none":
            return f"none: {fleet.backup_reason}"
        if fleet.backup == "per-server":
            return self.server_passes(targets)
        now = {t.place: t for t in targets if t.schema is not None or fleet.backup == "per-database"}
        for place, t in now.items():
            self.ui.say(f"backing up {mask_url(t.database_url)} once, before any of its targets changes...")
            taken = backup_step.take(self.settings.with_(database_url=t.database_url), t.database_url, None)
            self.taken[place] = taken.key
        line = "per target, before its upgrade" if fleet.backup == "per-target" else "once per database"
        return line + (f"; {len(self.taken)} database(s) backed up before the first wave" if self.taken else "")

    def server_passes(self, targets: list[Target]) -> str:
        """``per-server``: before the first wave, one pass per server backs up each of its target databases once
        (a schema fleet's database once), one database after another; the passes of different servers run at the
        same time (at most ``budget`` passes at once).  A pass holds one connection to its server (pg_dump's).
        Each pass writes one server-level entry in the run manifest listing every database's backup key."""
        by_server: dict[str, dict[tuple[str, str], Target]] = {}
        for t in targets:
            by_server.setdefault(t.server, {}).setdefault(t.place, t)
        shard = f"-shard{self.opts.shard[0]}of{self.opts.shard[1]}" if self.opts.shard else ""

        def one_pass(server: str, places: dict[tuple[str, str], Target]) -> None:
            entry = {"server": server, "epoch": self.epoch, "shard": self.report.shard, "started_at": iso(),
                     "databases": []}
            try:
                for place, t in places.items():
                    self.ui.say(f"backing up {mask_url(t.database_url)} (server {server}'s pass, before the first "
                                "wave)...")
                    taken = backup_step.take(self.settings.with_(database_url=t.database_url), t.database_url, None)
                    self.taken[place] = taken.key
                    entry["databases"].append({"database": t.database, "key": taken.key, "size": taken.size,
                                               "sha256": taken.sha256})
                entry["outcome"] = "complete"
            except DbopsError as exc:
                entry["outcome"], entry["error"] = "failed", exc.message
                raise
            finally:
                entry["finished_at"] = iso()
                name = f"{server.replace(':', '_').replace('/', '_')}@e{self.epoch}{shard}.json"
                self.manifest.store.put_json(self.manifest.key("backups", name), entry)

        with ThreadPoolExecutor(max_workers=max(1, min(len(by_server), self.fleet.budget)),
                                thread_name_prefix="fleet-backup") as pool:
            futures = [pool.submit(one_pass, server, places) for server, places in by_server.items()]
        for fut in futures:
            fut.result()  # the first failed pass stops the rollout: no target has changed
        return (f"once per server before the first wave: {len(self.taken)} database(s) on {len(by_server)} "
                f"server(s), one after another on each server (keys in the run manifest's backups/)")

    def backup_for(self, t: Target) -> str:
        """What the target's own run does about a backup: ``per-target`` takes one, anything else says why not."""
        if self.fleet.backup == "none":
            return f"none: {self.fleet.backup_reason}"
        if t.place in self.taken:
            how = "its server's backup pass" if self.fleet.backup == "per-server" else "its database"
            return f"taken once for {how} before the first wave: {self.taken[t.place]}"
        return "per-target"

    # -- the waves -------------------------------------------------------------------
    def waves(self, todo: list[tuple[int, Target]]) -> None:
        r, opts, ui = self.report, self.opts, self.ui
        servers = {t.server for _, t in todo}
        workers = max(1, min(self.slots * len(servers), len(todo)))
        r.workers = workers
        left = list(todo)
        stop: str | None = None
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
        try:
            for g in self.plan["groups"]:
                members = [(i, t) for i, t in left if t.group == g["name"]]
                size = g.get("batch") or len(members) or 1
                for start in range(0, len(members), size):
                    wave = members[start:start + size]
                    ui.say(f"wave: group {g['name']}{' (canary)' if g['canary'] else ''}, {len(wave)} target(s)")
                    for item in self.run_wave(executor, wave, workers):
                        left = [x for x in left if x[1].name != item.name]
                        if isinstance(item, NotRun):
                            r.not_run.append(item)
                        else:
                            r.records.append(item)
                    stop = self.stop_reason(g)
                    if stop:
                        break
                if not stop and g["canary"] and opts.shard is not None:
                    stop = self.wait_for_group(g)
                if stop:
                    break
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        if stop:
            r.stopped = stop
            ui.fail(f"rollout stopped: {stop}")
            r.not_run += [NotRun(t.name, t.group, f"not started: {stop}") for _, t in left]

    def stop_reason(self, group: dict) -> str | None:
        failed = [x for x in self.report.records if x.failed]
        if group["canary"]:
            mine = [x.name for x in failed if x.group == group["name"]]
            if mine:
                return f"the canary group {group['name']!r} failed ({', '.join(mine[:5])}): no other group was started"
        if self.opts.shard is not None:  # every shard's failures count
            count = sum(1 for o in self.manifest.outcomes().values() if o == "failed")
        else:
            count = len(failed)
        if count > self.max_failures:
            return f"{count} target(s) failed, more than --max-failures {self.max_failures}"
        return None

    def wait_for_group(self, group: dict) -> str | None:
        """Shards: the whole canary group (every shard's part) recorded before the next group starts."""
        indexes = [t["index"] for t in self.plan["targets"] if t["group"] == group["name"]]
        deadline = time.monotonic() + self.opts.wave_wait_s
        while True:
            outcomes = self.manifest.outcomes()
            missing = [i for i in indexes if i not in outcomes]
            if not missing:
                failed = [i for i in indexes if outcomes[i] == "failed"]
                names = {t["index"]: t["name"] for t in self.plan["targets"]}
                return (f"the canary group {group['name']!r} failed on another shard "
                        f"({', '.join(names[i] for i in failed[:5])}): no other group was started") if failed else None
            if time.monotonic() > deadline:
                return (f"waited {self.opts.wave_wait_s:g}s for {len(missing)} canary target(s) of other shards; "
                        "no other group was started")
            time.sleep(self.opts.poll_s)

    def run_wave(self, executor: ProcessPoolExecutor, wave: list[tuple[int, Target]], workers: int):
        """Deploy the wave's targets, at most ``slots`` per server and one per shared database at once; yields
        each record (or NotRun) as it finishes."""
        pending = list(wave)
        running: dict[Future, tuple[int, Target]] = {}
        per_server: Counter = Counter()
        per_place: Counter = Counter()
        slots = self.slots
        while pending or running:
            for item in list(pending):
                if len(running) >= workers:
                    break
                _, t = item
                if per_server[t.server] >= slots or (t.schema and per_place[t.place] >= 1):
                    continue
                running[executor.submit(_work, self.job(*item))] = item
                per_server[t.server] += 1
                per_place[t.place] += 1
                pending.remove(item)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                index, t = running.pop(fut)
                per_server[t.server] -= 1
                per_place[t.place] -= 1
                yield self.result(fut, index, t)

    def job(self, index: int, t: Target) -> _Job:
        return _Job(self.settings, t, index, self.epoch, self.manifest.run_id,
                    self.backup_for(t),
                    self.report.lint, self.recovery_command(t), self.opts.allow_multiple, self.taken.get(t.place))

    def recovery_command(self, t: Target) -> str:
        return f"dbops fleet.deploy --env {self.settings.env} --resume {self.manifest.run_id} --target {t.name}"

    def result(self, fut: Future, index: int, t: Target) -> TargetRecord | NotRun:
        try:
            item = fut.result()
        except Exception as exc:  # the worker itself broke (killed, out of memory): its target's state is unknown
            restore = restore_command(self.settings.env, t, self.taken.get(t.place))
            item = TargetRecord(index, t.name, t.group, "failed", step="worker",
                                error=f"the worker ended without a record: {reason(exc)}",
                                backup=self.taken.get(t.place),
                                recovery=[self.recovery_command(t), *([restore] if restore else [])],
                                worker=worker_name())
            try:
                self.manifest.record(item)
            except DbopsError as err:
                item.error += f" (and the record could not be written: {err.message})"
        if isinstance(item, TargetRecord):
            say = self.ui.fail if item.failed else self.ui.ok
            detail = f"failed at {item.step}: {item.error}" if item.failed else \
                f"{', '.join(item.revision_before) or '(empty)'} -> {', '.join(item.revision_after or [])}"
            say(f"{item.name}: {item.outcome} ({detail}) in {item.seconds:.1f}s")
        return item

    # -- the end ------------------------------------------------------------------------
    def finish(self, store) -> None:
        r, settings = self.report, self.settings
        r.path = r.write(settings.backups_dir)
        shard = f"shard{r.shard.replace('/', 'of')}" if r.shard else "all"
        try:
            store.put_json(self.manifest.key("reports", f"{shard}-e{r.epoch}.json"), r.to_dict())
        except DbopsError as exc:
            self.ui.warn(f"could not store the fleet report in the manifest: {exc.message}")
        why = webhook.send(settings.notify_webhook_url, r.notification())
        if why:
            self.ui.warn(f"notification failed: {why}")
        self.ui.say("")
        self.ui.say(r.text())


@dataclass
class _Job:
    """What a worker process needs for one target (pickled to it)."""

    settings: Settings
    target: Target
    index: int
    epoch: int
    run_id: str
    backup: str
    lint_note: str
    recovery: str
    allow_multiple: bool
    backup_key: str | None = None


#: a worker process's store and project, made once per process
_per_process: dict[str, object] = {}


def _work(job: _Job) -> TargetRecord | NotRun:
    """In a worker process: claim the target, deploy it, record the outcome in the manifest."""
    if _per_process.get("pid") != os.getpid():
        _per_process.clear()
        _per_process.update(pid=os.getpid(), store=open_run_store(job.settings),
                            project=Project(job.settings.alembic_ini))
    manifest = RunManifest(_per_process["store"], job.settings.env, job.run_id)
    t = job.target
    if not manifest.claim(job.index, job.epoch):
        return NotRun(t.name, t.group, "claimed by another worker of this run")
    rec = deploy_target(job.settings, _per_process["project"], t, index=job.index, backup=job.backup,
                        lint_note=job.lint_note, recovery=job.recovery, allow_multiple=job.allow_multiple,
                        backup_key=job.backup_key)
    manifest.record(rec)
    return rec
