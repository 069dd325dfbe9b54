"""Every common env.py shape round-trips (issue 11, Deliver 2).

Projects are made as a user makes them: ``alembic init -t generic|async|pyproject`` in a temporary
directory, plus two hand-written env.py files (our connection from ``config.attributes``; only
``DATABASE_URL``).  Each gets the same models (in schema ``shop``, not ``public``) and the same
revisions: a branch label, a second branch with ``depends_on``, a merge, an enum, a data-only
revision; env.py sets ``version_table_schema``, ``include_object`` / ``include_name`` filters,
``include_schemas``, ``compare_type`` and ``compare_server_default``.  The async project's data-only
revision runs through ``op.run_async``.  Each shape must pass every check, and each must still see a
real difference (an enum label the database lacks) through its own env.py.  The ``multidb`` template
(one database per engine) has its own two tests at the end.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbops import roundtrip
from dbops.roundtrip.report import DATA_ONLY, MODELS, OK
from dbops.settings import load_settings

ALEMBIC = str(Path(sys.executable).parent / "alembic")

MODELS_CODE = '''
import sqlalchemy as sa

target_metadata = sa.MetaData()
sa.Table(
    "items", target_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("state", sa.Enum(LABELS, name="item_state", schema="shop"), nullable=False),
    sa.Column("price", sa.Numeric(10, 2), server_default=sa.text("0"), nullable=False),
    sa.Column("note", sa.String(100)),
    sa.Index("ix_items_state", "state"),
    schema="shop",
)
sa.Table(
    "audit_log", target_metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("shop.items.id")),
    schema="shop",
)


def include_name(name, type_, parent_names):
    return name in ("shop", None) if type_ == "schema" else True


def include_object(obj, name, type_, reflected, compare_to):
    return not (type_ == "table" and name == "legacy")


CONFIGURE = dict(
    version_table_schema="meta", include_schemas=True, include_name=include_name,
    include_object=include_object, compare_type=True, compare_server_default=True,
)
'''

ATTRIBUTES_ENV = '''"""env.py that takes the caller's connection from config.attributes \
(the cookbook's connection sharing)."""
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
MODELS


def run_migrations_online():
    connection = config.attributes.get("connection")
    if connection is None:
        engine = engine_from_config(config.get_section(config.config_ini_section), prefix="sqlalchemy.",
                                    poolclass=pool.NullPool)
        with engine.begin() as connection:
            context.configure(connection=connection, target_metadata=target_metadata, **CONFIGURE)
            with context.begin_transaction():
                context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata, **CONFIGURE)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
'''

DATABASE_URL_ENV = '''"""env.py that reads only DATABASE_URL (a twelve-factor app), ignoring alembic.ini's URL."""
import os

from alembic import context
from sqlalchemy import create_engine, pool

MODELS


def run_migrations_online():
    engine = create_engine(os.environ["DATABASE_URL"], poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, **CONFIGURE)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
