"""Beyond one machine: the run handed to a Kubernetes Indexed Job or a GitHub Actions matrix, shards as separate
processes meeting only in the manifest on S3 (claims by conditional writes), and the claims themselves."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from dbops.settings import parse_backup_url
from dbops.storage import open_store

from .fleet_fixtures import ConnectionSampler, write_fleet

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[3]


def tool(name: str) -> str:
    found = BIN / name
    if not found.exists():
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return str(found)


def dbops(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dbops"), *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})


def kubelet_expand(argv: list[str], env: dict[str, str]) -> list[str]:
    """``$(VAR)`` in a container's command replaced by the container's variable, as the kubelet does."""
    return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), a) for a in argv]


def fleet_of(t, budget: int) -> str:
    return f'''budget = {budget}
backup = "none"
backup-reason = "test tenants, made from a template"
[[tool.dbops.fleet.local.groups]]
name = "canary"
template = "{t.template_url()}"
names = {t.names[:3]!r}
[[tool.dbops.fleet.local.groups]]
name = "rest"
template = "{t.template_url()}"
names = {t.names[3:]!r}
'''


def test_shards_as_kubernetes_runs_them_meet_only_in_the_manifest_on_s3(pg_server, fleet_project, tenants, s3,
                                                                          tmp_path, monkeypatch):
    t = tenants(24)
    write_fleet(fleet_project, fleet_of(t, budget=9))
    monkeypatch.setenv("BACKUP_URL", "s3://dbops-backups/fleet-test")
    job = tmp_path / "job.yaml"
    out = dbops("fleet.plan", "--env", "local", "--shards", "3", "--emit", "k8s", "--run", "k8s-run-1",
                "--output", str(job))
    assert out.returncode == 0, out.stderr
    manifest = yaml.safe_load(job.read_text())
    spec = manifest["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 3
    container = spec["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[-2:] == ["--shard", "$(JOB_COMPLETION_INDEX)/3"]

    def pod(index: int) -> subprocess.CompletedProcess:
        env = {"JOB_COMPLETION_INDEX": str(index)}  # what the annotation's fieldRef gives the container
        argv = kubelet_expand(command, env)
        assert argv[0] == "dbops"
        return subprocess.run([str(BIN / "dbops"), *argv[1:]], capture_output=True, text=True, timeout=600,
                              env={**os.environ, **env}, check=False)

    with ConnectionSampler(pg_server, t.prefix) as sampler, ThreadPoolExecutor(3) as pool:
        pods = list(pool.map(pod, range(3)))
    for p in pods:
        assert p.returncode == 0, p.stdout + p.stderr
    assert sampler.peak <= 9, sampler.peak  # each shard takes its share of the budget
    shards = [re.search(r"shard (\d)/3: (\d+) success", p.stdout) for p in pods]
    assert sorted(int(m.group(1)) for m in shards) == [0, 1, 2]
    assert sum(int(m.group(2)) for m in shards) == 24

    status = dbops("fleet.status", "--run", "k8s-run-1", "--format", "json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["totals"] == {"b2": 24} and {x["last"] for x in data["targets"]} == {"success"}
    # two shards never ran one target: one claim and one record per target
    store = open_store(parse_backup_url(os.environ["BACKUP_URL"]), endpoint_url=s3.endpoint,
                       region="us-east-1")
    base = "fleet-test/fleet/local/runs/k8s-run-1/"
    claims = [o.key for o in store.list(base + "claims/")]
    records = [o.key for o in store.list(base + "records/")]
    assert len(claims) == 24 and len({c.rsplit("/", 1)[1].split("@")[0] for c in claims}) == 24
    assert len(records) == 24


def test_a_claim_is_won_once_on_s3_and_in_a_folder(s3, tmp_path):
    stores = [open_store(("s3", "dbops-backups", "claims-test"), endpoint_url=s3.endpoint, region="us-east-1"),
              open_store(("folder", str(tmp_path / "store"), ""))]
    for store in stores:
        with ThreadPoolExecutor(8) as pool:
            won = list(pool.map(lambda i, st=store: st.put_if_absent("runs/r/claims/00001@0", f"{i}".encode()),
                                range(8)))
        assert won.count(True) == 1, (store.describe(), won)
        assert store.get_bytes("runs/r/claims/00001@0") == str(won.index(True)).encode()


def test_the_kubernetes_job_validates_against_the_kubernetes_schema(fleet_project, tmp_path, pg_server):
    write_fleet(fleet_project, '[[tool.dbops.fleet.local.groups]]\ntemplate = "postgresql://app:${TENANT_PW}@db/'
                               '{name}"\nnames = ["a"]\n')
    job = tmp_path / "job.yaml"
    out = dbops("fleet.plan", "--env", "local", "--shards", "4", "--emit", "k8s", "--output", str(job))
    assert out.returncode == 0, out.stderr
    check = subprocess.run([tool("kubernetes-validate"), "--strict", str(job)], capture_output=True, text=True,
                           timeout=120, check=False)
    assert check.returncode == 0 and "passed for resource job/" in check.stdout, check.stdout + check.stderr
    # the negative control: the validator looks (a misspelt field fails it)
    bad = tmp_path / "bad.yaml"
    bad.write_text(job.read_text().replace("completionMode: Indexed", "completionMod: Indexed"))
    refused = subprocess.run([tool("kubernetes-validate"), "--strict", str(bad)], capture_output=True, text=True,
                             timeout=120, check=False)
    assert refused.returncode != 0 and "completionMod" in refused.stdout + refused.stderr, refused.stdout


def test_the_github_matrix_is_actionlint_and_zizmor_clean(fleet_project, tmp_path):
    write_fleet(fleet_project, '[[tool.dbops.fleet.local.groups]]\ntemplate = "postgresql://app:${TENANT_PW}@db/'
                               '{name}"\nnames = ["a"]\n')
    workflow = tmp_path / ".github" / "workflows" / "fleet.yml"
    workflow.parent.mkdir(parents=True)
    out = dbops("fleet.plan", "--env", "local", "--shards", "4", "--emit", "github", "--run", "gh-run",
                "--output", str(workflow))
    assert out.returncode == 0, out.stderr
    data = yaml.safe_load(workflow.read_text())
    job = data["jobs"]["shard"]
    assert job["strategy"]["matrix"]["shard"] == [0, 1, 2, 3]
    assert job["env"]["TENANT_PW"] == "${{ secrets.TENANT_PW }}"
    assert 'dbops fleet.deploy --env local --run gh-run --shard "$SHARD"/4' in workflow.read_text()
    lint = subprocess.run([tool("actionlint"), "-no-color", str(workflow)], capture_output=True, text=True,
                          timeout=120, check=False, cwd=tmp_path)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    audit = subprocess.run([tool("zizmor"), "--offline", "--no-progress", str(workflow.parent)], capture_output=True,
                           text=True, timeout=120, check=False, cwd=tmp_path)
    assert audit.returncode == 0 and "No findings to report" in audit.stdout, audit.stdout + audit.stderr


def test_plan_refuses_an_unknown_engine_or_no_shards(fleet_project):
    write_fleet(fleet_project, '[[tool.dbops.fleet.local.groups]]\nurls = ["postgresql://db/a"]\n')
    for args, words in ((["--emit", "nomad"], "unknown --emit 'nomad'"),
                        (["--shards", "0"], "--shards must be at least 1")):
        out = dbops("fleet.plan", "--env", "local", *args)
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    assert not any(fleet_project.glob("*.yaml"))
