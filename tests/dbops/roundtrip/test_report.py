"""``inv test-rollback``'s reports for reviews: JSON alone on stdout, markdown tables, GitHub annotations on the
failed revision's ``def downgrade``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_annotations import Recorder, commands
from test_tasks import inv

from dbops import roundtrip
from dbops.settings import load_settings

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _failing_async_project(tmp_path: Path) -> Path:
    dest = tmp_path / "async_env"
    shutil.copytree(SCENARIOS / "async_env", dest, ignore=shutil.ignore_patterns("__pycache__"))
    path = dest / "versions" / "as02.py"
    path.write_text(path.read_text().replace('op.drop_index("ix_tasks_title", table_name="tasks")',
                                             "op.execute('SELECT 1')"))
    return dest


def test_test_rollback_formats_and_annotations(tmp_path: Path, pg_server):
    root = _failing_async_project(tmp_path)
    environ = {"DBOPS_PROJECT_ROOT": str(root), "GITHUB_ACTIONS": "true"}
    results = {}
    for fmt in ("json", "markdown"):
        ui = Recorder()
        with pytest.raises(roundtrip.RoundTripFailed):
            roundtrip.run(load_settings(alembic_ini=root / "alembic.ini", environ=environ),
                          server_url=pg_server.url(), fmt=fmt, ui=ui)
        results[fmt] = ui.lines
    (doc,) = results["json"]  # one document, no annotations in it
    data = json.loads(doc)
    assert data["ok"] is False and ({r["revision"]: r["result"] for r in data["revisions"]}
                                    == {"as01": "ok", "as02": "failed"})
    text = "\n".join(results["markdown"])
    (error,) = commands(text)
    assert error["level"] == "error" and error["file"] == "versions/as02.py"
    assert (root / "versions" / "as02.py").read_text().splitlines()[error["line"] - 1].startswith("def downgrade")
    assert "the downgrade did not restore the schema" in error["message"]
    md = [line for line in text.splitlines() if not line.startswith("::")]
    assert md[0] == "## dbops test-rollback: ❌ round-trip checks failed"
    assert "| revision | message | up ms | down ms | result |" in md and "|---|---|---|---|---|" in md
    assert any(line.startswith("| `as02` |") and line.endswith("| failed |") for line in md)


def test_inv_test_rollback_json_is_the_document_alone(tmp_path: Path, pg_server):
    root = _failing_async_project(tmp_path)
    server = pg_server.url().render_as_string(hide_password=False)
    r = inv("test-rollback", "--config", str(root / "alembic.ini"), "--server", server, "--format", "json",
            env={"DBOPS_PROJECT_ROOT": str(root), "GITHUB_ACTIONS": "true"})
    assert r.returncode == 1 and "round-trip checks failed" in r.stderr
    data = json.loads(r.stdout)  # no progress lines, no annotations: stdout parses as one document
    assert data["ok"] is False and data["revisions"][1]["revision"] == "as02"
    assert data["revisions"][1]["result"] == "failed" and data["revisions"][1]["problems"]
