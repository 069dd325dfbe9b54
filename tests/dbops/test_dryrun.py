"""The dry run: each revision's SQL linted by Squawk; findings name their revision, new tables are not findings, safer ways are shown."""

from __future__ import annotations

from pathlib import Path

from dbops import dryrun, squawk
from dbops.console import Console
from dbops.migrations import Project

BASE = "dc524d74cab6"


def _revision(project: Path, rev: str, down: str, body: str) -> Path:
    path = project / "alembic" / "versions" / f"2027_{rev}.py"
    path.write_text(
        f"from alembic import op\nimport sqlalchemy as sa\nrevision = {rev!r}\ndown_revision = {down!r}\n"
        "branch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n"
        + "".join(f"    {line}\n" for line in body.strip().splitlines())
        + "\n\ndef downgrade():\n    pass\n"
    )
    return path


def test_statements_on_a_table_created_in_the_same_revision_are_not_findings(project: Path):
    _revision(project, "n1", BASE, """
op.create_table('tags', sa.Column('id', sa.BigInteger(), primary_key=True), sa.Column('name', sa.Text()))
op.add_column('tags', sa.Column('slug', sa.Text(), nullable=False))
op.create_index('ix_tags_name', 'tags', ['name'])
""")
    findings = dryrun.lint_revisions(Project(project / "alembic.ini"), ["n1"]).findings
    assert not [f for f in findings if f.is_error], squawk.render_findings(findings)
    # the same statements on a live table are errors, with their revision and the safer way
    _revision(project, "n2", "n1", """
op.add_column('users', sa.Column('slug', sa.Text(), nullable=False))
op.create_index('ix_users_name', 'users', ['name'])
""")
    findings = dryrun.lint_revisions(Project(project / "alembic.ini"), ["n1", "n2"]).findings
    errors = {f.rule: f for f in findings if f.is_error}
    assert set(errors) == {"adding-required-field", "require-concurrent-index-creation"}
    assert all(f.revision == "n2" for f in errors.values())
    assert "autocommit_block" in errors["require-concurrent-index-creation"].alternative
    assert "ALTER TABLE users ADD COLUMN slug" in errors["adding-required-field"].statement


def test_squawk_alone_sees_a_new_table_only_within_one_input():
    sql = "CREATE TABLE t (id bigint);\nCREATE INDEX ix_t ON t (id);\n"
    assert not [f for f in squawk.lint_sql(sql) if f.rule == "require-concurrent-index-creation"]
    # split across two inputs (what linting the whole dry run at once per statement would do), it is a finding
    assert [f.rule for f in squawk.lint_sql("CREATE INDEX ix_t ON t (id);\n") if f.is_error] == ["require-concurrent-index-creation"]


def test_show_for_revision_file_prints_the_findings(project: Path, capsys):
    path = _revision(project, "n1", BASE, "op.drop_column('users', 'name')")
    findings = dryrun.lint_revision_file(path, project / "alembic.ini", ui=Console())
    out = capsys.readouterr().out
    assert [f.rule for f in findings if f.is_error] == ["ban-drop-column"]
    assert "[error] n1" in out and "ban-drop-column" in out and "expand/contract" in out


def test_dry_run_sql_marks_revision_boundaries(project: Path):
    _revision(project, "n1", BASE, "op.add_column('users', sa.Column('a', sa.Text()))")
    _revision(project, "n2", "n1", "op.add_column('users', sa.Column('b', sa.Text()))")
    proj = Project(project / "alembic.ini")
    sqls = dryrun.lint_revisions(proj, ["n1", "n2"]).sql
    text = dryrun.render_sql(proj, sqls)
    assert text.index("-- ==== revision n1") < text.index("ADD COLUMN a") < text.index("-- ==== revision n2") < text.index("ADD COLUMN b")
    assert "ADD COLUMN b" not in sqls["n1"]
