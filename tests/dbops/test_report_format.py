"""Reports for reviews: GitHub annotations that parse as GitHub's workflow commands and point at the operation,
JSON that parses with the findings, markdown with a table per revision; for lint and test-rollback."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from dbops import report_format, roundtrip
from dbops.errors import LintFailed, UsageError
from dbops.report_format import Annotation
from dbops.settings import load_settings
from dbops.ui import UI
from test_tasks import inv

BASE = "dc524d74cab6"
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

# -- a strict parser of GitHub's workflow commands ------------------------------------------------------------
# https://docs.github.com/actions/reference/workflow-commands-for-github-actions:
#   ::error file={name},line={line},endLine={endLine},title={title}::{message}
# values escaped as @actions/core's command.ts does: data % \r \n -> %25 %0D %0A; properties also : , -> %3A %2C

_COMMAND = re.compile(r"^::(?P<cmd>error|warning|notice)(?: (?P<props>[^:\r\n]+))?::(?P<msg>[^\r\n]*)$")
_PROP = re.compile(r"^(?P<key>file|line|endLine|col|endColumn|title)=(?P<value>[^,:\r\n]*)$")
_DATA_ESCAPES = {"%25": "%", "%0D": "\r", "%0A": "\n"}
_PROP_ESCAPES = {**_DATA_ESCAPES, "%3A": ":", "%2C": ","}


def _unescape(text: str, escapes: dict[str, str]) -> str:
    bad = re.search(r"%(?!" + "|".join(k[1:] for k in escapes) + ")", text)
    assert bad is None, f"a bare % in {text!r}"
    return re.sub(r"%(?:" + "|".join(k[1:] for k in escapes) + ")", lambda m: escapes[m.group(0)], text)


def parse_command(line: str) -> dict:
    m = _COMMAND.match(line)
    assert m, f"not a workflow command: {line!r}"
    props: dict[str, object] = {}
    for part in m["props"].split(",") if m["props"] else []:
        pm = _PROP.match(part)
        assert pm, f"bad property {part!r} in {line!r}"
        assert pm["key"] not in props, f"property {pm['key']} twice"
        value = _unescape(pm["value"], _PROP_ESCAPES)
        if pm["key"] in ("line", "endLine", "col", "endColumn"):
            assert value.isdigit() and int(value) >= 1, f"{pm['key']}={value!r}"
            value = int(value)
        props[pm["key"]] = value
    return {"level": m["cmd"], **props, "message": _unescape(m["msg"], _DATA_ESCAPES)}


def commands(text: str) -> list[dict]:
    return [parse_command(line) for line in text.splitlines() if line.startswith("::")]


class Recorder(UI):
    def __init__(self):
        self.lines: list[str] = []

    def say(self, text: str = "") -> None:
        self.lines.append(text)


def test_the_parser_is_strict():
    for bad in ("::error file=a.py,line=x::m", "::error file=a:b.py::m", "::error file=a.py,line=1::50% done",
                "::error file=a.py,color=red::m", "::fatal file=a.py::m", "::error file=a.py::two\nlines"):
        with pytest.raises(AssertionError):
            parse_command(bad)
    assert parse_command("::notice::plain") == {"level": "notice", "message": "plain"}


def test_escaping_round_trips_through_the_strict_parser():
    a = Annotation("warning", "dir, with: odd%names/r.py", 7, "t: a, b %", "line 1\nline 2: 100% %0A literal\r")
    assert parse_command(a.command()) == {"level": "warning", "file": a.file, "line": 7, "title": a.title,
                                          "message": a.message}


def _revision(project: Path, rev: str, body: str, allow: str = "", down: str = BASE) -> Path:
    path = project / "alembic" / "versions" / f"2027_{rev}.py"
    path.write_text(
        f'"""{rev} changes"""\nfrom alembic import op\nimport sqlalchemy as sa\nrevision = {rev!r}\n'
        f"down_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n{allow}\n\ndef upgrade():\n"
        + "".join(f"    {line}\n" for line in body.strip().splitlines()) + "\n\ndef downgrade():\n    pass\n")
    return path


BODY = """
op.add_column('users', sa.Column('age', sa.SmallInteger()))
op.create_index('ix_users_age', 'users', ['age'])
op.drop_column('users', 'name')
rows = op.get_bind().execute(sa.text('select 1')).fetchall()
"""


def test_lint_annotations_parse_and_point_at_the_operation(project: Path):
    from dbops import dryrun

    _revision(project, "a1", BODY.rsplit("\n", 2)[0], allow="# dbops: allow ban-drop-column: unused, see #12")
    _revision(project, "b1", BODY, down="a1")
    settings = load_settings(environ={"DBOPS_PROJECT_ROOT": str(project), "GITHUB_ACTIONS": "true"})
    assert settings.github_actions
    ui = Recorder()
    with pytest.raises(LintFailed):
        dryrun.lint_pending(settings, ["a1", "b1"], ui=ui)
    found = commands("\n".join(ui.lines))
    lines = {rev: (project / "alembic" / "versions" / f"2027_{rev}.py").read_text().splitlines() for rev in ("a1", "b1")}
    by = {(c["title"], c["level"]): c for c in found}
    index = by[("squawk require-concurrent-index-creation (a1)", "error")]
    assert index["file"] == "alembic/versions/2027_a1.py"
    assert "op.create_index('ix_users_age'" in lines["a1"][index["line"] - 1]
    assert "statement: CREATE INDEX ix_users_age ON users (age);" in index["message"]
    assert "autocommit_block" in index["message"]
    style = by[("squawk prefer-bigint-over-smallint (a1)", "notice")]
    assert "op.add_column('users'" in lines["a1"][style["line"] - 1]
    accepted = by[("squawk ban-drop-column (a1)", "notice")]
    assert accepted["message"].endswith("accepted: unused, see #12")
    offline = by[("no offline SQL (b1)", "warning")]
    assert offline["file"] == "alembic/versions/2027_b1.py" and "get_bind" in lines["b1"][offline["line"] - 1]
    assert "\n" not in offline["message"] and offline["message"].startswith("revision b1 (2027_b1.py): no offline SQL")
    # without GITHUB_ACTIONS=true: no workflow commands
    ui = Recorder()
    with pytest.raises(LintFailed):
        dryrun.lint_pending(load_settings(environ={"DBOPS_PROJECT_ROOT": str(project)}), ["a1", "b1"], ui=ui)
    assert not commands("\n".join(ui.lines)) and "CREATE INDEX ix_users_age" in "\n".join(ui.lines)


def test_inv_lint_json_of_a_revision_without_offline_sql(project: Path):
    _revision(project, "a1", BODY, allow="# dbops: allow ban-drop-column: unused")
    r = inv("lint", "--revision", "a1", "--format", "json",
            env={"DBOPS_PROJECT_ROOT": str(project), "GITHUB_ACTIONS": "true"})
    assert r.returncode == 0, r.stderr  # nothing could be linted: not an error, but said
    data = json.loads(r.stdout)  # stdout is the document alone (no annotations mixed in under json)
    (rev,) = data["revisions"]
    assert rev["revision"] == "a1" and rev["source"] == "none" and "get_bind" in rev["offline_error"]
    assert data["ok"] is True and data["findings"] == [] and rev["findings"] == [] and data["unused_allows"] == []
    assert data["notices"] == [(f"revision a1 (2027_a1.py): no offline SQL: {rev['offline_error']}; not linted "
                                "(`inv rehearse` runs it on a copy and lints the SQL it really runs)")]


def test_inv_lint_json_and_markdown_of_findings(project: Path):
    _revision(project, "a1", BODY.rsplit("\n", 2)[0], allow="# dbops: allow ban-drop-column: unused")
    env = {"DBOPS_PROJECT_ROOT": str(project)}
    r = inv("lint", "--revision", "a1", "--format", "json", env=env)
    assert r.returncode == 1 and "1 unsafe statement(s)" in r.stderr
    data = json.loads(r.stdout)
    assert data["ok"] is False and data["errors"] == 1
    rules = {f["rule"]: f for f in data["findings"]}
    assert set(rules) == {"prefer-bigint-over-smallint", "require-concurrent-index-creation", "ban-drop-column"}
    assert rules["require-concurrent-index-creation"]["level"] == "error"
    assert rules["require-concurrent-index-creation"]["source_line"] == 12
    assert [a["rule"] for a in data["accepted"]] == ["ban-drop-column"] and data["accepted"][0]["accepted"] == "unused"
    assert data["revisions"][0]["findings"] == data["findings"]

    md = inv("lint", "--revision", "a1", "--format", "markdown", env=env)
    assert md.returncode == 1
    out = md.stdout.splitlines()
    assert out[0] == "## dbops lint: ❌ unsafe statements"
    head = out.index("| level | rule | where | statement | safer way |")
    assert out[head - 2].startswith("### `a1` a1 changes")
    assert out[head + 1] == "|---|---|---|---|---|"
    rows = [line for line in out[head + 2:] if line.startswith("| ")]
    assert len(rows) == 3 and all(row.count(" | ") == 4 for row in rows)
    assert any("✔ accepted" in row and "accepted: unused" in row for row in rows)
    assert any("✘ error" in row and "2027_a1.py:12" in row for row in rows)

    bad = inv("lint", "--revision", "a1", "--format", "yaml", env=env)
    assert bad.returncode == 2 and "unknown --format 'yaml'" in bad.stderr


def test_markdown_cells_are_escaped():
    table = report_format.markdown_table(("a", "b"), [("x | y\nz", report_format.md_code("select '|' ``"))])
    assert table.splitlines()[2] == "| x \\| y z | `select '\\|' ''` |"
    with pytest.raises(UsageError):
        report_format.check_format("html")


def _failing_async_project(tmp_path: Path) -> Path:
    dest = tmp_path / "async_env"
    shutil.copytree(SCENARIOS / "async_env", dest, ignore=shutil.ignore_patterns("__pycache__"))
    path = dest / "versions" / "as02.py"
    path.write_text(path.read_text().replace('op.drop_index("ix_tasks_title", table_name="tasks")', "op.execute('SELECT 1')"))
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
    assert data["ok"] is False and {r["revision"]: r["result"] for r in data["revisions"]} == {"as01": "ok", "as02": "failed"}
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
