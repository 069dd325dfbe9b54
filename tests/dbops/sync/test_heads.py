"""Two heads (main gained a revision while this branch wrote its own): ``inv sync`` joins them only when asked.

The project copy is a git repository: ``main`` holds the base and the main branch's revision (users.phone); this
branch's revision (posts.summary) is a new, uncommitted file, already applied to the local database (with a row).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from fingerprint import assert_unchanged, fingerprint
from project_copy import ROOT, forget_app_modules

from dbops import roundtrip, sync
from dbops.errors import HeadsUnresolved, UsageError
from dbops.migrations import Project
from dbops.postgres import connect
from dbops.settings import load_settings
from dbops.ui import UI

BASE, MAIN, MINE = "dc524d74cab6", "ma1n00000001", "m1ne00000001"
REVISION = '''"""{message}

Revision ID: {rev}
Revises: {down}
"""
from alembic import op
import sqlalchemy as sa

revision = '{rev}'
down_revision = '{down}'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('{table}', sa.Column('{column}', sa.String(length=20), nullable=True))


def downgrade():
    op.drop_column('{table}', '{column}')
'''


def settings_for(url):
    return load_settings(provider="url", environ={"DATABASE_URL": url.render_as_string(hide_password=False)})


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                          capture_output=True, text=True, check=True, timeout=60).stdout


def add_column(project: Path, rev: str, table: str, column: str, model: str) -> Path:
    path = project / f"alembic/versions/20261207_0001_{rev}_add_{column}.py"
    path.write_text(REVISION.format(message=f"add {table}.{column}", rev=rev, down=BASE, table=table, column=column))
    models = project / model
    models.write_text(models.read_text() + f"    {column}: Mapped[str | None] = mapped_column(String(20))\n")
    return path


@pytest.fixture
def two_heads(project, fresh_db):
    """main: base + users.phone (committed); this branch: posts.summary (a new file), applied locally with a row."""
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "base")
    add_column(project, MAIN, "users", "phone", "backend/app/domains/users/models.py")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "main: users.phone")
    mine = add_column(project, MINE, "posts", "summary", "backend/app/domains/posts/models.py")
    forget_app_modules()
    project_ = Project(project / "alembic.ini")
    with connect(fresh_db) as conn:
        project_.upgrade(conn, MINE)
        conn.commit()
        conn.execute(sa.text("INSERT INTO users (id, email, name) VALUES "
                             "('00000000-0000-0000-0000-000000000001', 'a@example.com', 'A')"))
        conn.execute(sa.text("INSERT INTO posts (author_id, title, summary) VALUES "
                             "('00000000-0000-0000-0000-000000000001', 'kept', 'short')"))
        conn.commit()
    return project, fresh_db, mine


def env_for(project: Path, url) -> dict:
    return {**os.environ, "DBOPS_PROJECT_ROOT": str(project), "DATABASE_URL": url.render_as_string(hide_password=False)}


def run_hint(command: str, project: Path, url) -> subprocess.CompletedProcess:
    """A command sync printed, run verbatim (``inv`` is this repository's tasks.py)."""
    assert command.startswith("inv ")
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *command.split()[1:]],
                          env=env_for(project, url), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=600, check=False)


def hint_command(error: HeadsUnresolved, flag: str) -> str:
    start = error.hint.index(f"`inv sync {flag}`")
    return error.hint[start + 1:error.hint.index("`", start + 1)]


def test_auto_joins_nothing_unasked_and_names_both_commands(two_heads):
    project, url, _mine = two_heads
    files, before = sorted(p.name for p in (project / "alembic/versions").glob("*.py")), fingerprint(url)
    with pytest.raises(HeadsUnresolved) as caught:
        sync.sync(settings_for(url), auto=True)
    error = caught.value
    assert set(error.heads) == {MAIN, MINE} and "sync --auto joins them only when asked" in error.message
    assert hint_command(error, "--merge-heads") == "inv sync --merge-heads"
    assert hint_command(error, "--reparent") == "inv sync --reparent"
    with pytest.raises(HeadsUnresolved, match="--check-only changes nothing") as checked:
        sync.check(settings_for(url))  # sync --check-only names the same two commands
    assert checked.value.hint == error.hint
    assert sorted(p.name for p in (project / "alembic/versions").glob("*.py")) == files
    assert_unchanged(before, fingerprint(url), "sync --auto with two heads")


