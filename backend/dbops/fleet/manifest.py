"""A fleet run's durable manifest in the object store (BACKUP_URL): its plan, claims, and one record per target.

Keys, under ``fleet/<env>/runs/<run>/``:

- ``plan.json``: the targets in order (name, group, database, schema; never a URL), written once: the first
  shard to arrive writes it (a conditional write), every other shard and every ``--resume`` reads it;
- ``claims/<index>@<epoch>``: a worker's claim on target ``index`` - a conditional write, so two shards never
  run the same target; epoch 0 is the run, each ``--resume`` takes the next epoch (``epochs/<n>``);
- ``records/<outcome>/<index>.json``: the target's outcome and reason, written as soon as it finishes.  The
  outcome is in the key: ``fleet.status`` reads every target's last outcome from one listing.

A target is *finished* when it has a record; a claim without a record was cut off (a killed worker) and
``--resume`` runs it again (its preflight finds it at head when the cut came after the upgrade: nothing is
applied twice).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import asdict, dataclass, field

from ..clock import iso, stamp
from ..errors import UsageError
from ..settings import Settings
from ..storage import Store, open_store

PREFIX = "fleet"


def open_run_store(settings: Settings, *, check: bool = False) -> Store:
    """The store BACKUP_URL names (a local folder for --env local by default): the run manifests live there."""
    store = open_store(settings.backup_location(), endpoint_url=settings.backup_endpoint_url,
                       region=settings.backup_region, sse=settings.backup_sse)
    if check:
        store.check()
    return store


def new_run_id() -> str:
    return f"{stamp()}-{secrets.token_hex(3)}"


@dataclass
class TargetRecord:
    """What happened to one target in a run."""

    index: int
    name: str
    group: str
    #: success | nothing-to-deploy | failed
    outcome: str
    step: str | None = None
    error: str | None = None
    revision_before: list[str] = field(default_factory=list)
    revision_after: list[str] | None = None
    db_changed: bool | None = None
    seconds: float = 0.0
    backup: str | None = None
    recovery: list[str] = field(default_factory=list)
    worker: str = ""
    finished_at: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TargetRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def worker_name() -> str:
    return f"{socket.gethostname()[:30]} pid={os.getpid()}"


class RunManifest:
    """One run's keys in the store."""

    def __init__(self, store: Store, env: str, run_id: str):
        self.store, self.env, self.run_id = store, env, run_id
        self.prefix = store.key(PREFIX, env, "runs", run_id)

    def key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    # -- the plan ----------------------------------------------------------------
    def write_plan(self, plan: dict) -> dict:
        """The run's plan: this one when it is the first, else the one already there (shards agree on it)."""
        data = json.dumps(plan, indent=2, sort_keys=True).encode()
        if self.store.put_if_absent(self.key("plan.json"), data):
            return plan
        return self.plan()

    def plan(self) -> dict:
        found = self.store.get_json(self.key("plan.json"))
        if found is None:
            raise UsageError(f"no fleet run {self.run_id!r} for --env {self.env} in {self.store.describe()}",
                             hint=f"`dbops fleet.status --env {self.env} --runs` lists the runs; a new run "
                             "starts without --resume")
        return found

    # -- claims --------------------------------------------------------------------
    def next_epoch(self) -> int:
        """A new epoch for a ``--resume`` (1, 2, ...): claims of earlier epochs without a record are taken over."""
        n = 1
        while not self.store.put_if_absent(self.key("epochs", str(n)), iso().encode()):
            n += 1
        return n

    def claim(self, index: int, epoch: int) -> bool:
        body = json.dumps({"worker": worker_name(), "at": iso(), "epoch": epoch}).encode()
        return self.store.put_if_absent(self.key("claims", f"{index:05d}@{epoch}"), body)

    def claimed(self) -> dict[int, list[int]]:
        """Target index -> the epochs that claimed it."""
        out: dict[int, list[int]] = {}
        for o in self.store.list(self.key("claims") + "/"):
            name = o.key.rsplit("/", 1)[-1]
            index, _, epoch = name.partition("@")
            if index.isdigit() and epoch.isdigit():
                out.setdefault(int(index), []).append(int(epoch))
        return out

    # -- records -----------------------------------------------------------------
    def record(self, rec: TargetRecord) -> None:
        rec.finished_at = rec.finished_at or iso()
        self.store.put_json(self.key("records", rec.outcome, f"{rec.index:05d}.json"), rec.to_dict())

    def outcomes(self) -> dict[int, str]:
        """Target index -> its outcome, from one listing."""
        out: dict[int, str] = {}
        for o in self.store.list(self.key("records") + "/"):
            parts = o.key[len(self.key("records")) + 1:].split("/")
            if len(parts) == 2 and parts[1].endswith(".json") and parts[1][:-5].isdigit():
                index = int(parts[1][:-5])
                # a target recorded failed, then deployed by a later epoch: success wins
                if out.get(index) in (None, "failed"):
                    out[index] = parts[0]
        return out

    def records(self) -> list[TargetRecord]:
        found = []
        for index, outcome in sorted(self.outcomes().items()):
            data = self.store.get_json(self.key("records", outcome, f"{index:05d}.json"))
            if data is not None:
                found.append(TargetRecord.from_dict(data))
        return found


def runs(store: Store, env: str) -> list[str]:
    """The env's runs, oldest first (run ids begin with their time stamp)."""
    base = store.key(PREFIX, env, "runs") + "/"
    ids = {o.key[len(base):].split("/", 1)[0] for o in store.list(base) if o.key.endswith("/plan.json")}
    return sorted(ids)
