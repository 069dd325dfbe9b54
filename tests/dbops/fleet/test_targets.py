"""The fleet's configuration: every way to name targets, groups in order, secrets only from the environment."""

from __future__ import annotations

import pytest

from dbops import postgres
from dbops.errors import ConfigError, UsageError
from dbops.fleet import load_fleet
from dbops.migrations.fence import target_variables
from dbops.settings import load_settings

from .fleet_fixtures import make_schemas, write_fleet


def test_urls_template_names_and_a_catalog_query(pg_server, fleet_project, fresh_db, monkeypatch):
    port = pg_server.port
    with postgres.connect(fresh_db) as conn:
        conn.exec_driver_sql("CREATE TABLE tenants (name text, plan text); INSERT INTO tenants VALUES "
                             "('acme', 'pro'), ('globex', 'free'), ('initech', 'free')")
        conn.commit()
    monkeypatch.setenv("TENANT_DB_PASSWORD", "s3cret-from-env")
    write_fleet(fleet_project, f'''budget = 6
max-failures = 2
[[tool.dbops.fleet.local.groups]]
name = "canary"
urls = ["postgresql://postgres@127.0.0.1:{port}/canary_db"]
[[tool.dbops.fleet.local.groups]]
name = "pro"
template = "postgresql://app:${{TENANT_DB_PASSWORD}}@127.0.0.1:{port}/t_{{name}}"
names-query = "SELECT name FROM tenants WHERE plan = 'pro'"
catalog = "{fresh_db.render_as_string(hide_password=False)}"
[[tool.dbops.fleet.local.groups]]
name = "free"
template = "postgresql://app:${{TENANT_DB_PASSWORD}}@127.0.0.1:{port}/t_{{name}}"
names = ["globex", "initech"]
batch = 1
''')
    fleet = load_fleet(load_settings("local"))
    assert [g.name for g in fleet.groups] == ["canary", "pro", "free"]
    assert fleet.groups[0].canary and not fleet.groups[1].canary
    assert [t.name for t in fleet.targets] == ["canary_db", "acme", "globex", "initech"]
    assert fleet.targets[1].url.password == "s3cret-from-env" and fleet.targets[1].database == "t_acme"
    assert [len(w) for w in fleet.groups[2].waves()] == [1, 1]
    # per-target backups (the default): a target's deploy holds up to 4 connections, so 6 // 4 in flight per server
    assert (fleet.budget, fleet.backup, fleet.slots, fleet.max_failures) == (6, "per-target", 1, 2)
    assert "s3cret" not in fleet.targets[1].describe()


def test_schema_per_tenant_targets_carry_their_schema_to_env_py(pg_server, fleet_project, fresh_db):
    names = make_schemas(fresh_db, 3)
    write_fleet(fleet_project, f'''[[tool.dbops.fleet.local.groups]]
name = "all"
database = "{fresh_db.render_as_string(hide_password=False)}"
schemas-query = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant_%' ORDER BY 1"
''')
    fleet = load_fleet(load_settings("local"))
    assert [t.schema for t in fleet.targets] == names
    t = fleet.targets[1]
    assert t.name == f"{fresh_db.database}/{names[1]}" and t.place == fleet.targets[0].place
    assert dict(t.url.query)["options"] == f"-csearch_path={names[1]}"
    assert "options" not in dict(t.database_url.query)
    # the fence hands env.py the schema (DBOPS_SCHEMA) and the URL whose connections find it first
    variables = target_variables(t.url, environ={})
    assert variables["DBOPS_SCHEMA"] == names[1]
    assert "search_path" in variables["DATABASE_URL"]
    assert target_variables(fresh_db, environ={})["DBOPS_SCHEMA"] is None
    with postgres.connect(t.url) as conn:
        assert conn.exec_driver_sql("SHOW search_path").scalar() == names[1]


@pytest.mark.parametrize(("body", "error", "words"), [
    ('[[tool.dbops.fleet.local.groups]]\nurls = ["postgresql://app:hunter2@db/x"]\n', ConfigError,
     "password in the configuration"),
    ('[[tool.dbops.fleet.local.groups]]\ntemplate = "postgresql://app:${NOT_SET_ANYWHERE}@db/{name}"\n'
     'names = ["a"]\n', ConfigError, "NOT_SET_ANYWHERE"),
    ('[[tool.dbops.fleet.local.groups]]\ntemplate = "postgresql://db/x"\nnames = ["a"]\n', ConfigError,
     "no {name}"),
    ('backup = "none"\n[[tool.dbops.fleet.local.groups]]\nurls = ["postgresql://db/x"]\n', ConfigError,
     "backup-reason"),
    ('[[tool.dbops.fleet.local.groups]]\ntemplate = "postgresql://db/{name}"\nnames = ["a; DROP"]\n', ConfigError,
     "plain name"),
    ('[[tool.dbops.fleet.local.groups]]\nurls = ["postgresql://db/x", "postgresql://db/x"]\n', ConfigError,
     "twice"),
])
def test_bad_configuration_is_refused_with_its_reason(fleet_project, body, error, words):
    write_fleet(fleet_project, body)
    with pytest.raises(error) as info:
        load_fleet(load_settings("local"))
    text = f"{info.value.message} {info.value.hint or ''}"
    assert words in text
    assert "hunter2" not in text


def test_no_fleet_names_where_it_looked(fleet_project):
    with pytest.raises(UsageError) as info:
        load_fleet(load_settings("local"))
    assert "[tool.dbops.fleet.local]" in info.value.message and "--fleet-file" in info.value.hint


def test_a_fleet_file_has_one_table_per_environment(fleet_project, pg_server, monkeypatch):
    path = fleet_project / "fleet.toml"
    path.write_text(f'[local]\nbudget = 3\n[[local.groups]]\nurls = ["postgresql://postgres@127.0.0.1:{pg_server.port}'
                    '/one"]\n')
    monkeypatch.setenv("DBOPS_FLEET_FILE", str(path))
    fleet = load_fleet(load_settings("local"))
    assert [t.name for t in fleet.targets] == ["one"] and fleet.budget == 3


def test_the_fleet_tasks_have_help_for_every_flag():
    import inspect

    from dbops.tasks import ns

    tasks = ns.collections["fleet"].tasks
    assert set(tasks) == {"status", "deploy", "plan", "restore"}
    for name, t in tasks.items():
        assert (t.__doc__ or "").strip(), name
        for p in inspect.signature(t.body).parameters:
            if p != "c":
                assert t.help.get(p), f"fleet.{name}: --{p} has no help"
