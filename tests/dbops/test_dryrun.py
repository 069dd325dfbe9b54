"""The dry run: each revision's SQL linted by Squawk; findings name their revision, new tables are not findings,
safer ways are shown."""

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
    errors = {f.kind: f for f in findings if f.is_error}
    assert set(errors) == {"adding-required-field", "require-concurrent-index-creation"}
    assert all(f.revision == "n2" for f in errors.values())
    assert "autocommit_block" in errors["require-concurrent-index-creation"].safer
    assert "ALTER TABLE users ADD COLUMN slug" in errors["adding-required-field"].statement


def test_squawk_alone_sees_a_new_table_only_within_one_input():
    sql = "CREATE TABLE t (id bigint);\nCREATE INDEX ix_t ON t (id);\n"
    assert not [f for f in squawk.lint_sql(sql) if f.kind == "require-concurrent-index-creation"]
    # split across two inputs (what linting the whole dry run at once per statement would do), it is a finding
    assert ([f.kind for f in squawk.lint_sql("CREATE INDEX ix_t ON t (id);\n") if f.is_error]
            == ["require-concurrent-index-creation"])


def test_show_for_revision_file_prints_the_findings(project: Path, capsys):
    path = _revision(project, "n1", BASE, "op.drop_column('users', 'name')")
    findings = dryrun.lint_revision_file(path, project / "alembic.ini", ui=Console())
    out = capsys.readouterr().out
    assert [f.kind for f in findings if f.is_error] == ["ban-drop-column"]
    assert "[error] n1" in out and "ban-drop-column" in out and "expand/contract" in out


def test_dry_run_sql_marks_revision_boundaries(project: Path):
    _revision(project, "n1", BASE, "op.add_column('users', sa.Column('a', sa.Text()))")
    _revision(project, "n2", "n1", "op.add_column('users', sa.Column('b', sa.Text()))")
    proj = Project(project / "alembic.ini")
    run = dryrun.lint_revisions(proj, ["n1", "n2"])
    text = dryrun.sql_text(run.revisions)
    assert (text.index("-- ==== revision n1") < text.index("ADD COLUMN a") < text.index("-- ==== revision n2")
            < text.index("ADD COLUMN b"))
    assert "ADD COLUMN b" not in run.sql["n1"]


# -- a revision that cannot be rendered offline (a data migration reading rows) -----------------------------------

READS_ROWS = """
op.add_column('users', sa.Column('slug', sa.Text()))
rows = op.get_bind().execute(sa.text("select id from users")).fetchall()
for row in rows:
    op.execute(sa.text("update users set slug = 'u' || id::text where id = :id").bindparams(id=row[0]))
op.create_index('ix_users_slug', 'users', ['slug'])
"""


def test_a_revision_reading_rows_is_one_line_and_the_others_are_still_linted(project: Path):
    path = _revision(project, "d1", BASE, READS_ROWS)
    _revision(project, "n2", "d1", "op.drop_column('users', 'name')")
    run = dryrun.lint_revisions(Project(project / "alembic.ini"), ["d1", "n2"])
    d1, n2 = run.revisions
    line = path.read_text().splitlines().index(
        "    rows = op.get_bind().execute(sa.text(\"select id from users\")).fetchall()") + 1
    assert d1.source == dryrun.NONE and d1.sql == "" and d1.error_line == line
    assert d1.offline_error.startswith(f"line {line}: it reads the database (op.get_bind())")
    assert "'NoneType' object has no attribute 'fetchall'" in d1.offline_error
    assert run.notices == [d1.notice] and "\n" not in d1.notice
    assert d1.notice.startswith(f"revision d1 ({path.name}): no offline SQL: line {line}") and "not linted" in d1.notice
    assert n2.source == dryrun.OFFLINE and n2.offline_error is None
    assert [f.kind for f in run.errors] == ["ban-drop-column"] and run.errors[0].revision == "n2"
    text = dryrun.sql_text(run.revisions)
    assert f"-- no offline SQL: line {line}" in text and "DROP COLUMN name" in text


