"""``inv lint``'s reports for reviews: GitHub annotations that parse as GitHub's workflow commands and point at
the operation, JSON that parses with the findings, markdown with a table per revision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_annotations import Recorder, commands
from test_tasks import inv

from dbops.errors import LintFailed
from dbops.settings import load_settings

BASE = "dc524d74cab6"


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
    lines = {rev: (project / "alembic" / "versions" / f"2027_{rev}.py").read_text().splitlines()
             for rev in ("a1", "b1")}
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
