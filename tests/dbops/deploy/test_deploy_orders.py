"""Both deploy orders end to end: an old and a new release of the app under uvicorn while ``inv deploy`` runs.

The old release is a copy of the project at its first revision; the new one adds ``a1`` (users.phone).  Both
run against one real PostgreSQL; the deploy is the real ``inv deploy --env prod`` process, backing up to real
S3 (SeaweedFS).  A background thread polls both apps' ``/api/health`` all along, and the test asserts what
each answered before, during and after the deploy (docs/production.md, "Deploy orders and the health contract"):

- schema first (Render ``preDeployCommand``, or the job before the code): the old app answers 200 throughout,
  "at head" then "ahead" (never unhealthy, never "unknown": the deploy records the lineage before upgrading),
  and ``inv deploy`` verifies against it; the new release then starts "at head" and the old one is retired.
- code first (the guide's order): the new app, started before the upgrade, answers 503 "behind" (a platform
  health check keeps it out of rotation) until ``inv deploy``, pointed at it, upgrades; then 200 "at head".
  The old app serves 200 throughout until it is replaced.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from deploy_fixtures import ADD_PHONE, BASE, SECRET, App, add_revision, current
from project_copy import copy_project

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def run_inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real ``inv`` as a process (the one the job runs), with only ``env`` naming a database."""
    full = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL") and k != "DBOPS_DB"}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
                          capture_output=True, text=True, env=full, timeout=300, check=False)


@dataclass
class Answer:
    t: float
    app: str
    status: int | None
    schema: str | None
    current: list[str] | None
    heads: list[str] | None


