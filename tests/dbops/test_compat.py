"""``inv compat``: the serving commit's models against the schema the pending revisions produce.

Each test builds a real git repository from a copy of the example project
(the serving code committed), adds a pending revision to the work tree and
compares on a throwaway database of the session's embedded PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from deploy_fixtures import ADD_PHONE, BASE, App, add_revision, current, settings_for

from dbops import compat, git
from dbops.compat import findings
from dbops.errors import CompatFailed, UsageError
from dbops.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def run_git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(project: Path) -> Path:
    """The project copy as a git repository whose one commit is the serving code (at revision BASE)."""
    run_git(project, "init", "-q", "-b", "main")
    run_git(project, "add", "-A")
    run_git(project, "commit", "-q", "-m", "serving code")
    return project


def settings_of(project: Path, **env: str):
    return load_settings("prod" if env else "local", environ={"DBOPS_PROJECT_ROOT": str(project), **env})


def check(repo: Path, pg_server, ref: str | None = "HEAD", **env: str) -> compat.CompatReport:
    return compat.check(settings_of(repo, **env), ref=ref, server_url=pg_server.url())


CASES = {
    "drop a mapped column": (
        "op.drop_column('posts', 'body')",
        [(findings.DROPPED, "Post.body", "posts", "body")], "is dropped or renamed"),
    "rename a mapped column": (
        "op.alter_column('users', 'name', new_column_name='full_name')",
        [(findings.DROPPED, "User.name", "users", "name")], "the new schema has users.full_name of the same type"),
    "drop a mapped table": (
        "op.drop_table('posts')",
        [(findings.DROPPED, "Post", "posts", None)], "table posts, which the running code maps (Post), is dropped"),
    "narrow text to varchar": (
        "op.alter_column('posts', 'body', type_=sa.String(50))",
        [(findings.NARROWED, "Post.body", "posts", "body")], "changes from text to varchar(50) (a length limit)"),
    "narrow integer to smallint": (
        "op.alter_column('posts', 'id', type_=sa.SmallInteger())",
        [(findings.NARROWED, "Post.id", "posts", "id")], "changes from integer to smallint (a smaller integer)"),
    "add NOT NULL without default": (
        "op.add_column('users', sa.Column('tenant', sa.Text(), nullable=False))",
        [(findings.NOT_NULL, "User", "users", "tenant")],
        "new column users.tenant (text) is NOT NULL without a default"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_change_the_serving_code_does_not_survive_is_a_finding_with_its_fix(repo, pg_server, case):
    upgrade, expected, words = CASES[case]
    add_revision(repo, "c0ffee000001", BASE, upgrade, doc="the change")
    report = check(repo, pg_server)
    got = [(f.kind, f.model, f.table, f.column) for f in report.findings]
    assert got == expected
    f = report.findings[0]
    assert words in f.message
    assert f.revision == "c0ffee000001" and f.file.startswith("2027_c0ffee000001")
    assert f.safer.startswith("expand/contract: (1)")
    assert report.start == [BASE] and report.revisions == ["c0ffee000001"]
    text = compat.render(report)
    assert f"✗ {f.message} [revision c0ffee000001, {f.file}]" in text and f"fix: {f.safer}" in text
    with pytest.raises(CompatFailed) as err:
        compat.run(settings_of(repo), ref="HEAD", server_url=pg_server.url())
    assert err.value.report.findings[0].key == f.key and err.value.exit_code == 1


def test_expand_steps_are_compatible_and_the_output_says_so(repo, pg_server):
    add_revision(repo, "c0ffee000002", BASE, """
        op.add_column('users', sa.Column('phone', sa.Text(), nullable=True))
        op.add_column('posts', sa.Column('rank', sa.Integer(), nullable=False, server_default='0'))
        op.alter_column('posts', 'title', type_=sa.Text())
        op.alter_column('posts', 'id', type_=sa.BigInteger())
    """, doc="expand")
    report = check(repo, pg_server)
    assert report.findings == [] and report.ok
    assert report.models == ["Post", "User"] and report.revisions == ["c0ffee000002"]
    assert "compatible:" in compat.render(report)


def test_the_serving_commit_comes_from_the_revision_the_app_reports(repo, pg_server, fresh_db, tmp_path):
    # the second release adds users.phone (model and revision); the app serving it reports that head
    models = repo / "backend" / "app" / "domains" / "users" / "models.py"
    models.write_text(models.read_text() + "    phone: Mapped[str | None] = mapped_column(String(20))\n")
    add_revision(repo, "c0ffee000003", BASE,
                 "op.add_column('users', sa.Column('phone', sa.String(20), nullable=True))", doc="add phone")
    run_git(repo, "add", "-A")
    run_git(repo, "commit", "-q", "-m", "release 2: users.phone")
    release2 = run_git(repo, "rev-parse", "HEAD")
    run_git(repo, "commit", "-q", "--allow-empty", "-m", "later work, no revision")
    serving = git.archive(repo, release2, tmp_path / "serving")
    from dbops import postgres
    from dbops.migrations import Project

    engine = postgres.make_engine(fresh_db)
    with engine.connect() as conn:
        Project(serving / "alembic.ini").upgrade(conn, "c0ffee000003")
        conn.commit()
    engine.dispose()
    add_revision(repo, "c0ffee000004", "c0ffee000003", "op.drop_column('users', 'phone')", doc="drop phone")
    serving_app = App(serving, fresh_db)
    try:
        report = check(repo, pg_server, ref=None, PROD_HEALTH_URL=serving_app.url,
                       PROD_DATABASE_URL=fresh_db.render_as_string(hide_password=False))
    finally:
        serving_app.stop()
    assert report.commit == release2
    assert report.source.startswith(f"the app at {serving_app.url} reports c0ffee000003")
    assert report.start == ["c0ffee000003"] and report.revisions == ["c0ffee000004"]
    assert [(f.kind, f.model, f.column) for f in report.findings] == [(findings.DROPPED, "User.phone", "phone")]


def test_without_a_health_url_the_database_revision_names_the_commit(repo, pg_server, fresh_db):
    from dbops import postgres
    from dbops.migrations import Project

    engine = postgres.make_engine(fresh_db)
    with engine.connect() as conn:
        Project(repo / "alembic.ini").upgrade(conn, BASE)
        conn.commit()
    engine.dispose()
    add_revision(repo, "c0ffee000005", BASE, "op.drop_column('users', 'name')", doc="drop name")
    report = check(repo, pg_server, ref=None, PROD_DATABASE_URL=fresh_db.render_as_string(hide_password=False))
    assert report.commit == run_git(repo, "rev-parse", "HEAD")
    assert "no HEALTH_URL; the database is at dc524d74cab6" in report.source
    assert [(f.model, f.column) for f in report.findings] == [("User.name", "name")]


def test_an_unknown_ref_is_bad_input(repo, pg_server):
    with pytest.raises(UsageError) as err:
        check(repo, pg_server, ref="no-such-branch")
    assert "unknown git ref 'no-such-branch'" in err.value.message and "git log --oneline" in err.value.hint
    # the command the hint names, run verbatim where the refs are: it lists the commit to pass
    command = err.value.hint.split("`")[1]
    listed = subprocess.run(command.split(), cwd=repo, capture_output=True, text=True, timeout=60, check=True)
    assert "serving code" in listed.stdout


def test_a_project_outside_git_is_bad_input(project, pg_server):
    with pytest.raises(UsageError) as err:
        check(project, pg_server)
    assert "is not in a git repository" in err.value.message


def test_models_that_fail_to_import_at_the_ref_are_one_clear_error(repo, pg_server):
    models = repo / "backend" / "app" / "domains" / "users" / "models.py"
    models.write_text(models.read_text() + "\nraise RuntimeError('broken at import')\n")
    run_git(repo, "commit", "-q", "-am", "broken models")
    from dbops.errors import MigrationError

    with pytest.raises(MigrationError) as err:
        check(repo, pg_server)
    assert "could not be loaded" in err.value.message and "broken at import" in err.value.message
    commit = run_git(repo, "rev-parse", "HEAD")[:12]
    assert f"({commit}:backend/app/domains/" in err.value.message and "/tmp" not in err.value.message


def test_inv_compat_end_to_end_exit_codes_and_no_traceback(repo, pg_server):
    env = {"DBOPS_PROJECT_ROOT": str(repo), "PATH": __import__("os").environ["PATH"]}
    server = pg_server.url().render_as_string(hide_password=False)

    def inv(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "compat", *args],
                              capture_output=True, text=True, env=env, timeout=300, check=False)

    r = inv("--ref", "nope", "--server", server)
    assert r.returncode == 2 and "unknown git ref 'nope'" in r.stderr and "Traceback" not in r.stdout + r.stderr
    add_revision(repo, "c0ffee000006", BASE, "op.drop_column('posts', 'body')", doc="drop body")
    r = inv("--ref", "HEAD", "--server", server)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "✗ Post.body: column posts.body" in r.stdout and "expand/contract" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


@pytest.mark.parametrize("old,new,why", [
    ("text", "varchar(10)", "a length limit"), ("varchar(20)", "varchar(10)", "shorter"),
    ("bigint", "integer", "a smaller integer"), ("numeric(10,2)", "numeric(8,2)", "fewer digits"),
    ("numeric(10,2)", "numeric(10,1)", "fewer decimal places"), ("numeric", "numeric(12,2)", "a precision limit"),
    ("double precision", "real", "less precision"), ("numeric(10,2)", "integer", "an integer (fractions are lost)"),
    ("text", "integer", "a different type"), ("integer", "numeric(5,0)", "fewer digits"),
])
def test_narrowing_rules(old, new, why):
    assert findings.narrowing(old, new) == why


@pytest.mark.parametrize("old,new", [
    ("VARCHAR(200)", "varchar(200)"), ("varchar(10)", "text"), ("INTEGER", "bigint"), ("numeric(8,2)", "numeric(10,3)"),
    ("TIMESTAMP WITH TIME ZONE", "timestamptz"), ("real", "double precision"), ("integer", "numeric"),
    ("NUMERIC(10, 2)", "numeric(10,2)"), ("smallint", "integer"),
])
def test_widening_and_the_same_type_are_no_finding(old, new):
    assert findings.narrowing(old, new) is None


# -- in the deploy: `inv deploy --compat` ------------------------------------------


def test_deploy_compat_stops_before_the_backup_and_plan_shows_it(repo, db, app, deploy_env):
    from dbops.deploy import pipeline
    from dbops.deploy.pipeline import DeployOptions
    from dbops.errors import DeployFailed

    add_revision(repo, "c0ffee000007", BASE, "op.drop_column('posts', 'body')", doc="drop body")
    settings = settings_for(deploy_env)
    planned = pipeline.deploy(settings, DeployOptions(plan=True, compat=True, compat_ref="HEAD"))
    assert planned.outcome == "planned"
    names = [s.name for s in planned.steps]
    assert names[:3] == ["settings", "preflight", "compat"] and "dry-run" in names
    assert any("a deploy stops here unless --allow-unsafe" in w for w in planned.warnings)
    with pytest.raises(DeployFailed) as err:
        pipeline.deploy(settings, DeployOptions(compat=True, compat_ref="HEAD", monitor_seconds=0))
    report = err.value.report
    assert report.failed_step == "compat" and report.backup is None and report.db_changed is False
    assert err.value.exit_code == 1 and "Post.body (dropped or renamed)" in err.value.message
    assert "expand/contract" in err.value.hint and "nothing was changed by this run" in err.value.hint
    assert current(db) == [BASE]


def test_deploy_compat_passes_a_compatible_revision(repo, db, app, deploy_env):
    from dbops.deploy import pipeline
    from dbops.deploy.pipeline import DeployOptions

    add_revision(repo, "c0ffee000008", BASE, *ADD_PHONE, doc="add phone")
    report = pipeline.deploy(settings_for(deploy_env), DeployOptions(compat=True, compat_ref="HEAD", monitor_seconds=0))
    assert report.outcome == "success" and current(db) == ["c0ffee000008"]
    step = next(s for s in report.steps if s.name == "compat")
    assert step.status == "ok" and step.detail.endswith(": compatible")
    names = [s.name for s in report.steps]
    assert names.index("compat") == names.index("preflight") + 1 < names.index("backup")
