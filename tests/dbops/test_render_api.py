"""``inv render-job`` and dbops.render_api against a local stand-in of the Render deploy and job API (real HTTP)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dbops import render_api as render
from dbops.errors import ConfigError
from dbops.settings import load_settings
from dbops.ui import UI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from render_api import RenderStandIn

ROOT = Path(__file__).resolve().parents[2]
KEY = "rnd_TEST-k3y-d0-n0t-pr1nt"


class Recording(UI):
    """A UI that keeps every line it is told."""

    def __init__(self):
        self.lines: list[str] = []

    def say(self, text: str = "") -> None:
        self.lines.append(text)

    warn = ok = fail = say


def inv_render_job(stand_in: RenderStandIn, *args: str, key: str = KEY, service: str | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RENDER_", "PROD_RENDER_"))}
    env.update({"RENDER_API_KEY": key, "RENDER_API_URL": stand_in.url,
                "RENDER_JOB_SERVICE_ID": service or stand_in.service_id})
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "render-job", "--poll", "0.05",
                           *args], capture_output=True, text=True, env=env, timeout=120, check=False)


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


def test_a_job_that_does_not_finish_in_time_is_canceled_at_the_deadline():
    with RenderStandIn(api_key=KEY, statuses=("pending", "running")) as api:
        config = render.RenderConfig(api_key=KEY, service_id=api.service_id, api_url=api.url)
        with pytest.raises(render.RenderJobTimeout, match=r"still running after 0s .*: canceled it") as info:
            render.run_job(config, "inv deploy --env prod", timeout=0.3, poll_interval=0.05)
    assert info.value.canceled
    assert [r["path"] for r in api.seen("POST")][-1] == f"/v1/services/{api.service_id}/jobs/job-0001/cancel"
    assert api.jobs["job-0001"]["status"] == "canceled"


def test_inv_render_job_cancels_a_job_still_running_at_its_timeout_and_says_so():
    with RenderStandIn(api_key=KEY, statuses=("pending", "running")) as api:
        r = inv_render_job(api, "--env", "prod", "--timeout", "1")
    out = r.stdout + r.stderr
    assert r.returncode == 3, out
    assert "render job job-0001: still running at the deadline (1s): canceling it" in out
    assert "render job job-0001: canceled" in out and "canceled it" in out
    assert api.seen("POST", suffix="/jobs/job-0001/cancel"), api.requests
    assert api.jobs["job-0001"]["status"] == "canceled"
    assert KEY not in out


def test_429_then_503_then_ok_on_the_job_creation_is_retried_and_one_job_runs():
    with RenderStandIn(api_key=KEY, faults=[429, 503], fault_methods=("POST",)) as api:
        r = inv_render_job(api, "--env", "prod", "--backoff", "0.01")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert [q.get("fault") for q in api.requests[:3]] == [429, 503, None]
    assert len(api.jobs) == 1  # retried, not created twice
    assert f"POST /services/{api.service_id}/jobs: HTTP 429 (rate limited); try 2 in 0.0s" in out
    assert f"POST /services/{api.service_id}/jobs: HTTP 503; try 3 in 0.0s" in out
    assert f"POST /services/{api.service_id}/jobs: answered on try 3" in out
    assert "render job job-0001 succeeded" in out


def test_429_and_5xx_while_polling_are_retried_with_backoff_and_the_job_is_followed_to_its_end():
    with RenderStandIn(api_key=KEY, faults=[429, 503, 502, 500], fault_methods=("GET",)) as api:
        config = render.RenderConfig(api_key=KEY, service_id=api.service_id, api_url=api.url)
        ui = Recording()
        job = render.run_job(config, "inv deploy --env prod", timeout=30, poll_interval=0.01, backoff=0.05, ui=ui)
    assert job.status == "succeeded"
    retries = [line for line in ui.lines if "; try " in line]
    assert len(retries) == 4, ui.lines
    waits = [float(line.split(" in ")[1].split("s")[0]) for line in retries]
    assert waits[0] == 0.0  # 429 with Retry-After: 0
    assert waits[1:] == [0.1, 0.2, 0.4]  # then doubling from --backoff (0.05 * 2**n)
    assert any("answered on try 5" in line for line in ui.lines)


def test_a_dropped_connection_while_polling_is_retried_but_a_wrong_url_fails_at_once():
    with RenderStandIn(api_key=KEY, faults=[0, 0], fault_methods=("GET",)) as api:
        r = inv_render_job(api, "--env", "prod", "--backoff", "0.01")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert [q.get("fault") for q in api.requests[1:4]] == [0, 0, None]
    assert out.count("RemoteProtocolError") == 2 and "answered on try 3" in out
    with RenderStandIn(api_key=KEY, faults=[0], fault_methods=("POST",)) as api:
        r = inv_render_job(api, "--env", "prod", "--backoff", "0.01")
    out = r.stdout + r.stderr
    assert r.returncode == 3, out  # the first contact: no answer ever came, nothing is retried
    assert "RemoteProtocolError" in out and len(api.requests) == 1


def test_an_api_that_stays_at_503_gives_up_at_the_deadline_with_the_tries_counted():
    with RenderStandIn(api_key=KEY, faults=[503] * 10_000, fault_methods=("POST",)) as api:
        r = inv_render_job(api, "--env", "prod", "--timeout", "1", "--backoff", "0.05")
    out = r.stdout + r.stderr
    assert r.returncode == 3, out
    assert f"POST {api.url}/v1/services/{api.service_id}/jobs: HTTP 503, still after" in out
    assert "status.render.com" in out and "Traceback" not in out
    assert not api.jobs


def test_a_500_on_the_job_creation_is_not_retried_it_may_have_started_a_job():
    with RenderStandIn(api_key=KEY, faults=[500], fault_methods=("POST",)) as api:
        r = inv_render_job(api, "--env", "prod", "--backoff", "0.01")
    out = r.stdout + r.stderr
    assert r.returncode == 3, out
    assert "HTTP 500" in out
    assert len(api.requests) == 1


# -- --commit: the job service on the commit being deployed ------------------------------------

NEW = "3d3c42e5aac5ba805825da76410c181273ba90b1"
OLD = "a37ce9120846195fa4ece8f58b268e6043cb2f26"


def test_with_commit_the_service_is_deployed_at_it_and_live_before_the_job_starts():
    with RenderStandIn(api_key=KEY, live_commit=OLD) as api:
        r = inv_render_job(api, "--env", "prod", "--commit", NEW)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    base = f"/v1/services/{api.service_id}"
    calls = [(q["method"], q["path"]) for q in api.requests]
    assert calls[:2] == [("GET", f"{base}/deploys"), ("POST", f"{base}/deploys")]
    assert api.requests[1]["body"] == {"commitId": NEW, "clearCache": "do_not_clear"}
    job_post = calls.index(("POST", f"{base}/jobs"))
    polls = [c for c in calls[2:job_post] if c == ("GET", f"{base}/deploys/dep-0002")]
    assert len(polls) == 3  # created -> build_in_progress -> update_in_progress -> live, then the job
    assert api.job_commits == {"job-0001": NEW}  # the job ran the new build, not the old one
    assert f"deploying {NEW[:12]} (was {OLD[:12]}): deploy dep-0002 created" in out
    assert f"live at {NEW[:12]} (deploy dep-0002)" in out and "render job job-0001 succeeded" in out
    assert api.deploys[0]["status"] == "deactivated"


def test_a_commit_already_live_is_not_deployed_again():
    with RenderStandIn(api_key=KEY, live_commit=NEW) as api:
        r = inv_render_job(api, "--env", "prod", "--commit", NEW.upper())
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert not api.seen("POST", suffix="/deploys")
    assert f"already live at {NEW[:12]} (deploy dep-0001); no deploy needed" in out
    assert api.job_commits == {"job-0001": NEW}


def test_a_deploy_queued_behind_another_202_is_found_by_its_commit_and_waited_for():
    with RenderStandIn(api_key=KEY, live_commit=OLD, queue_deploys=True) as api:
        config = render.RenderConfig(api_key=KEY, service_id=api.service_id, api_url=api.url)
        job = render.run_job(config, "inv deploy --env prod", commit=NEW, timeout=30, poll_interval=0.01)
    assert job.status == "succeeded"
    assert [q["method"] for q in api.requests[:3]] == ["GET", "POST", "GET"]  # list, trigger (202), list again
    assert api.job_commits == {"job-0001": NEW}


def test_a_failed_build_exits_1_and_starts_no_job():
    with RenderStandIn(api_key=KEY, live_commit=OLD,
                       deploy_statuses=("created", "build_in_progress", "build_failed")) as api:
        r = inv_render_job(api, "--env", "prod", "--commit", NEW)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert f"deploy dep-0002 of service {api.service_id} at commit {NEW} ended build_failed; no job was started" in out
    assert not api.jobs and api.live_commit == OLD


def test_a_deploy_not_live_by_the_deadline_starts_no_job():
    with RenderStandIn(api_key=KEY, live_commit=OLD, deploy_statuses=("created", "build_in_progress")) as api:
        r = inv_render_job(api, "--env", "prod", "--commit", NEW, "--timeout", "1")
    out = r.stdout + r.stderr
    assert r.returncode == 3, out
    assert "was still build_in_progress after 1s (the deadline); no job was started" in out
    assert not api.jobs


def test_a_short_or_malformed_commit_is_refused_before_any_request():
    with RenderStandIn(api_key=KEY) as api:
        r = inv_render_job(api, "--env", "prod", "--commit", NEW[:7])
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "--commit must be a full commit SHA (40 hex digits)" in out and "`git rev-parse HEAD` prints" in out
    assert api.requests == []
    # the hint's command, run verbatim, gives a SHA that --commit takes
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=30).stdout.strip()
    with RenderStandIn(api_key=KEY, live_commit=sha) as api:
        r = inv_render_job(api, "--env", "prod", "--commit", sha)
    assert r.returncode == 0, r.stdout + r.stderr
    assert api.job_commits == {"job-0001": sha}


def test_an_unreachable_api_says_so():
    config = render.RenderConfig(api_key=KEY, service_id="srv-x", api_url="http://127.0.0.1:9")
    with pytest.raises(render.RenderError, match="ConnectError") as info:
        render.run_job(config, "inv deploy --env prod")
    assert KEY not in info.value.render()


def test_settings_scoped_by_env_and_missing_key_named():
    cfg = render.RenderConfig.from_settings(load_settings("prod", environ={
        "RENDER_API_KEY": "rnd_plain", "PROD_RENDER_API_KEY": "rnd_prod", "RENDER_JOB_SERVICE_ID": "srv-1"}))
    assert (cfg.api_key, cfg.service_id, cfg.api_url) == ("rnd_prod", "srv-1", "https://api.render.com")
    assert "rnd_prod" not in repr(cfg)
    with pytest.raises(ConfigError, match="RENDER_API_KEY: is not set"):
        render.RenderConfig.from_settings(load_settings("prod", environ={"RENDER_JOB_SERVICE_ID": "srv-1"}))
    with pytest.raises(ConfigError, match="RENDER_JOB_SERVICE_ID: is not set"):
        render.RenderConfig.from_settings(load_settings("prod", environ={"RENDER_API_KEY": "k"}))
