"""The sync step (inv sync / inv status) against a real Postgres, on a private copy of the project."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from project_copy import forget_app_modules

from dbops import sync
from dbops.console import Console
from dbops.errors import (
    Aborted,
    CheckFailed,
    DatabaseUnreachable,
    GeneratedRevisionRejected,
    MigrationError,
    ModelImportError,
    MultipleHeads,
    Refused,
)
from dbops.postgres import client_install
from dbops.servers import UrlServer
from dbops.settings import load_settings, normalize_database_url

PHONE = "    phone: Mapped[str | None] = mapped_column(String(20))\n"


def settings_for(url):
    return load_settings(provider="url", environ={"DATABASE_URL": url.render_as_string(hide_password=False)})


def add_phone(project: Path) -> None:
    models = project / "backend/app/domains/users/models.py"
    models.write_text(models.read_text() + PHONE)
    forget_app_modules()  # a long-lived test process must re-import the edited models


class Terminal(io.StringIO):
    """Scripted answers on what the prompts take for a terminal."""

    def isatty(self):
        return True


def versions(project: Path) -> set[str]:
    return {p.name for p in (project / "alembic/versions").glob("*.py")}


def columns(url, table):
    engine = sa.create_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_check_only_reports_pending_then_passes_after_sync(project, fresh_db, capsys):
    settings = settings_for(fresh_db)
    with pytest.raises(CheckFailed, match="1 pending migration") as exc:
        sync.check(settings)
    assert exc.value.exit_code == 1 and "inv sync" in exc.value.hint
    result = sync.sync(settings, auto=True, ui=Console())
    assert result.in_sync and len(result.applied) == 1 and result.generated is None
    sync.check(settings)  # no exception: in sync
    assert "in sync" in capsys.readouterr().out


def test_auto_writes_exactly_one_migration_for_a_new_column(project, fresh_db, capsys):
    settings = settings_for(fresh_db)
    sync.sync(settings, auto=True)
    before = versions(project)
    add_phone(project)

    with pytest.raises(CheckFailed, match=r"add column users\.phone"):
        sync.check(settings)

    result = sync.sync(settings, auto=True, ui=Console())
    new = versions(project) - before
    assert len(new) == 1 and result.generated.name in new
    assert result.message == "add users.phone"
    text = result.generated.read_text()
    assert "op.add_column('users', sa.Column('phone', sa.String(length=20)" in text
    assert "op.drop_column('users', 'phone')" in text
    assert "phone" in columns(fresh_db, "users")
    out = capsys.readouterr().out
    assert "round-trips" in out

    sync.check(settings)
    again = sync.sync(settings, auto=True)  # nothing left: no empty migration
    assert again.generated is None and versions(project) == before | new


def test_a_downgrade_that_does_not_restore_fails_verification(project, fresh_db):
    settings = settings_for(fresh_db)
    sync.sync(settings, auto=True)
    models = project / "backend/app/domains/users/models.py"
    models.write_text(models.read_text() + "    nickname: Mapped[str | None] = mapped_column(String(30), index=True)\n")
    forget_app_modules()
    # a post-write hook would be the real-world cause; here we break the template's downgrade
    template = project / "alembic/script.py.mako"
    template.write_text(template.read_text().replace('${downgrades if downgrades else "pass"}', "pass"))
    before = {p.name for p in (project / "alembic/versions").glob("*.py")}
    with pytest.raises(GeneratedRevisionRejected, match="generation problem") as exc:
        sync.sync(settings, auto=True)
    # the proof on a throwaway database (before the local one is touched) finds what the downgrade leaves
    assert "nickname" in exc.value.message + exc.value.details
    assert {p.name for p in (project / "alembic/versions").glob("*.py")} == before
    assert Path(exc.value.moved_to).is_file() and "nickname" not in columns(fresh_db, "users")


def test_interactive_mode_offers_backup_and_asks_for_message(project, fresh_db, monkeypatch, capsys):
    settings = settings_for(fresh_db)
    sync.sync(settings, auto=True)
    add_phone(project)
    # backup? yes / message / apply? yes
    monkeypatch.setattr(sys, "stdin", Terminal("y\nadd a phone number to users\ny\n"))
    result = sync.sync(settings, ui=Console())
    assert result.backup is not None and result.backup.stat().st_size > 0
    assert result.backup.parent == project / "backups" / "local"
    assert result.backup.with_name(result.backup.name.replace(".dump", ".manifest.json")).is_file()
    assert result.message == "add a phone number to users"
    assert "add_a_phone_number_to_users" in result.generated.name
    assert "phone" in columns(fresh_db, "users")


def test_interactive_decline_leaves_database_unchanged(project, fresh_db, monkeypatch):
    settings = settings_for(fresh_db)
    sync.sync(settings, auto=True)
    add_phone(project)
    monkeypatch.setattr(sys, "stdin", Terminal("n\n\nn\n"))
    with pytest.raises(Aborted, match="not applied"):
        sync.sync(settings, ui=Console())
    assert "phone" not in columns(fresh_db, "users")


def test_status_shows_everything(project, fresh_db):
    settings = settings_for(fresh_db)
    client_install.install([18], places=settings.client_places)  # `inv pg-clients --major 18`: contrib for 18
    st = sync.status(settings)
    text = sync.render_status(st)
    assert st.provider == "url"
    assert "PostgreSQL 18" in text and "pending    1:" in text and "create users and posts" in text
    assert "drift      none" in text
    assert (f"throwaway  PostgreSQL 18: {settings.client_places.clients_dir / '18' / 'bin'} (dbops clients "
            "(DBOPS_PG_CLIENTS)), "
            "contrib: yes (test-rollback, compat, sync; verify-backup and rehearse of PostgreSQL 18 backups)") in text
    assert not st.state.current  # status changed nothing
    engine = sa.create_engine(fresh_db)
    assert not sa.inspect(engine).has_table("users")
    engine.dispose()


def test_force_recreate_refuses_a_non_local_url(project, fresh_db):
    settings = settings_for(fresh_db)
    sync.sync(settings, auto=True)
    remote = normalize_database_url("postgresql://app:pw123@db.example.com:5432/app")
    with pytest.raises(Refused, match="not a local database") as exc:
        sync.force_recreate(settings, server=UrlServer(remote), yes=True)
    assert "nothing was dropped" in exc.value.render() and "pw123" not in exc.value.render()
    assert "users" in sa.inspect(sa.create_engine(fresh_db)).get_table_names()


def test_force_recreate_drops_and_upgrades_local(project, fresh_db):
    settings = settings_for(fresh_db)
    sync.sync(settings, auto=True)
    engine = sa.create_engine(fresh_db)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE stray (x int)"))
    engine.dispose()  # the recreate ends every session on the database
    applied = sync.force_recreate(settings, yes=True)
    assert len(applied) == 1
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert "stray" not in tables and {"users", "posts", "alembic_version"} <= tables


def test_force_recreate_without_yes_and_no_terminal_drops_nothing(project, fresh_db):
    settings = settings_for(fresh_db)
    sync.sync(settings, auto=True)
    with pytest.raises(Aborted, match="nothing was dropped"):
        sync.force_recreate(settings, ui=Console())
    assert "users" in sa.inspect(sa.create_engine(fresh_db)).get_table_names()


def test_broken_models_name_the_file(project, fresh_db):
    bad = project / "backend/app/domains/orders"
    bad.mkdir()
    (bad / "__init__.py").write_text("")
    (bad / "models.py").write_text("from app.db import Base\nraise ValueError('oops in orders')\n")
    with pytest.raises(ModelImportError) as exc:
        sync.status(settings_for(fresh_db))
    assert "orders/models.py" in exc.value.message and "oops in orders" in exc.value.message
    assert exc.value.exit_code == 2


def test_new_domain_is_discovered_without_other_edits(project, fresh_db):
    settings = settings_for(fresh_db)
    sync.sync(settings, auto=True)
    dom = project / "backend/app/domains/tags"
    dom.mkdir()
    (dom / "__init__.py").write_text("")
    (dom / "models.py").write_text(
        "from sqlalchemy import String\nfrom sqlalchemy.orm import Mapped, mapped_column\nfrom app.db import Base\n\n"
        "class Tag(Base):\n    __tablename__ = 'tags'\n    id: Mapped[int] = mapped_column(primary_key=True)\n"
        "    label: Mapped[str] = mapped_column(String(40))\n"
    )
    forget_app_modules()
    result = sync.sync(settings, auto=True)
    assert result.message == "add table tags"


def test_multiple_heads_list_them_and_the_merge_command(project, fresh_db):
    versions_dir = project / "alembic/versions"
    first = next(versions_dir.glob("*.py"))
    base_rev = first.name.split("_")[2]
    for rev in ("aaaa00000001", "bbbb00000002"):
        (versions_dir / f"{rev}_branch.py").write_text(
            f"revision = '{rev}'\ndown_revision = '{base_rev}'\nbranch_labels = None\ndepends_on = None\n"
            "def upgrade():\n    pass\ndef downgrade():\n    pass\n"
        )
    with pytest.raises(MultipleHeads) as exc:  # HeadsUnresolved: sync --auto joins them only when asked
        sync.sync(settings_for(fresh_db), auto=True)
    assert set(exc.value.heads) == {"aaaa00000001", "bbbb00000002"}
    assert "aaaa00000001" in exc.value.message and "bbbb00000002" in exc.value.message
    assert "`inv sync --merge-heads`" in exc.value.hint and "`inv sync --reparent`" in exc.value.hint


def test_unreachable_database_says_how_to_start_one(project):
    url = normalize_database_url("postgresql://app:topsecret@127.0.0.1:1/app")
    settings = load_settings(provider="url", environ={"DATABASE_URL": url.render_as_string(hide_password=False)})
    with pytest.raises(DatabaseUnreachable) as exc:
        sync.status(settings)
    assert "topsecret" not in exc.value.render() and "127.0.0.1:1" in exc.value.render()


BROKEN = '''"""broken on purpose"""
from alembic import op

revision = "b0rken000001"
down_revision = "dc524d74cab6"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE TABLE half_done (id int)")
    op.execute("SELECT * FROM no_such_table")


def downgrade():
    op.execute("DROP TABLE half_done")
'''


def test_a_failing_revision_is_named_and_the_database_state_read_back(project, fresh_db):
    broken = project / "alembic/versions/20261201_0001_b0rken000001_broken.py"
    broken.write_text(BROKEN)
    settings = settings_for(fresh_db)
    with pytest.raises(MigrationError) as exc:
        sync.sync(settings, auto=True)
    err = exc.value
    assert err.exit_code == 1
    assert err.message.startswith(f"revision b0rken000001 ({broken.resolve()}) failed: UndefinedTable (SQLSTATE 42P01)")
    assert "no_such_table" in err.message
    assert f"fix upgrade() in {broken.resolve()}" in err.hint and "inv sync" in err.hint
    # what the message says about the database is what is there
    engine = sa.create_engine(fresh_db)
    try:
        with engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            applied = set(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()) \
                if "alembic_version" in tables else set()
    finally:
        engine.dispose()
    assert "half_done" not in tables
    shown = ", ".join(sorted(applied)) or "(empty: no revision applied)"
    assert f"the database is at revision {shown} (read back after the failure)" in err.details
    # the fix and a rerun work
    broken.write_text(BROKEN.replace('op.execute("SELECT * FROM no_such_table")\n', ""))
    result = sync.sync(settings, auto=True)
    # env.py runs each revision in its own transaction (transaction_per_migration): the good one stayed applied
    assert applied == {"dc524d74cab6"}
    assert result.applied == ["b0rken000001"] and result.in_sync


def test_an_extension_the_local_server_lacks_is_the_servers_limit_not_the_revisions(project, fresh_db):
    """The embedded server has no contrib: a revision creating uuid-ossp fails there, and sync says whose limit
    that is (exit 3), never "fix upgrade()"."""
    from deploy_fixtures import add_revision

    from dbops.errors import ExtensionUnavailable
    from dbops.migrations import Project

    head = Project(project / "alembic.ini").single_head()
    add_revision(project, "ext1", head, 'op.execute(\'CREATE EXTENSION IF NOT EXISTS "uuid-ossp"\')',
                 'op.execute(\'DROP EXTENSION IF EXISTS "uuid-ossp"\')')
    with pytest.raises(ExtensionUnavailable) as caught:
        sync.sync(settings_for(fresh_db), auto=True)
    error = caught.value
    assert error.exit_code == 3 and error.extension == "uuid-ossp"
    assert "not a fault of the revision" in error.message and "fix upgrade()" not in error.render()
    assert "ext1" not in _revision(fresh_db)  # rolled back, with the revisions applied in its transaction


def _revision(url) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return []
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    finally:
        engine.dispose()