def test_merge_heads_writes_a_merge_revision_and_the_chain_applies(two_heads):
    project, url, _mine = two_heads
    with pytest.raises(HeadsUnresolved) as caught:
        sync.sync(settings_for(url), auto=True)
    done = run_hint(hint_command(caught.value, "--merge-heads"), project, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "wrote merge revision" in done.stdout and "in sync" in done.stdout
    heads = Project(project / "alembic.ini").heads()
    assert len(heads) == 1
    merge = Project(project / "alembic.ini").revision(heads[0])
    assert set(merge.down_revision) == {MAIN, MINE}
    with connect(url) as conn:
        assert Project.current(conn) == heads
        assert conn.execute(sa.text("SELECT title, summary FROM posts")).all() == [("kept", "short")]
    sync.check(settings_for(url))
    assert roundtrip.run(settings_for(url)).ok  # the whole chain, merge included, from an empty database


def test_reparent_moves_the_local_revision_onto_mains_head(two_heads):
    project, url, mine = two_heads
    main_file = next((project / "alembic/versions").glob(f"*{MAIN}*"))
    main_text = main_file.read_text()
    with pytest.raises(HeadsUnresolved) as caught:
        sync.sync(settings_for(url), auto=True)
    done = run_hint(hint_command(caught.value, "--reparent"), project, url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"re-parented {MINE}" in done.stdout and f"onto {MAIN}" in done.stdout
    text = mine.read_text()
    assert f"down_revision = '{MAIN}'" in text and f"Revises: {MAIN}" in text
    assert main_file.read_text() == main_text  # only the local file changed
    assert Project(project / "alembic.ini").heads() == (MINE,)
    assert git(project, "status", "--porcelain", "--", "alembic/versions") == f"?? {mine.relative_to(project)}\n"
    with connect(url) as conn:
        assert Project.current(conn) == (MINE,)
        # downgraded to the fork and upgraded along the new chain: the post stays, its summary went with the column
        assert conn.execute(sa.text("SELECT title, summary FROM posts")).all() == [("kept", None)]
        assert "phone" in {c["name"] for c in sa.inspect(conn).get_columns("users")}
    sync.check(settings_for(url))
    assert roundtrip.run(settings_for(url)).ok


class Answers(UI):
    def __init__(self, *answers: str):
        self.answers, self.asked = list(answers), []

    def ask(self, question: str, *, default: str = "") -> str:
        self.asked.append(question)
        return self.answers.pop(0) if self.answers else default

    def confirm(self, question: str, *, default: bool = False) -> bool:
        self.asked.append(question)
        return default


def test_interactive_sync_offers_both_and_stop_changes_nothing(two_heads):
    project, url, _mine = two_heads
    before = fingerprint(url)
    ui = Answers("stop")
    with pytest.raises(HeadsUnresolved):
        sync.sync(settings_for(url), ui=ui)
    assert "merge revision (merge)" in ui.asked[0] and "(reparent)" in ui.asked[0]
    assert_unchanged(before, fingerprint(url), "interactive sync, heads not joined")
    result = sync.sync(settings_for(url), ui=Answers("merge"))
    assert result.joined.how == "merge" and len(Project(project / "alembic.ini").heads()) == 1


def test_reparent_without_a_main_branch_says_how_to_name_it(project, fresh_db):
    """The repository's shared branch is ``trunk``: --reparent finds neither origin/main nor main, changes
    nothing, and the command it offers (with the branch filled in) does the job."""
    git(project, "init", "-q", "-b", "trunk")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "base")
    add_column(project, MAIN, "users", "phone", "backend/app/domains/users/models.py")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "trunk: users.phone")
    mine = add_column(project, MINE, "posts", "summary", "backend/app/domains/posts/models.py")
    forget_app_modules()
    text, before = mine.read_text(), fingerprint(fresh_db)
    with pytest.raises(UsageError) as caught:
        sync.sync(settings_for(fresh_db), auto=True, reparent=True)
    error = caught.value
    assert "no main branch to compare with: origin/main, main not found" in error.message
    assert mine.read_text() == text
    assert_unchanged(before, fingerprint(fresh_db), "--reparent without a main branch")
    command = error.hint[error.hint.index("`inv sync --reparent --main-branch BRANCH`") + 1:].split("`")[0]
    done = run_hint(command.replace("BRANCH", "trunk"), project, fresh_db)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"down_revision = '{MAIN}'" in mine.read_text()
    assert Project(project / "alembic.ini").heads() == (MINE,)
