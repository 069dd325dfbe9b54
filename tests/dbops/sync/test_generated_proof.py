"""A revision ``inv sync`` generates is proven on a throwaway database before it stays: one that fails there is
moved aside to ``.dbops/rejected/``, named as a generation problem, and the local database is not touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from fingerprint import assert_unchanged, fingerprint
from project_copy import ROOT, forget_app_modules

from dbops import sync
from dbops.errors import GeneratedRevisionRejected
from dbops.settings import load_settings

POSTS = "backend/app/domains/posts/models.py"
#: a type of the app's own: autogenerate renders it as ``app.domains.posts.models.Slug(length=40)`` in a file that never
#: imports ``app`` (Alembic's documented gap, user_module_prefix), so its upgrade() fails with a NameError
SLUG = '''

from sqlalchemy.types import TypeDecorator


class Slug(TypeDecorator):
    impl = String(40)
    cache_ok = True


Post.slug = mapped_column(Slug(), nullable=True)
'''


def settings_for(url):
    return load_settings(provider="url", environ={"DATABASE_URL": url.render_as_string(hide_password=False)})


def versions(project: Path) -> set[str]:
    return {p.name for p in (project / "alembic/versions").glob("*.py")}


def test_a_generated_revision_that_cannot_apply_is_moved_aside_and_nothing_changes(project, fresh_db):
    settings = settings_for(fresh_db)
    sync.sync(settings, auto=True)
    engine = sa.create_engine(fresh_db)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO users (id, email, name) VALUES "
                             "('00000000-0000-0000-0000-000000000001', 'a@example.com', 'A')"))
    engine.dispose()
    before_files, before_db = versions(project), fingerprint(fresh_db)
    models = project / POSTS
    models.write_text(models.read_text() + SLUG)
    forget_app_modules()

    with pytest.raises(GeneratedRevisionRejected) as caught:
        sync.sync(settings, auto=True)
    error = caught.value
    moved = Path(error.moved_to)
    assert moved.parent == project / ".dbops/rejected" and moved.is_file()
    assert "app.domains.posts.models.Slug(length=40)" in moved.read_text()  # the file as autogenerate wrote it
    assert "generation problem in dbops/Alembic's autogenerate, not in your code" in error.message
    assert "NameError" in error.details and "'app' is not defined" in error.details  # what failed
    assert str(moved) in error.details
    assert "nothing is left in the versions folder and the revision was not applied" in error.details
    assert error.exit_code == 1
    assert versions(project) == before_files
    assert not list((project / "alembic/versions").glob(f"*{error.revision}*"))
    assert_unchanged(before_db, fingerprint(fresh_db), "a generated revision failed its proof")

    # the hint's way out, as written: fix the file, put it back in the versions folder, run `inv sync`
    assert "put it back in the versions folder, then run `inv sync`" in error.hint
    text = moved.read_text().replace("app.domains.posts.models.Slug(length=40)", "sa.String(length=40)")
    back = project / "alembic/versions" / moved.name
    back.write_text(text)
    moved.unlink()
    env = {**os.environ, "DBOPS_PROJECT_ROOT": str(project),
           "DATABASE_URL": fresh_db.render_as_string(hide_password=False)}
    done = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), "sync"], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"applying 1 pending migration(s):\n  {error.revision}" in done.stdout
    assert "in sync" in done.stdout
