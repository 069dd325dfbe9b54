"""What sync compares beyond Alembic's autogenerate, on the example app with rows in its tables.

Each scenario changes the models of a private copy of the example project and
then runs, against a real PostgreSQL: ``sync --check-only``, ``status`` and
``test-rollback`` (they must name the same difference), ``sync --auto`` (the
revision it writes applies on the database with rows, keeps them and
round-trips), then the three again (they must agree the database is in sync).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from project_copy import forget_app_modules

from dbops import roundtrip, sync
from dbops.errors import CheckFailed, DbopsError
from dbops.migrations import Project, describe_diff
from dbops.migrations.compare import REVIEW
from dbops.roundtrip.report import MODELS
from dbops.settings import load_settings

POSTS = "backend/app/domains/posts/models.py"


def settings_for(url):
    return load_settings(provider="url", environ={"DATABASE_URL": url.render_as_string(hide_password=False)})


_PRISTINE: dict[Path, str] = {}


def write_posts(project: Path, *, labels: tuple[str, ...] | None = None, default: str = "draft",
                check: str | None = None) -> None:
    """The example's posts model, with an enum column ``status`` of these labels and a named CHECK constraint."""
    path = project / POSTS
    text = _PRISTINE.setdefault(path, path.read_text())
    text = text.replace("import uuid\n", "import enum\nimport uuid\n").replace(
        "from sqlalchemy import ", "from sqlalchemy import CheckConstraint, Enum, ")
    if labels:
        members = "\n    ".join(f"{label} = {label!r}" for label in labels)
        text = text.replace("class Post(Base):", f"class Status(enum.Enum):\n    {members}\n\n\nclass Post(Base):")
        text += ('    status: Mapped[Status] = mapped_column(Enum(Status, name="post_status"), '
                 f'server_default={default!r})\n')
    if check:
        text += f"    __table_args__ = (CheckConstraint({check!r}, name='title_not_empty'),)\n"
    path.write_text(text)
    forget_app_modules()  # a long-lived test process must re-import the edited models


def versions(project: Path) -> set[Path]:
    return set((project / "alembic/versions").glob("*.py"))


def posts(kept: list[tuple], *statuses: str) -> list[tuple]:
    """The rows kept, each with its status."""
    return [(i, t, s) for (i, t), s in zip(kept, statuses, strict=True)]


def rows(url, columns: str = "id, title") -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(f"SELECT {columns} FROM posts ORDER BY id"))]
    finally:
        engine.dispose()


def execute(url, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def labels_of(url, name: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(
                "SELECT enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
                "WHERE t.typname = :n ORDER BY enumsortorder"), {"n": name}).scalars())
    finally:
        engine.dispose()


def with_rows(project: Path, url) -> list[tuple]:
    """The example at head, with a user and three posts."""
    settings = settings_for(url)
    sync.sync(settings, auto=True)
    execute(url, "INSERT INTO users (id, email, name) VALUES ('00000000-0000-0000-0000-000000000001', 'a@x', 'A')",
            *(f"INSERT INTO posts (author_id, title) VALUES ('00000000-0000-0000-0000-000000000001', 'post {i}')"
              for i in range(3)))
    return rows(url)


def drift(settings, pg_server) -> list[str]:
    """``sync --check-only``, ``status`` and ``test-rollback`` name the same differences; returns them."""
    with pytest.raises(CheckFailed) as exc:
        sync.check(settings)
    st = sync.status(settings)
    lines = [describe_diff(d) for d in st.state.diffs]
    assert lines and "models differ from the database: " + "; ".join(lines) in exc.value.message
    with pytest.raises(roundtrip.RoundTripFailed) as failed:
        roundtrip.run(settings, server_url=pg_server.url())
    assert failed.value.report.check(MODELS).details == lines
    return lines


def in_sync(settings, pg_server) -> None:
    """``sync --check-only``, ``status`` and ``test-rollback`` agree: nothing differs."""
    sync.check(settings)  # raises when not
    assert sync.status(settings).state.in_sync
    report = roundtrip.run(settings, server_url=pg_server.url())
    assert report.check(MODELS).status == "ok"


def generate(settings) -> str:
    result = sync.sync(settings, auto=True)
    assert result.generated is not None and result.in_sync
    return result.generated.read_text()