def test_captured_sql_is_linted_instead_and_points_at_the_operation(project: Path):
    path = _revision(project, "d1", BASE, READS_ROWS)
    captured = {"d1": ["ALTER TABLE users ADD COLUMN slug TEXT",
                       "select id from users",
                       "update users set slug = 'u' || id::text where id = 'f2b0c1de-0000-4000-8000-000000000001'",
                       "CREATE INDEX ix_users_slug ON users (slug)"]}
    run = dryrun.lint_revisions(Project(project / "alembic.ini"), ["d1"], captured=captured)
    d1 = run.revision("d1")
    assert d1.source == dryrun.CAPTURED and d1.offline_error and "linted from the rehearsal's captured SQL" in d1.notice
    assert d1.sql.count(";\n") == 4
    (error,) = run.errors
    assert error.kind == "require-concurrent-index-creation" and error.revision == "d1"
    lines = path.read_text().splitlines()
    assert "op.create_index('ix_users_slug'" in lines[error.line - 1]
    assert "CREATE INDEX ix_users_slug" in dryrun.sql_text(run.revisions)


def test_each_finding_knows_the_line_of_its_operation(project: Path):
    path = _revision(project, "n1", BASE, """
op.add_column('users', sa.Column('phone', sa.Text()))
for name in ('a', 'b'):
    op.create_index(f'ix_users_{name}', 'users', ['name'])
op.execute("ALTER TABLE posts ALTER COLUMN title TYPE text")
""")
    run = dryrun.lint_revisions(Project(project / "alembic.ini"), ["n1"])
    lines = path.read_text().splitlines()
    by_rule = {}
    for f in run.findings:
        by_rule.setdefault(f.kind, []).append(lines[f.line - 1].strip())
    assert (by_rule["require-concurrent-index-creation"]
            == ["op.create_index(f'ix_users_{name}', 'users', ['name'])"] * 2)
    assert by_rule["changing-column-type"] == ['op.execute("ALTER TABLE posts ALTER COLUMN title TYPE text")']
    assert all(f.file == str(path) for f in run.findings)


def test_a_broken_env_py_is_still_one_clean_error(project: Path):
    import pytest

    from dbops.errors import MigrationError

    env = project / "alembic" / "env.py"
    env.write_text(env.read_text().replace("def run_migrations_offline() -> None:\n",
                                           "def run_migrations_offline() -> None:\n    {}['offline']\n"))
    _revision(project, "n1", BASE, "op.add_column('users', sa.Column('a', sa.Text()))")
    with pytest.raises(MigrationError) as info:
        dryrun.lint_revisions(Project(project / "alembic.ini"), ["n1"])
    assert "revision n1" in info.value.message and "KeyError" in info.value.message