'''


def _revision(rid, down, body_up, body_down, *, labels=None, depends=None, head=""):
    return (
        f'"""{rid}\n\nRevision ID: {rid}\n"""\nimport sqlalchemy as sa\nfrom alembic import op\n{head}\n'
        f"revision = {rid!r}\ndown_revision = {down!r}\nbranch_labels = {labels!r}\ndepends_on = {depends!r}\n\n\n"
        f"def upgrade():\n{textwrap.indent(textwrap.dedent(body_up).strip(), '    ')}\n\n\n"
        f"def downgrade():\n{textwrap.indent(textwrap.dedent(body_down).strip(), '    ')}\n"
    )


def _revisions(versions: Path, *, run_async: bool) -> None:
    versions.mkdir(exist_ok=True)
    state = 'sa.Enum("new", "done", name="item_state", schema="shop")'
    (versions / "ab01.py").write_text(_revision("ab01", None, f'''
        op.execute("CREATE SCHEMA shop")
        op.create_table("items", sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("state", {state}, nullable=False),
                        sa.Column("price", sa.Numeric(10, 2), server_default=sa.text("0"), nullable=False),
                        schema="shop")
        op.create_index("ix_items_state", "items", ["state"], schema="shop")
        op.execute("CREATE TABLE shop.legacy (id int)")  # not in the models: include_object skips it
        ''', '''
        op.execute("DROP TABLE shop.legacy")
        op.drop_index("ix_items_state", table_name="items", schema="shop")
        op.drop_table("items", schema="shop")
        sa.Enum(name="item_state", schema="shop").drop(op.get_bind())
        op.execute("DROP SCHEMA shop")
        ''', labels=("core",)))
    (versions / "ab02.py").write_text(_revision("ab02", "ab01", '''
        op.add_column("items", sa.Column("note", sa.String(100)), schema="shop")
        ''', '''op.drop_column("items", "note", schema="shop")'''))
    if run_async:
        up = "op.run_async(_backfill)"
        head = ('\n\nasync def _backfill(conn):\n'
                '    await conn.execute(sa.text("UPDATE shop.items SET note = \'-\' WHERE note IS NULL"))\n')
    else:
        up, head = '''op.execute("UPDATE shop.items SET note = '-' WHERE note IS NULL")''', ""
    (versions / "ab03.py").write_text(_revision("ab03", "ab02", up, "pass", head=head))
    (versions / "ac01.py").write_text(_revision("ac01", None, '''
        op.create_table("audit_log", sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("item_id", sa.Integer, sa.ForeignKey("shop.items.id")), schema="shop")
        ''', '''op.drop_table("audit_log", schema="shop")''', labels=("audit",), depends="ab01"))
    (versions / "ad01.py").write_text(_revision("ad01", ("ab03", "ac01"), "pass", "pass"))


def _models(labels: tuple[str, ...]) -> str:
    return MODELS_CODE.replace("LABELS", ", ".join(repr(x) for x in labels))


def make_project(tmp_path: Path, shape: str, labels=("new", "done")) -> Path:
    """A project of ``shape``; returns its alembic.ini."""
    root = tmp_path / shape
    root.mkdir()
    template = shape if shape in ("generic", "async", "pyproject") else "generic"
    subprocess.run([ALEMBIC, "init", "-t", template, "migrations"], cwd=root, check=True, capture_output=True,
                   timeout=60)
    env = root / "migrations" / "env.py"
    models = _models(labels)
    if shape == "attributes":
        env.write_text(ATTRIBUTES_ENV.replace("MODELS", models))
    elif shape == "database_url":
        env.write_text(DATABASE_URL_ENV.replace("MODELS", models))
    else:  # the template's own env.py, with models and options put where its comments say
        text = env.read_text()
        text = text.replace("target_metadata = None", models)
        text, count = re.subn(r"target_metadata=target_metadata(?!,\s*\*\*)",
                              "target_metadata=target_metadata, **CONFIGURE", text)
        assert count >= 2, "the template's env.py changed shape"
        env.write_text(text)
    _revisions(root / "migrations" / "versions", run_async=shape == "async")
    return root / "alembic.ini"


SHAPES = ["generic", "async", "pyproject", "attributes", "database_url"]


def _meta_schema(conn) -> None:
    conn.execute(sa.text("CREATE SCHEMA meta"))  # version_table_schema: made before the base revision


@pytest.mark.parametrize("shape", SHAPES)
def test_every_env_shape_passes_every_check(shape, tmp_path, pg_server):
    ini = make_project(tmp_path, shape)
    report = roundtrip.run(load_settings(alembic_ini=ini, environ={}), server_url=pg_server.url(), setup=_meta_schema)
    results = {r.revision: r.result for r in report.revisions}
    assert results == {"ab01": OK, "ab02": OK, "ab03": DATA_ONLY, "ac01": OK, "ad01": OK}
    assert [r.revision for r in report.revisions].index("ad01") == 4  # the merge comes after both branches
    assert all(c.status == OK for c in report.checks), report.render()
    assert report.check(MODELS).message.startswith("autogenerate finds no difference")


@pytest.mark.parametrize("shape", SHAPES)
def test_every_env_shape_still_sees_a_difference_through_its_env(shape, tmp_path, pg_server):
    ini = make_project(tmp_path, shape, labels=("new", "done", "archived"))
    with pytest.raises(roundtrip.RoundTripFailed) as info:
        roundtrip.run(load_settings(alembic_ini=ini, environ={}), server_url=pg_server.url(), setup=_meta_schema)
    models = info.value.report.check(MODELS)
    assert models.details == ["enum type shop.item_state labels: models [new, done, archived] != database [new, done]"]


def _multidb_revision(rid, down, engine1, engine2):
    """A revision as the multidb template writes it: upgrade(engine_name) calls upgrade_<engine>()."""
    def fn(name, body):
        return f"def {name}():\n{textwrap.indent(textwrap.dedent(body).strip(), '    ')}\n\n\n"
    return (
        f'"""{rid}"""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f"revision = {rid!r}\ndown_revision = {down!r}\nbranch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade(engine_name):\n    globals()[\"upgrade_%s\" % engine_name]()\n\n\n"
        "def downgrade(engine_name):\n    globals()[\"downgrade_%s\" % engine_name]()\n\n\n"
        + fn("upgrade_engine1", engine1[0]) + fn("downgrade_engine1", engine1[1])
        + fn("upgrade_engine2", engine2[0]) + fn("downgrade_engine2", engine2[1])
    )


def make_multidb(tmp_path: Path, *, forget_index: bool = False) -> Path:
    root = tmp_path / "multidb"
    root.mkdir()
    subprocess.run([ALEMBIC, "init", "-t", "multidb", "migrations"], cwd=root, check=True, capture_output=True,
                   timeout=60)
    versions = root / "migrations" / "versions"
    versions.mkdir(exist_ok=True)
    (versions / "mu01.py").write_text(_multidb_revision("mu01", None, (
        '''op.create_table("users", sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("mood", sa.Enum("ok", "bad", name="mood")))''',
        '''op.drop_table("users")\nsa.Enum(name="mood").drop(op.get_bind())'''), (
        '''op.create_table("events", sa.Column("id", sa.Integer, primary_key=True), sa.Column("kind", sa.Text))''',
        '''op.drop_table("events")''')))
    (versions / "mu02.py").write_text(_multidb_revision("mu02", "mu01", ("pass", "pass"), (
        '''op.create_index("ix_events_kind", "events", ["kind"])''',
        "pass" if forget_index else '''op.drop_index("ix_events_kind", table_name="events")''')))
    return root / "alembic.ini"


def test_the_multidb_template_gets_a_database_per_engine(tmp_path, pg_server):
    before = _databases(pg_server)
    report = roundtrip.run(load_settings(alembic_ini=make_multidb(tmp_path), environ={}), server_url=pg_server.url())
    assert [(r.revision, r.result) for r in report.revisions] == [("mu01", OK), ("mu02", OK)]
    assert report.check(MODELS).status == "skipped"  # the template's target_metadata is an empty dict
    assert _databases(pg_server) == before  # every per-engine database is dropped


def test_the_multidb_template_bug_in_one_engine_is_named_with_its_engine(tmp_path, pg_server):
    ini = make_multidb(tmp_path, forget_index=True)
    with pytest.raises(roundtrip.RoundTripFailed) as info:
        roundtrip.run(load_settings(alembic_ini=ini, environ={}), server_url=pg_server.url())
    mu02 = info.value.report.revision("mu02")
    assert mu02.problems[:2] == [
        "the downgrade did not restore the schema:",
        "  index ix_events_kind on engine2:public.events: only after downgrade",
    ]


def _databases(pg_server) -> set[str]:
    from dbops import postgres

    with postgres.admin_connection(pg_server.url()) as conn:
        return set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