def test_enum_column_on_existing_table_then_new_value_then_removed_value(project, fresh_db, pg_server):
    settings = settings_for(fresh_db)
    kept = with_rows(project, fresh_db)

    # 1. an enum column on the existing posts: its type is created first, dropped after it on the way down
    write_posts(project, labels=("draft", "live"))
    assert drift(settings, pg_server) == ["create enum type post_status (draft, live)",
                                          "add column posts.status"]
    text = generate(settings)
    assert text.index("CREATE TYPE post_status AS ENUM ('draft', 'live')") < text.index("op.add_column('posts'")
    down = text[text.index("def downgrade"):]
    assert down.index("op.drop_column('posts', 'status')") < down.index("DROP TYPE post_status")
    assert rows(fresh_db) == kept
    assert rows(fresh_db, "status::text") == [("draft",)] * 3
    in_sync(settings, pg_server)
    execute(fresh_db, "UPDATE posts SET status = 'live' WHERE title = 'post 1'")

    # 2. a new value: ALTER TYPE … ADD VALUE in an autocommit block, no table rewrite
    write_posts(project, labels=("draft", "live", "archived"))
    assert drift(settings, pg_server) == ["enum type post_status labels: models [draft, live, archived] "
                                          "!= database [draft, live]"]
    text = generate(settings)
    assert "with op.get_context().autocommit_block():" in text
    assert "ALTER TYPE post_status ADD VALUE IF NOT EXISTS 'archived' AFTER 'live'" in text
    assert_upgrade_does_not_rewrite(settings, fresh_db)
    assert labels_of(fresh_db, "post_status") == ["draft", "live", "archived"]
    assert rows(fresh_db, "id, title, status::text") == posts(kept, "draft", "live", "draft")
    in_sync(settings, pg_server)
    execute(fresh_db, "UPDATE posts SET status = 'archived' WHERE title = 'post 2'")

    # 3. a removed value: the written sequence, marked for review; rows holding it stop the migration
    write_posts(project, labels=("live", "archived"), default="live")
    assert drift(settings, pg_server) == ["enum type post_status labels: models [live, archived] "
                                          "!= database [draft, live, archived] "
                                          "(posts.status default 'draft'::post_status -> 'live')"]
    files = versions(project)
    with pytest.raises(DbopsError):  # rows still hold 'draft': the revision stops, nothing is lost
        sync.sync(settings, auto=True)
    assert rows(fresh_db, "id, title, status::text") == posts(kept, "draft", "live", "archived")
    for path in versions(project) - files:  # the failed revision, if it was left
        path.unlink()
    # what the review comment says to do: move the rows off the label first
    execute(fresh_db, "UPDATE posts SET status = 'live' WHERE status = 'draft'")
    text = generate(settings)
    assert REVIEW in text and "ALTER TYPE post_status RENAME TO post_status_old" in text
    assert "USING status::text::post_status" in text
    assert labels_of(fresh_db, "post_status") == ["live", "archived"]
    assert rows(fresh_db, "id, title, status::text") == posts(kept, "live", "live", "archived")
    in_sync(settings, pg_server)


def assert_upgrade_does_not_rewrite(settings, url) -> None:
    """The newest revision's upgrade leaves the posts table's file as it was (its downgrade may rewrite)."""
    project = Project(settings.alembic_ini)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            project.downgrade(conn, "-1")
            conn.commit()
            before = _relfilenode(url)
            project.upgrade(conn, "head")
            conn.commit()
    finally:
        engine.dispose()
    assert _relfilenode(url) == before


def _relfilenode(url) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT relfilenode FROM pg_class WHERE relname = 'posts'")).scalar_one()
    finally:
        engine.dispose()


def test_check_constraint_added_then_changed(project, fresh_db, pg_server):
    settings = settings_for(fresh_db)
    kept = with_rows(project, fresh_db)

    write_posts(project, check="length(title) > 0")
    assert drift(settings, pg_server) == ["add constraint ck_posts_title_not_empty on posts"]
    text = generate(settings)
    assert "op.create_check_constraint(op.f('ck_posts_title_not_empty'), 'posts', 'length(title) > 0')" in text
    assert rows(fresh_db) == kept
    in_sync(settings, pg_server)

    write_posts(project, check="length(title) > 3")
    lines = drift(settings, pg_server)
    assert lines == ["drop constraint ck_posts_title_not_empty on posts",
                     "add constraint ck_posts_title_not_empty on posts"]
    text = generate(settings)
    assert "length(title) > 3" in text
    assert rows(fresh_db) == kept
    in_sync(settings, pg_server)


VIEW = '''
from alembic_utils.pg_view import PGView
from alembic_utils.replaceable_entity import register_entities

register_entities([PGView(schema="public", signature="post_titles", definition="{definition}")])
'''


def declare_view(project: Path, definition: str) -> None:
    """The project declares a view with alembic_utils, in its env.py (where alembic_utils' docs put it)."""
    env = project / "alembic/env.py"
    text = _PRISTINE.setdefault(env, env.read_text())
    env.write_text(text.replace("target_metadata = load_models()\n",
                                "target_metadata = load_models()\n" + VIEW.format(definition=definition)))


def view_rows(url) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text("SELECT * FROM post_titles ORDER BY 1"))]
    finally:
        engine.dispose()


def test_view_declared_with_alembic_utils_created_then_changed(project, fresh_db, pg_server):
    settings = settings_for(fresh_db)
    kept = with_rows(project, fresh_db)

    declare_view(project, "SELECT id, title FROM posts")
    assert drift(settings, pg_server) == ["create PGView: public.post_titles"]
    text = generate(settings)
    assert "op.create_entity(public_post_titles)" in text and "op.drop_entity(public_post_titles)" in text
    assert view_rows(fresh_db) == kept
    in_sync(settings, pg_server)

    declare_view(project, "SELECT id, upper(title) AS title FROM posts")
    assert drift(settings, pg_server) == ["replace PGView: public.post_titles"]
    text = generate(settings)
    assert "op.replace_entity(public_post_titles)" in text
    assert view_rows(fresh_db) == [(i, t.upper()) for i, t in kept]
    assert rows(fresh_db) == kept
    in_sync(settings, pg_server)