class Poller:
    """Polls each registered app's health URL every ``every`` seconds on a thread; keeps every answer."""

    def __init__(self, every: float = 0.05):
        self.every, self.urls, self.answers = every, {}, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, name: str, url: str) -> None:
        self.urls = {**self.urls, name: url}

    def forget(self, name: str) -> None:
        self.urls = {k: v for k, v in self.urls.items() if k != name}

    def _run(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._stop.is_set():
                for name, url in self.urls.items():
                    try:
                        r = client.get(url)
                        body = r.json()
                        self.answers.append(Answer(time.monotonic(), name, r.status_code, body.get("schema"),
                                                   body.get("current"), body.get("heads")))
                    except (httpx.HTTPError, ValueError):
                        self.answers.append(Answer(time.monotonic(), name, None, None, None, None))
                self._stop.wait(self.every)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def of(self, name: str, start: float = 0.0, end: float = float("inf")) -> list[Answer]:
        return [a for a in self.answers if a.app == name and start <= a.t < end]


def states(answers: list[Answer]) -> list[tuple[int | None, str | None]]:
    """The distinct (status, schema) answers in the order they first followed one another."""
    seq: list[tuple[int | None, str | None]] = []
    for a in answers:
        if not seq or seq[-1] != (a.status, a.schema):
            seq.append((a.status, a.schema))
    return seq


@pytest.fixture
def releases(project: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(old, new): the old release at the first revision only, the new one (the deploying code) with a1."""
    old = copy_project(tmp_path / "old-release")
    add_revision(project, "a1", BASE, *ADD_PHONE)
    return old, project


@pytest.fixture
def env(project: Path, db, s3) -> dict[str, str]:
    """A prod deploy of the new release against the test database, backing up to S3; PROD_HEALTH_URL per test."""
    return {
        "DBOPS_PROJECT_ROOT": str(project),
        "PROD_DATABASE_URL": db.render_as_string(hide_password=False),
        "PROD_BACKUP_URL": "s3://dbops-backups/deploys",
        "DBOPS_LOCK_TIMEOUT_MS": "2000",
        "DBOPS_VERIFY_TIMEOUT": "20",
        "DBOPS_HEALTH_TIMEOUT": "3",
        "DBOPS_MONITOR_INTERVAL": "0.5",
        "DBOPS_DEPLOY_LOCK_WAIT": "5",
    }


def _deploy(env: dict[str, str], health_url: str) -> tuple[float, float, str]:
    t0 = time.monotonic()
    r = run_inv("deploy", "--env", "prod", "--monitor-seconds", "2", env={**env, "PROD_HEALTH_URL": health_url})
    t1 = time.monotonic()
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "SUCCESS" in r.stdout and SECRET not in out
    return t0, t1, out


def _wait_for(poller: Poller, name: str, n: int = 3) -> None:
    """Let the poller collect ``n`` answers from ``name`` (the "before" or "after" phase)."""
    deadline = time.monotonic() + 20
    seen = len(poller.of(name))
    while len(poller.of(name)) < seen + n:
        assert time.monotonic() < deadline, f"no answers from {name}"
        time.sleep(0.05)


def test_schema_first_the_old_app_stays_healthy_then_the_new_one_starts_at_head(releases, db, env):
    old_code, new_code = releases
    old = App(old_code, db)
    new = None
    try:
        with Poller() as poller:
            poller.watch("old", old.url)
            _wait_for(poller, "old")
            t0, t1, out = _deploy(env, old.url)  # the schema ships while only the old release runs
            assert current(db) == ["a1"]
            _wait_for(poller, "old")
            new = App(new_code, db)  # then the code: the new release starts beside the old one
            poller.watch("new", new.url)
            _wait_for(poller, "new")
            poller.forget("old")
            old.stop()  # the old release is retired
            _wait_for(poller, "new")
    finally:
        old.stop()
        if new:
            new.stop()

    before, during, after = poller.of("old", 0, t0), poller.of("old", t0, t1), poller.of("old", t1)
    assert before and during and after
    print(f"\nschema first: the old app answered {len(before)}/{len(during)}/{len(after)} times before/during/after "
          f"the {t1 - t0:.1f}s deploy; the new app {len(poller.of('new'))} times")
    assert {(a.status, a.schema) for a in before} == {(200, "at head")}
    assert {(a.status, a.schema) for a in after} == {(200, "ahead")}
    assert all(a.heads == [BASE] for a in poller.of("old"))  # the old code's head: it never knew a1
    # during the deploy: 200 throughout, at head until the upgrade committed, ahead from then on
    assert states(poller.of("old")) == [(200, "at head"), (200, "ahead")]
    assert any(a.schema == "ahead" for a in during), "the upgrade was not seen during the deploy"
    assert f"schema ahead: database at a1, the app's code expects {BASE}" in out  # what verify saw

    new_answers = poller.of("new")
    assert new_answers and {(a.status, a.schema, tuple(a.heads)) for a in new_answers} == {(200, "at head", ("a1",))}


def test_code_first_the_new_app_is_behind_until_the_deploy_upgrades_the_old_app_serves_throughout(releases, db, env):
    old_code, new_code = releases
    old = App(old_code, db)
    new = App(new_code, db)  # the code first: the new release is up before the upgrade runs
    try:
        with Poller() as poller:
            poller.watch("old", old.url)
            poller.watch("new", new.url)
            _wait_for(poller, "new")
            t0, t1, out = _deploy(env, new.url)  # the deploy verifies the new release
            assert current(db) == ["a1"]
            _wait_for(poller, "new")
            poller.forget("old")
            old.stop()  # the platform replaces the old release once the new one is healthy
            _wait_for(poller, "new")
    finally:
        old.stop()
        new.stop()

    new_before, new_during, new_after = poller.of("new", 0, t0), poller.of("new", t0, t1), poller.of("new", t1)
    assert new_before and new_during and new_after
    print(f"\ncode first: the new app answered {len(new_before)}/{len(new_during)}/{len(new_after)} times "
          f"before/during/after the {t1 - t0:.1f}s deploy; the old app {len(poller.of('old'))} times")
    assert {(a.status, a.schema) for a in new_before} == {(503, "behind")}
    assert all(a.current == [BASE] and a.heads == ["a1"] for a in new_before)
    assert {(a.status, a.schema) for a in new_after} == {(200, "at head")}
    assert states(poller.of("new")) == [(503, "behind"), (200, "at head")]  # one switch, during the deploy
    assert any(a.status == 200 for a in new_during), "the upgrade was not seen during the deploy"
    assert "HTTP 200, schema at head: database at a1, the app's code expects a1" in out

    old_answers = poller.of("old")
    assert poller.of("old", 0, t0) and poller.of("old", t0, t1) and poller.of("old", t1)
    assert all(a.status == 200 for a in old_answers)  # never unhealthy while it served
    assert states(old_answers) == [(200, "at head"), (200, "ahead")]