def test_inv_lint_says_the_one_line_instead_of_a_traceback(project: Path):
    from test_tasks import inv

    path = _revision(project, "d1", BASE, READS_ROWS)
    n = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "get_bind" in text)
    r = inv("lint", "--revision", "d1", env={"DBOPS_PROJECT_ROOT": str(project)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr and "internal error" not in r.stdout + r.stderr
    (line,) = [x for x in r.stdout.splitlines() if x.startswith("! revision d1")]
    assert f"no offline SQL: line {n}: it reads the database (op.get_bind())" in line


# -- less noise: style rules, the project's .squawk.toml, allow comments -------------------------------------

def test_style_rules_never_gate_and_stay_quiet_on_new_tables(project: Path):
    _revision(project, "n1", BASE, """
op.create_table('tags', sa.Column('id', sa.Integer(), primary_key=True), sa.Column('name', sa.String(20)),
                sa.Column('at', sa.DateTime()))
op.add_column('users', sa.Column('age', sa.SmallInteger()))
""")
    run = dryrun.lint_revisions(Project(project / "alembic.ini"), ["n1"])
    assert {(f.kind, f.level) for f in run.findings} == {("prefer-bigint-over-smallint", "style")}
    assert run.errors == [] and "1 style note(s)" in squawk.render_findings(run.findings)


def test_the_projects_squawk_toml_is_honoured(project: Path):
    _revision(project, "n1", BASE, """
op.drop_column('users', 'name')
op.add_column('users', sa.Column('note', sa.Text()))
""")
    proj = Project(project / "alembic.ini")
    assert {f.kind for f in dryrun.lint_revisions(proj, ["n1"]).findings} == {"ban-drop-column"}
    # excluded_rules are merged with dbops' own exclusions (squawk's --exclude alone would replace them)
    (project / ".squawk.toml").write_text('excluded_rules = ["ban-drop-column"]\nincluded_rules = ["ban-add-column"]\n')
    found = dryrun.lint_revisions(proj, ["n1"]).findings
    assert {f.kind for f in found} == {"ban-add-column"}
    assert dryrun.lint_revisions(proj, ["n1"], config=None).errors[0].kind == "ban-drop-column"


def test_a_broken_squawk_toml_is_an_error_not_silence(project: Path):
    import pytest

    from dbops.errors import DbopsError

    _revision(project, "n1", BASE, "op.drop_column('users', 'name')")
    (project / ".squawk.toml").write_text('included_rules = ["no-such-rule"]\n')
    with pytest.raises(DbopsError) as info:
        dryrun.lint_revisions(Project(project / "alembic.ini"), ["n1"])
    assert "no-such-rule" in info.value.render() and ".squawk.toml" in info.value.render()
    (project / ".squawk.toml").write_text('excluded_rules = [\n')
    with pytest.raises(DbopsError) as info:
        dryrun.lint_revisions(Project(project / "alembic.ini"), ["n1"])
    assert ".squawk.toml cannot be read" in info.value.message


def test_an_allow_comment_accepts_a_finding_with_its_reason(project: Path):
    path = _revision(project, "n1", BASE, """
# dbops: allow ban-drop-column: users.name is unused since release 41
# dbops: allow renaming-table: (no such statement here)
op.drop_column('users', 'name')
op.create_index('ix_users_email2', 'users', ['email'])
""")
    run = dryrun.lint_revisions(Project(project / "alembic.ini"), ["n1"])
    (accepted,) = run.accepted
    assert accepted.kind == "ban-drop-column" and accepted.accepted == "users.name is unused since release 41"
    assert accepted.level == "error" and not accepted.is_error
    assert [f.kind for f in run.errors] == ["require-concurrent-index-creation"]
    assert [(a.rule, a.line) for a in run.unused_allows] == [("renaming-table", 11)]
    text = squawk.render_findings(run.findings)
    assert "[accepted] n1" in text and "accepted:   users.name is unused since release 41" in text
    assert path.read_text().splitlines()[10].strip().startswith("# dbops: allow renaming-table")


def test_an_allow_comment_without_a_reason_or_with_an_unknown_rule_is_a_clear_error(project: Path):
    import pytest
    from test_tasks import inv

    from dbops.errors import BadAllowComment

    path = _revision(project, "n1", BASE, "# dbops: allow ban-drop-column\nop.drop_column('users', 'name')")
    with pytest.raises(BadAllowComment) as info:
        dryrun.lint_revisions(Project(project / "alembic.ini"), ["n1"])
    assert info.value.line == 10 and info.value.path == str(path)
    assert "has no reason" in info.value.message and "# dbops: allow ban-drop-column: <why" in info.value.message
    r = inv("lint", "--revision", "n1", env={"DBOPS_PROJECT_ROOT": str(project)})
    assert r.returncode == 2 and "line 10: bad allow comment" in r.stderr and "Traceback" not in r.stderr
    path.write_text(path.read_text().replace("allow ban-drop-column", "allow ban-drop-colum: typo"))
    with pytest.raises(BadAllowComment) as info:
        dryrun.lint_revisions(Project(project / "alembic.ini"), ["n1"])
    assert "'ban-drop-colum' is not a squawk rule" in info.value.message


def test_the_deploys_dry_run_says_the_one_line_and_the_deploy_goes_on(project: Path, db, deploy_env):
    from deploy_fixtures import add_revision, current, settings_for

    from dbops.deploy import pipeline
    from dbops.deploy.pipeline import DeployOptions

    add_revision(project, "d1", BASE, READS_ROWS, "op.drop_index('ix_users_slug', table_name='users')\n"
                 "op.drop_column('users', 'slug')")
    report = pipeline.deploy(settings_for(deploy_env), DeployOptions(monitor_seconds=0))
    assert report.outcome == "success" and current(db) == ["d1"]
    (notice,) = [w for w in report.warnings if "no offline SQL" in w]
    assert notice.startswith("revision d1 (") and "op.get_bind()" in notice and "\n" not in notice
    assert "-- no offline SQL: line" in Path(report.dry_run_sql).read_text()


# -- an empty capture is not a clean result -----------------------------------------------------------------------

def test_first_operation_tells_an_empty_upgrade_from_one_that_does_something(project: Path):
    empty = _revision(project, "e1", BASE, '"""nothing to do"""\npass  # a merge\n...\nreturn')
    assert dryrun.first_operation(str(empty)) is None
    busy = _revision(project, "e2", "e1", "pass\nif True:\n    op.execute('SELECT 1')")
    assert dryrun.first_operation(str(busy)) == busy.read_text().splitlines().index("    if True:") + 1


def test_offline_sql_that_env_py_sends_elsewhere_is_an_error_naming_the_revision(project: Path, capsys):
    import pytest

    from dbops.errors import NothingCaptured

    env = project / "alembic" / "env.py"  # offline, env.py writes the SQL to a buffer of its own
    env.write_text(env.read_text().replace("literal_binds=True,", "literal_binds=True, output_buffer=__import__('io')"
                                           ".StringIO(),"))
    merge = _revision(project, "m1", BASE, "pass")
    path = _revision(project, "n1", "m1", "op.create_index('ix_users_name', 'users', ['name'])")
    with pytest.raises(NothingCaptured) as info:
        dryrun.lint_revisions(Project(project / "alembic.ini"), ["m1", "n1"])
    err = info.value
    assert err.exit_code == 1 and [rev for rev, _file, _line in err.revisions] == ["n1"]  # m1 does nothing
    assert f"nothing was captured for revision n1 ({path.name})" in err.message and merge.name not in err.message
    assert "the offline SQL (alembic upgrade --sql through env.py)" in err.message
    assert "output_buffer" in err.render() and "no findings" not in err.render()
    # inv sync's lint of the revision it just wrote only advises: the same words as a warning, never "no findings"
    assert dryrun.lint_revision_file(path, project / "alembic.ini", ui=Console()) == []
    out = capsys.readouterr().out
    assert "nothing was captured for revision n1" in out and "no findings" not in out


def test_a_rehearsals_empty_capture_of_a_revision_that_does_something_is_an_error(project: Path):
    import pytest

    from dbops.errors import NothingCaptured

    path = _revision(project, "n1", BASE, "op.create_index('ix_users_name', 'users', ['name'])")
    _revision(project, "m1", "n1", "pass")
    with pytest.raises(NothingCaptured) as info:
        dryrun.lint_revisions(Project(project / "alembic.ini"), ["n1", "m1"], captured={"n1": [], "m1": []})
    assert info.value.revisions == [("n1", str(path), dryrun.first_operation(str(path)))]
    assert "the rehearsal's capture" in info.value.message and "raw DBAPI cursor" in info.value.render()


def test_a_revision_that_skips_offline_mode_is_not_linted_and_never_no_findings(project: Path):
    path = _revision(project, "n1", BASE, "if context.is_offline_mode():\n    return\n"
                     "op.create_index('ix_users_name', 'users', ['name'])")
    path.write_text(path.read_text().replace("from alembic import op\n", "from alembic import context, op\n"))
    run = dryrun.lint_revisions(Project(project / "alembic.ini"), ["n1"])
    (rev,) = run.revisions
    assert rev.source == dryrun.NONE and rev.sql == "" and run.findings == []
    assert "wrote no statement in offline mode" in rev.notice and "not linted" in rev.notice
    text = dryrun.lint_report(run)
    assert "squawk: no findings in the SQL that was linted; not linted: n1" in text
    assert "squawk: no findings\n" not in text + "\n"
