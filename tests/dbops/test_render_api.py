"""``inv render-job`` and dbops.render against a local stand-in of the Render job API (real HTTP)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dbops import render_api as render
from dbops.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from render_api import RenderStandIn  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
KEY = "rnd_TEST-k3y-d0-n0t-pr1nt"


def inv_render_job(stand_in: RenderStandIn, *args: str, key: str = KEY, service: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RENDER_", "PROD_RENDER_"))}
    env.update({"RENDER_API_KEY": key, "RENDER_API_URL": stand_in.url,
                "RENDER_JOB_SERVICE_ID": service or stand_in.service_id})
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "render-job", "--poll", "0.05",
                           *args], capture_output=True, text=True, env=env, timeout=120)


def test_render_job_succeeds_end_to_end_and_never_prints_the_key():
    with RenderStandIn(api_key=KEY) as api:
        r = inv_render_job(api, "--env", "prod")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "succeeded" in out
    post = api.requests[0]
    assert post["method"] == "POST" and post["path"] == f"/v1/services/{api.service_id}/jobs"
    assert post["body"] == {"startCommand": "inv deploy --env prod"}
    assert all(req["auth"] == f"Bearer {KEY}" for req in api.requests)
    assert [q["method"] for q in api.requests].count("GET") >= 2  # polled through running to succeeded
    assert KEY not in out


def test_a_failed_job_exits_1_with_the_job_id():
    with RenderStandIn(api_key=KEY, statuses=("pending", "running", "failed")) as api:
        r = inv_render_job(api, "--env", "prod", "--command", "inv deploy --env prod --allow-multiple")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "job-0001 ended failed" in out
    assert api.requests[0]["body"] == {"startCommand": "inv deploy --env prod --allow-multiple"}
    assert KEY not in out


def test_a_bad_api_key_exits_3_with_a_clear_message_and_no_key():
    with RenderStandIn(api_key=KEY) as api:
        r = inv_render_job(api, key="rnd_WRONG-s3cr3t-value")
    out = r.stdout + r.stderr
    assert r.returncode == 3, out
    assert "HTTP 401" in out and "refused the API key" in out
    assert "rnd_WRONG-s3cr3t-value" not in out and KEY not in out
    assert [q["method"] for q in api.requests] == ["POST"]  # no job was created, nothing polled


def test_an_unknown_service_is_a_404_naming_the_setting():
    with RenderStandIn(api_key=KEY) as api:
        r = inv_render_job(api, service="srv-doesnotexist")
    out = r.stdout + r.stderr
    assert r.returncode == 3, out
    assert "service srv-doesnotexist not found" in out and "RENDER_JOB_SERVICE_ID" in out


def test_a_job_that_does_not_finish_in_time_raises_a_timeout():
    with RenderStandIn(api_key=KEY, statuses=("pending", "running")) as api:
        config = render.RenderConfig(api_key=KEY, service_id=api.service_id, api_url=api.url)
        with pytest.raises(render.RenderJobTimeout, match="still running after 0s"):
            render.run_job(config, "inv deploy --env prod", timeout=0.3, poll_interval=0.05)


def test_an_unreachable_api_says_so():
    config = render.RenderConfig(api_key=KEY, service_id="srv-x", api_url="http://127.0.0.1:9")
    with pytest.raises(render.RenderError, match="ConnectError") as info:
        render.run_job(config, "inv deploy --env prod")
    assert KEY not in info.value.render()


def test_settings_scoped_by_env_and_missing_key_named():
    cfg = render.RenderConfig.from_env("prod", {"RENDER_API_KEY": "rnd_plain", "PROD_RENDER_API_KEY": "rnd_prod",
                                                "RENDER_JOB_SERVICE_ID": "srv-1"})
    assert (cfg.api_key, cfg.service_id, cfg.api_url) == ("rnd_prod", "srv-1", "https://api.render.com")
    assert "rnd_prod" not in repr(cfg)
    with pytest.raises(ConfigError, match="RENDER_API_KEY: is not set"):
        render.RenderConfig.from_env("prod", {"RENDER_JOB_SERVICE_ID": "srv-1"})
    with pytest.raises(ConfigError, match="RENDER_JOB_SERVICE_ID: is not set"):
        render.RenderConfig.from_env("prod", {"RENDER_API_KEY": "k"})
