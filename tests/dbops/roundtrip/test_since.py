"""``test-rollback --since REF``: only the revisions new or changed since REF, from a cached base (issue 24)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from dbops import roundtrip
from dbops.errors import UsageError
from dbops.roundtrip.report import DOWNGRADES, FAILED, OK, STAIRWAY
from dbops.settings import load_settings

from .conftest import SCENARIOS

FIXED_DOWNGRADE = '''def downgrade():
    op.drop_index("ix_users_email", table_name="users")
    op.drop_column("users", "nickname")
'''


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.email=dev@example.com", "-c", "user.name=dev", *args],
                          check=True, capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


@pytest.fixture
def project(tmp_path: Path):
    """forgot_index in a git repository whose one commit ("base") has only fi01; fi02 is added after it."""
    root = tmp_path / "proj"
    shutil.copytree(SCENARIOS / "forgot_index", root, ignore=shutil.ignore_patterns("__pycache__"))
    fi02 = root / "versions" / "fi02.py"
    text = fi02.read_text()
    fi02.unlink()
    (root / ".gitignore").write_text("__pycache__/\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "base")
    _git(root, "tag", "base")
    fi02.write_text(text)  # the pull request's revision, not committed yet
    return root


def _run(project: Path, pg_server, tmp_path: Path, **kwargs):
    settings = load_settings(alembic_ini=project / "alembic.ini",
                             environ={"DBOPS_STATE_DIR": str(tmp_path / "state")})
    try:
        return roundtrip.run(settings, server_url=pg_server.url(), **kwargs), None
    except roundtrip.RoundTripFailed as exc:
        return exc.report, exc


def test_since_tests_only_the_new_revision_from_a_base_built_once(project, pg_server, tmp_path):
    report, error = _run(project, pg_server, tmp_path, since="base")
    assert error is not None  # fi02's downgrade forgets the index: found from the cached base too
    assert [r.revision for r in report.revisions] == ["fi02"]
    assert report.prepared == 1 and report.base_cached == "kept"
    assert "  index ix_users_email on users: only after downgrade" in report.revision("fi02").problems
    archives = list((tmp_path / "state" / "cache" / "rollback").glob("*.dump"))
    assert len(archives) == 1 and archives[0].read_bytes().startswith(b"PGDMP")

    fi02 = project / "versions" / "fi02.py"
    fi02.write_text(fi02.read_text().split("def downgrade():")[0] + FIXED_DOWNGRADE)
    report, error = _run(project, pg_server, tmp_path, since="base")
    assert error is None, error.render()
    assert report.base_cached == "restored"  # the same chain at REF: the archive, not a build
    assert [(r.revision, r.result) for r in report.revisions] == [("fi02", OK)]
    assert report.revision("fi02").again_ms is not None
    assert report.since.startswith("base (") and "restored from the cache" in report.render()
    assert list((tmp_path / "state" / "cache" / "rollback").glob("*.dump")) == archives


def test_a_revision_changed_since_ref_is_tested_with_those_after_it(project, pg_server, tmp_path):
    _git(project, "add", ".")
    _git(project, "commit", "-q", "-m", "fi02")
    fi01 = project / "versions" / "fi01.py"
    fi01.write_text(fi01.read_text() + "\n# touched\n")
    report, error = _run(project, pg_server, tmp_path, since="HEAD")
    assert [r.revision for r in report.revisions] == ["fi01", "fi02"]
    assert report.prepared == 0 and report.base_cached is None  # nothing older to cache
    assert report.revision("fi02").result == FAILED and error is not None


def test_nothing_new_since_ref_still_checks_the_whole_chain(project, pg_server, tmp_path):
    """The downgrades check covers the whole chain: an empty downgrade committed before REF is still found."""
    fi01 = project / "versions" / "fi01.py"
    body = fi01.read_text()
    fi01.write_text(body.split("def downgrade():")[0] + "def downgrade():\n    pass\n")
    (project / "versions" / "fi02.py").unlink()
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "empty downgrade")
    report, error = _run(project, pg_server, tmp_path, since="HEAD")
    assert report.revisions == [] and report.prepared == 1
    assert report.check(STAIRWAY).status == OK
    downgrades = report.check(DOWNGRADES)
    assert downgrades.status == FAILED and "fi01" in downgrades.message
    assert error is not None and error.exit_code == 1


def test_a_damaged_cached_base_is_built_again(project, pg_server, tmp_path):
    report, _ = _run(project, pg_server, tmp_path, since="base")
    (archive,) = (tmp_path / "state" / "cache" / "rollback").glob("*.dump")
    archive.write_bytes(b"PGDMP not an archive")
    report, _ = _run(project, pg_server, tmp_path, since="base")
    assert report.base_cached == "kept"
    assert "  index ix_users_email on users: only after downgrade" in report.revision("fi02").problems
    assert archive.read_bytes() != b"PGDMP not an archive"


def test_since_needs_a_known_ref_and_no_other_selection(project, pg_server, tmp_path):
    with pytest.raises(UsageError, match="unknown git ref 'nope'"):
        _run(project, pg_server, tmp_path, since="nope")
    with pytest.raises(UsageError, match="--since cannot be combined"):
        _run(project, pg_server, tmp_path, since="base", last=1)


ACTION = Path(__file__).resolve().parents[3] / "action.yml"
NEW_REVISION = '''"""index on about_me

