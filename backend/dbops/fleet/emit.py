"""``fleet.plan --shards N --emit k8s|github``: one run handed to an engine that already schedules work.

- ``k8s``: a Kubernetes Indexed Job (``completionMode: Indexed``): N pods of the job image, each running
  ``dbops fleet.deploy --env ENV --run RUN --shard $(JOB_COMPLETION_INDEX)/N`` (the index from the pod's
  annotation, as Kubernetes documents it), its variables from one Secret.
- ``github``: a GitHub Actions workflow whose matrix is the N shards, the variables from repository secrets.

No scheduler of dbops' own: the shards meet only in the run's manifest in the object store (claims by
conditional writes, one record per target), and ``dbops fleet.status --run RUN`` reads them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError

EMITS = ("k8s", "github")
#: the actions the workflow uses, pinned to a full commit as this repository's own workflows pin them
CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1"
SETUP_PYTHON = "actions/setup-python@5fda3b95a4ea91299a34e894583c3862153e4b97 # v7.0.0"
#: what every shard needs besides the fleet's own variables: the store of the run manifest
STORE_VARIABLES = ("BACKUP_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3", "AWS_REGION")


@dataclass(frozen=True)
class ShardPlan:
    env: str
    run: str
    shards: int
    #: the variables the fleet's configuration names (``${NAME}``), set from secrets
    variables: tuple[str, ...]
    image: str = "dbops-job:latest"
    secret: str | None = None
    install: str = "pip install dbops"

    def command(self, index: str) -> list[str]:
        return ["dbops", "fleet.deploy", "--env", self.env, "--run", self.run, "--shard", f"{index}/{self.shards}"]

    @property
    def secret_name(self) -> str:
        return self.secret or f"dbops-fleet-{self.env}"


def check_emit(emit: str, shards: int) -> None:
    if emit not in EMITS:
        raise UsageError(f"unknown --emit {emit!r}", hint=f"use --emit with one of: {', '.join(EMITS)}")
    if shards < 1:
        raise UsageError(f"--shards {shards} must be at least 1")


def _job_name(env: str, run: str) -> str:
    """A DNS-1123 label: lower case, digits and '-', at most 63 characters."""
    raw = re.sub(r"[^a-z0-9-]+", "-", f"dbops-fleet-{env}-{run}".lower()).strip("-")
    return raw[:63].rstrip("-")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def kubernetes_job(p: ShardPlan) -> str:
    command = ", ".join(_quoted(a) for a in p.command("$(JOB_COMPLETION_INDEX)"))
    return f"""\
# dbops fleet.deploy --env {p.env}, run {p.run}, in {p.shards} shards: a Kubernetes Indexed Job.
# Written by `dbops fleet.plan --emit k8s`. The pods meet only in the run manifest (BACKUP_URL); after a failed
# or killed pod: `dbops fleet.deploy --env {p.env} --resume {p.run}` finishes exactly what has no record.
apiVersion: batch/v1
kind: Job
metadata:
  name: {_job_name(p.env, p.run)}
  labels:
    app.kubernetes.io/name: dbops-fleet
    app.kubernetes.io/instance: {_quoted(_job_name(p.env, p.run))}
spec:
  completionMode: Indexed
  completions: {p.shards}
  parallelism: {p.shards}
  backoffLimit: 0
  template:
    metadata:
      labels:
        app.kubernetes.io/name: dbops-fleet
    spec:
      restartPolicy: Never
      containers:
        - name: fleet
          image: {_quoted(p.image)}
          command: [{command}]
          env:
            - name: JOB_COMPLETION_INDEX
              valueFrom:
                fieldRef:
                  fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']
          envFrom:
            - secretRef:
                name: {p.secret_name}
"""


def github_workflow(p: ShardPlan) -> str:
    matrix = ", ".join(str(i) for i in range(p.shards))
    names = list(dict.fromkeys((*p.variables, *STORE_VARIABLES)))
    env_lines = "\n".join(f"      {n}: ${{{{ secrets.{n} }}}}" for n in names)
    run = " ".join(p.command('"$SHARD"'))
    return f"""\
# dbops fleet.deploy --env {p.env}, run {p.run}, in {p.shards} shards: a GitHub Actions matrix.
# Written by `dbops fleet.plan --emit github`. The shards meet only in the run manifest (BACKUP_URL); after a
# failed shard: `dbops fleet.deploy --env {p.env} --resume {p.run}` finishes exactly what has no record.
name: dbops fleet {p.env}

on:
  workflow_dispatch:

permissions:
  contents: read

concurrency:
  group: dbops-fleet-{p.env}
  cancel-in-progress: false

jobs:
  shard:
    runs-on: ubuntu-latest
    timeout-minutes: 180
    strategy:
      fail-fast: false
      matrix:
        shard: [{matrix}]
    env:
      SHARD: ${{{{ matrix.shard }}}}
{env_lines}
    steps:
      - uses: {CHECKOUT}
        with:
          persist-credentials: false
      - uses: {SETUP_PYTHON}
        with:
          python-version: "3.12"
      - run: {p.install}
      - run: {run}
"""


def emit(p: ShardPlan, kind: str) -> str:
    check_emit(kind, p.shards)
    return kubernetes_job(p) if kind == "k8s" else github_workflow(p)
