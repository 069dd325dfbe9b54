"""``inv rehearse --format json|markdown`` on the seeded copy, and its GitHub annotations: the JSON is the document
alone and has the findings; the markdown has a table per revision; the annotations parse as GitHub's workflow
commands (the strict parser of test_annotations) and point at the operation's file and line."""

from __future__ import annotations

import json
from pathlib import Path

from test_annotations import commands

from .test_modes import inv
from .test_rehearse import line_of


def versions(project: Path) -> dict[str, Path]:
    return {p.name.split("_")[1]: p for p in (project / "alembic" / "versions").glob("2027_r*.py")}


def test_json_is_the_document_alone_with_the_findings(seeded, tmp_path):
    _project, _url, env, key = seeded
    path = tmp_path / "rehearsal.json"
    done = inv("rehearse", "--env", "staging", "--format", "json", "--json", str(path),
               env={**env, "GITHUB_ACTIONS": "true"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "error: the rehearsal on a copy of staging found" in done.stderr and "Traceback" not in done.stderr
    data = json.loads(done.stdout)  # no progress lines, no annotations: stdout parses as one document
    assert data == json.loads(path.read_text())  # --json PATH still writes the same report
    assert data["backup"]["key"] == key and data["errors"] > 0
    r2 = next(r for r in data["revisions"] if r["revision"] == "r2index")
    scan = next(f for f in r2["findings"] if f["kind"] == "scan")
    assert scan["level"] == "error" and scan["table"] == "users" and "blocks writes" in scan["message"]
    assert scan["file"] == r2["file"] and scan["line"] == line_of(r2["file"], "op.create_index('ix_users_name'")
    assert r2["statements"][0]["sql"].startswith("CREATE INDEX ix_users_name ON users")


def test_markdown_has_a_table_per_revision_and_annotations_on_the_revision_files(seeded):
    project, _url, env, _key = seeded
    done = inv("rehearse", "--env", "staging", "--format", "markdown", env={**env, "GITHUB_ACTIONS": "true"})
    assert done.returncode == 1, done.stdout + done.stderr
    found = commands(done.stdout)
    files = versions(project)
    # every finding an annotation on its revision file (relative to the repository root), at the operation's line
    index = next(c for c in found if c["title"] == "rehearse scan (r2index)")
    assert index["level"] == "error" and index["file"] == f"alembic/versions/{files['r2index'].name}"
    assert index["line"] == line_of(str(files["r2index"]), "op.create_index('ix_users_name'")
    assert index["message"].startswith("SHARE on users (200,000 rows, ") and "blocks writes" in index["message"]
    assert "statement: CREATE INDEX ix_users_name ON users" in index["message"]
    assert "safer: op.create_index(..., postgresql_concurrently=True)" in index["message"]
    rewrite = next(c for c in found if c["title"] == "rehearse rewrite (r4volatile)")
    assert rewrite["line"] == line_of(str(files["r4volatile"]), "op.add_column('users', sa.Column('token'")
    lint = next(c for c in found if c["title"] == "rehearse squawk:constraint-missing-not-valid (r7data)")
    assert lint["level"] == "error" and lint["line"] == line_of(str(files["r7data"]), "ck_users_name_length")
    assert not [c for c in found if c["title"].endswith(("(r1fine)", "(r3concurrent)", "(r8fine)"))
                and c["level"] != "notice"]

    md = [line for line in done.stdout.splitlines() if not line.startswith("::")]
    assert md[0] == "## dbops rehearse: ❌ " + f"{sum(c['level'] == 'error' for c in found)} error-level finding(s)"
    assert not any(line.startswith(("rehearse staging:", "✔", "rehearsing:")) for line in md)  # no progress lines
    header = "| # | line | statement | duration | locks: what they block, hold time | rewrite / scan | " \
             "tables: rows, size | findings |"
    heads = [i for i, line in enumerate(md) if line == header]
    assert len(heads) == 8 and all(md[i + 1] == "|" + "---|" * 8 for i in heads)
    r2 = md.index(next(line for line in md if line.startswith("### `r2index` index without concurrently")))
    row = next(line for line in md[r2:] if "`CREATE INDEX ix_users_name ON users" in line)
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert len(cells) == 8 and cells[1] == str(index["line"]) and cells[3].endswith(("ms", " s"))
    assert "SHARE on users: blocks writes (inserts, updates, deletes), held " in cells[4]
    assert cells[5] == "scanned users" and cells[6].startswith("users (200,000 rows, ")
    assert "✘ error scan" in cells[7] and "✘ error squawk:require-concurrent-index-creation" in cells[7]
    assert any(line.startswith("- Expected deploy duration: ") for line in md)
    assert any(line.startswith("- Longest wait of application reads: ") and "on users" in line for line in md)