Revision ID: 7e1d2c3b4a59
Revises: 2c9a7f3e5b1d
"""
from alembic import op

revision = "7e1d2c3b4a59"
down_revision = "2c9a7f3e5b1d"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_user_about_me", "user", ["about_me"])


def downgrade():
    op.drop_index("ix_user_about_me", table_name="user")
'''


def _run_step() -> str:
    """The action's `run` step script, as the runner runs it (bash)."""
    import textwrap

    block = ACTION.read_text().split("      id: run\n", 1)[1].split("      run: |\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line.strip() and not line.startswith("        "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


def test_the_action_tests_a_pull_request_with_since_and_keeps_the_base_in_its_cache_folder(tmp_path):
    """The action's test-rollback step, verbatim, on a pull request adding one revision to flask_migrate:
    `--since` the merge base, only that revision round-tripped, the base kept where the cache step keeps it."""
    import os
    import sys

    project = tmp_path / "blog"
    shutil.copytree(SCENARIOS / "users" / "flask_migrate", project, ignore=shutil.ignore_patterns("__pycache__"))
    (project / ".gitignore").write_text("__pycache__/\n.dbops/\n")
    _git(project, "init", "-q", "-b", "main")
    _git(project, "add", ".")
    _git(project, "commit", "-q", "-m", "base")
    _git(project, "update-ref", "refs/remotes/origin/main", "HEAD")
    _git(project, "checkout", "-q", "-b", "feature")
    (project / "migrations" / "versions" / "7e1d2c3b4a59_index_on_about_me.py").write_text(NEW_REVISION)
    models = project / "blog" / "models.py"
    models.write_text(models.read_text().replace("so.mapped_column(sa.String(140))",
                                                 "so.mapped_column(sa.String(140), index=True)", 1))
    _git(project, "add", ".")
    _git(project, "commit", "-q", "-m", "index")
    runner = tmp_path / "runner"
    runner.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ALEMBIC_CONFIG", "DBOPS_PROJECT_ROOT")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", GITHUB_ACTIONS="true",
               RUNNER_TEMP=str(runner), GITHUB_OUTPUT=str(runner / "output"),
               GITHUB_STEP_SUMMARY=str(runner / "summary"), COMMAND="test-rollback", CONFIG="",
               DEPLOY_ENV="prod", REVISIONS="*versions/*.py", BASE_REF="main", NO_COLOR="1",
               DBOPS_STATE_DIR=str(project / ".dbops"))  # the step's env: ${{ github.workspace }}/.dbops
    for _ in range(2):  # the second run restores the base the first one kept
        r = subprocess.run(["bash", "-c", _run_step()], check=False, cwd=project, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        report = (runner / "dbops-test-rollback.md").read_text()
        assert "every check passed" in report and "`7e1d2c3b4a59`" in report
        assert "`2c9a7f3e5b1d`" not in report  # the base's revisions are not walked again
    assert len(list((project / ".dbops" / "cache" / "rollback").glob("*.dump"))) == 1


def test_a_rebuild_after_a_failure_starts_from_the_cached_base(project, pg_server, tmp_path):
    """fi02's downgrade also drops users.phone (a missing object: no leftover to drop, the database is rebuilt):
    the rebuild restores the base and replays fi02 alone, never fi01."""
    fi02 = project / "versions" / "fi02.py"
    fi02.write_text(fi02.read_text().split("def downgrade():")[0] + FIXED_DOWNGRADE
                    + '    op.drop_column("users", "phone")\n')
    for cached in ("kept", "restored"):
        report, error = _run(project, pg_server, tmp_path, since="base")
        assert report.base_cached == cached and error is not None
        assert "  column users.phone: only before upgrade" in report.revision("fi02").problems
        assert (report.rebuilds, report.replayed) == (1, 1)


def test_a_cache_folder_that_cannot_be_written_only_costs_the_next_run_a_build(project, pg_server, tmp_path, caplog):
    blocked = tmp_path / "state"
    blocked.write_text("a file where the state folder would be\n")
    report, error = _run(project, pg_server, tmp_path, since="base")
    assert report.base_cached is None and report.prepared == 1
    assert error is not None  # fi02's defect is still found
    assert "  index ix_users_email on users: only after downgrade" in report.revision("fi02").problems
    assert "cannot keep the base of --since" in caplog.text
    assert blocked.read_text() == "a file where the state folder would be\n"


def test_the_task_runs_the_documented_command(project, pg_server, tmp_path):
    """`inv test-rollback --since origin/main`, as docs/test-rollback.md shows it (plus --config / --server)."""
    import os
    import sys

    _git(project, "update-ref", "refs/remotes/origin/main", "base")
    server = pg_server.url().set(database="postgres").render_as_string(hide_password=False)
    env = {**os.environ, "DBOPS_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1"}
    root = Path(__file__).resolve().parents[3]
    r = subprocess.run([sys.executable, "-m", "invoke", "test-rollback", "--since", "origin/main",
                        "--config", str(project / "alembic.ini"), "--server", server],
                       cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 1, r.stdout + r.stderr  # fi02's forgotten index
    assert "only the revisions new or changed since origin/main (" in r.stdout
    assert "built and kept in the cache" in r.stdout
    assert "index ix_users_email on users: only after downgrade" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "invoke", "test-rollback", "--since", "no-such-ref",
                          "--config", str(project / "alembic.ini"), "--server", server],
                         cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode == 2 and "unknown git ref 'no-such-ref'" in bad.stderr, bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr
