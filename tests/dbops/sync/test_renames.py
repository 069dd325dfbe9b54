"""Renames through ``inv sync``: declared in the model, answered, or refused; never a silent drop + add.

Each runs on a private copy of the example project against a real Postgres database that holds rows, and
proves the revision written keeps them and round-trips.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from fingerprint import assert_unchanged, fingerprint
from project_copy import ROOT, forget_app_modules

from dbops import roundtrip, sync
from dbops.console import Console
from dbops.errors import RenameUndecided
from dbops.settings import load_settings
from dbops.ui import UI

POSTS = "backend/app/domains/posts/models.py"
TITLE = "    title: Mapped[str] = mapped_column(String(200))\n"
TAGS = (
    "from sqlalchemy import String\nfrom sqlalchemy.orm import Mapped, mapped_column\nfrom app.db import Base\n\n"
    "class Tag(Base):\n    __tablename__ = 'tags'\n"
    "    id: Mapped[int] = mapped_column(primary_key=True)\n"
    "    label: Mapped[str] = mapped_column(String(40), index=True)\n"
)


def settings_for(url):
    return load_settings(provider="url", environ={"DATABASE_URL": url.render_as_string(hide_password=False)})


def versions(project: Path) -> set[str]:
    return {p.name for p in (project / "alembic/versions").glob("*.py")}


def edit(project: Path, path: str, old: str, new: str) -> None:
    file = project / path
    text = file.read_text()
    assert old in text
    file.write_text(text.replace(old, new))
    forget_app_modules()  # a long-lived test process must re-import the edited models


def rows(url, sql: str) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def with_posts(url) -> None:
    """Two users' posts: the data a rename must keep."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (id, email, name) VALUES "
                             "('00000000-0000-0000-0000-000000000001', 'a@example.com', 'A')"))
        conn.execute(sa.text("INSERT INTO posts (author_id, title) VALUES "
                             "('00000000-0000-0000-0000-000000000001', 'first'), "
                             "('00000000-0000-0000-0000-000000000001', 'second')"))
    engine.dispose()


class Answers(UI):
    """The UI object with scripted answers (what a person types), recording each question."""

    def __init__(self, *answers: str):
        self.answers = list(answers)
        self.asked: list[str] = []

    def ask(self, question: str, *, default: str = "") -> str:
        self.asked.append(question)
        return self.answers.pop(0) if self.answers else default

    def confirm(self, question: str, *, default: bool = False) -> bool:
        self.asked.append(question)
        return default


def test_a_declared_column_rename_is_an_alter_that_keeps_the_data(project, fresh_db, capsys):
    settings = settings_for(fresh_db)
    sync.sync(settings, auto=True)
    with_posts(fresh_db)
    edit(project, POSTS, TITLE,
         '    headline: Mapped[str] = mapped_column(String(200), info={"renamed_from": "title"})\n')

    result = sync.sync(settings, auto=True, ui=Console())
    assert [r.to_dict() for r in result.renames] == [
        {"kind": "column", "table": "posts", "old": "title", "new": "headline", "schema": None, "declared": True}]
    assert result.message == "rename posts.title to posts.headline"
    text = result.generated.read_text()
    flat = " ".join(text.split())
    assert "op.alter_column('posts', 'title', existing_type=sa.VARCHAR(length=200), new_column_name='headline'," \
        in flat
    assert "op.alter_column('posts', 'headline', existing_type=sa.String(length=200), new_column_name='title'," \
        in flat
    assert "drop_column" not in text and "add_column" not in text
    assert sorted(rows(fresh_db, "SELECT headline FROM posts")) == [("first",), ("second",)]
    out = capsys.readouterr().out
    assert "declared in the model" in out and "round-trips" in out
    assert "Generating " not in out  # Alembic's own line about the file: sync says what it wrote
    assert "test-rollback --last 1 on a throwaway database: 4 checks passed (before the local database is touched)" \
        in out
    # proven on the throwaway database before it was applied to the local one
    assert out.index("test-rollback --last 1 on a throwaway database") < out.index("applied ")
    sync.check(settings)  # in sync: the declaration left in the model asks nothing more
    assert sync.sync(settings, auto=True).generated is None
    # the written revision round-trips on a throwaway database with its rows (test-rollback's stairway)
    report = roundtrip.run(settings, last=1)
    assert report.ok
    assert sorted(rows(fresh_db, "SELECT headline FROM posts")) == [("first",), ("second",)]


def test_a_declared_table_rename_is_rename_table_and_its_index_follows(project, fresh_db):
    settings = settings_for(fresh_db)
    domain = project / "backend/app/domains/tags"
    domain.mkdir()
    (domain / "__init__.py").write_text("")
    (domain / "models.py").write_text(TAGS)
    forget_app_modules()
    sync.sync(settings, auto=True)
    engine = sa.create_engine(fresh_db)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO tags (label) VALUES ('x'), ('y')"))
    engine.dispose()

    edit(project, "backend/app/domains/tags/models.py", "    __tablename__ = 'tags'\n",
         "    __tablename__ = 'labels'\n    __table_args__ = {'info': {'renamed_from': 'tags'}}\n")
    result = sync.sync(settings, auto=True)
    assert [(r.kind, r.old, r.new, r.declared) for r in result.renames] == [("table", "tags", "labels", True)]
    text = result.generated.read_text()
    assert "op.rename_table('tags', 'labels')" in text and "op.rename_table('labels', 'tags')" in text
    assert "drop_table" not in text and "create_table" not in text
    assert sorted(rows(fresh_db, "SELECT id, label FROM labels")) == [(1, "x"), (2, "y")]
    assert rows(fresh_db, "SELECT indexname FROM pg_indexes WHERE tablename = 'labels' AND indexname LIKE 'ix_%'") \
        == [("ix_labels_label",)]
    sync.check(settings)
    assert roundtrip.run(settings, last=1).ok


def test_auto_without_a_declaration_stops_and_writes_nothing(project, fresh_db):
    settings = settings_for(fresh_db)
    sync.sync(settings, auto=True)
    with_posts(fresh_db)
    before_files, before_db = versions(project), fingerprint(fresh_db)
    edit(project, POSTS, TITLE, "    headline: Mapped[str] = mapped_column(String(200))\n")

    with pytest.raises(RenameUndecided) as caught:
        sync.sync(settings, auto=True)
    error = caught.value
    assert (error.kind, error.table, error.old, error.new) == ("column", "posts", "title", "headline")
    assert "posts.title" in error.message and "posts.headline" in error.message
    assert "no revision was written" in error.message
    assert "run `inv sync` interactively" in error.hint and 'info={"renamed_from": "title"}' in error.hint
    assert versions(project) == before_files
    assert_unchanged(before_db, fingerprint(fresh_db), "sync --auto stopped at an undecided rename")
    assert not (project / ".dbops/rejected").exists()
    # interactive, but nobody at a terminal to answer: the same stop, never a silent drop + add
    with pytest.raises(RenameUndecided):
        sync.sync(settings, ui=Console())
    assert versions(project) == before_files
    assert_unchanged(before_db, fingerprint(fresh_db), "interactive sync without a terminal")


def test_the_interactive_question_answered_yes_writes_the_rename(project, fresh_db):
    settings = settings_for(fresh_db)
    sync.sync(settings, auto=True)
    with_posts(fresh_db)
    # renamed and widened: VARCHAR(200) to TEXT holds the same kind of data, so it is asked too
    edit(project, POSTS, TITLE, "    headline: Mapped[str] = mapped_column(Text)\n")

    ui = Answers("yes")
    result = sync.sync(settings, ui=ui)
    assert ui.asked[0].startswith("Did you rename posts.title to posts.headline?")
    assert [(r.old, r.new, r.declared) for r in result.renames] == [("title", "headline", False)]
    text = result.generated.read_text()
    up, down = text.split("def downgrade()")
    up = " ".join(up.split("def upgrade()")[1].split())
    down = " ".join(down.split())
    assert "op.alter_column('posts', 'title', existing_type=sa.VARCHAR(length=200), new_column_name='headline', " \
        "type_=sa.Text()," in up and "drop_column" not in up
    assert "op.alter_column('posts', 'headline', existing_type=sa.Text(), new_column_name='title', " \
        "type_=sa.VARCHAR(length=200)," in down and "add_column" not in down
    assert sorted(rows(fresh_db, "SELECT headline FROM posts")) == [("first",), ("second",)]
    assert rows(fresh_db, "SELECT data_type FROM information_schema.columns WHERE table_name = 'posts' "
                "AND column_name = 'headline'") == [("text",)]


def test_the_interactive_question_answered_no_writes_the_drop_and_add(project, fresh_db):
    settings = settings_for(fresh_db)
    sync.sync(settings, auto=True)
    edit(project, POSTS, TITLE, "    headline: Mapped[str | None] = mapped_column(String(200))\n")
    result = sync.sync(settings, ui=Answers("no"))
    text = result.generated.read_text()
    assert result.renames == [] and "op.drop_column('posts', 'title')" in text and "add_column" in text


def test_the_hint_commands_run_verbatim(project, fresh_db, tmp_path):
    """Both answers the error names, as a user would give them: `inv sync` on a terminal (it asks; "yes"), and
    the declaration in the model with `inv sync --auto`."""
    settings = settings_for(fresh_db)
    sync.sync(settings, auto=True)
    with_posts(fresh_db)
    edit(project, POSTS, TITLE, "    headline: Mapped[str] = mapped_column(String(200))\n")
    with pytest.raises(RenameUndecided) as caught:
        sync.sync(settings, auto=True)
    hint = caught.value.hint
    env = {**os.environ, "DBOPS_PROJECT_ROOT": str(project),
           "DATABASE_URL": fresh_db.render_as_string(hide_password=False)}
    assert "`inv sync`" in hint
    out = _on_a_terminal([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "sync"], env,
                         answers={"Did you rename posts.title to posts.headline?": "yes",
                                  "back up the local database": "n", "migration message": "",
                                  "apply it to the local database now?": "y"})
    assert "rename posts.title to posts.headline (answered)" in out, out
    assert sorted(rows(fresh_db, "SELECT headline FROM posts")) == [("first",), ("second",)]

    # the other answer: the declaration the hint spells, then `inv sync --auto`, on a second rename
    declared = 'info={"renamed_from": "headline"}'
    assert 'info={"renamed_from": "title"}' in hint  # the same spelling, for this column
    edit(project, POSTS, "    headline: Mapped[str] = mapped_column(String(200))\n",
         f"    subject: Mapped[str] = mapped_column(String(200), {declared})\n")
    assert "`inv sync --auto`" in hint
    done = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "sync", "--auto"],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rename posts.headline to posts.subject (declared in the model)" in done.stdout
    assert sorted(rows(fresh_db, "SELECT subject FROM posts")) == [("first",), ("second",)]


def _on_a_terminal(argv: list[str], env: dict, answers: dict[str, str], timeout: float = 300) -> str:
    """Run ``argv`` on a pseudo-terminal, typing the answer to each prompt it shows; its output."""
    main, child = pty.openpty()
    proc = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child, env=env, close_fds=True)
    os.close(child)
    seen, pending, end = "", dict(answers), time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([main], [], [], 1)
            if ready:
                try:
                    chunk = os.read(main, 4096).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
                for prompt in list(pending):
                    if prompt in seen.rsplit("\n", 1)[-1]:
                        os.write(main, (pending.pop(prompt) + "\n").encode())
            elif proc.poll() is not None:
                break
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    assert proc.returncode == 0, seen
    return seen


def test_which_pairs_are_asked_about():
    """Only a pair holding the same kind of data is a rename question; a declaration answers it whatever the
    type; similar tables are asked about too; an answer that is neither yes nor no stops."""
    from dbops.migrations.renames import candidates, decide

    meta = sa.MetaData()
    old_tags = sa.Table("tags", meta, sa.Column("id", sa.Integer), sa.Column("label", sa.String(40)))
    new_labels = sa.Table("labels", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("label", sa.Text))
    diffs = [
        ("add_column", None, "posts", sa.Column("headline", sa.Text)),
        ("add_column", None, "posts", sa.Column("views", sa.Integer)),
        ("remove_column", None, "posts", sa.Column("title", sa.VARCHAR(200))),
        ("add_column", None, "users", sa.Column("born", sa.Date, info={"renamed_from": "age"})),
        ("remove_column", None, "users", sa.Column("age", sa.Integer)),
        ("add_table", new_labels),
        ("remove_table", old_tags),
    ]
    found = candidates(diffs)
    assert [(r.kind, r.table, r.old, r.new, r.declared) for r in found] == [
        ("column", "users", "age", "born", True),  # declared: asked about nothing, whatever the types
        ("column", "posts", "title", "headline", False),  # views (an integer) is not offered for title
        ("table", "labels", "tags", "labels", False),
    ]
    with pytest.raises(RenameUndecided) as caught:
        decide(found, auto=True)
    assert [(c.old, c.new) for c in caught.value.candidates] == [("title", "headline"), ("tags", "labels")]
    ui = Answers("no", "yes")
    chosen = decide(found, auto=False, ui=ui)
    assert [(r.old, r.new) for r in chosen] == [("age", "born"), ("tags", "labels")]
    assert [q.split("?")[0] for q in ui.asked] == ["Did you rename posts.title to posts.headline",
                                                   "Did you rename tags to labels"]
    with pytest.raises(RenameUndecided):
        decide(found, auto=False, ui=Answers("maybe"))
