import pytest

from dbops.errors import ConfigError, UsageError
from dbops.settings import load_settings, mask_url, normalize_database_url


@pytest.mark.parametrize(
    "raw",
    [
        "postgres://u:pw@db.example.com:5432/app",
        "postgresql://u:pw@db.example.com:5432/app",
        "postgresql+psycopg://u:pw@db.example.com:5432/app",
    ],
)
def test_urls_are_pinned_to_psycopg2(raw):
    url = normalize_database_url(raw)
    assert url.drivername == "postgresql+psycopg2"
    assert (url.host, url.port, url.database, url.password) == ("db.example.com", 5432, "app", "pw")


def test_query_options_survive_normalisation():
    url = normalize_database_url("postgres://u:pw@ep-x.neon.tech/app?sslmode=require")
    assert url.query["sslmode"] == "require"


@pytest.mark.parametrize(
    "raw, words",
    [
        ("not a url", "is not a database URL"),
        ("mysql://u:s3cr3t@h/db", "only PostgreSQL URLs"),
        ("postgresql://u:s3cr3t@/db", "has no host"),
        ("postgresql://u:s3cr3t@host", "names no database"),
    ],
)
def test_malformed_urls_name_the_variable_and_hide_the_password(raw, words):
    with pytest.raises(ConfigError) as exc:
        normalize_database_url(raw, variable="PROD_DATABASE_URL")
    text = exc.value.render()
    assert "PROD_DATABASE_URL" in text and words in text
    assert "s3cr3t" not in text


def test_env_scoped_variable_wins():
    s = load_settings(
        "prod",
        environ={"DATABASE_URL": "postgres://a:x1@plain/app", "PROD_DATABASE_URL": "postgres://a:x2@scoped/app"},
    )
    assert s.database_url.host == "scoped" and s.database_url_var == "PROD_DATABASE_URL"


def test_unknown_env_and_provider_are_usage_errors():
    with pytest.raises(UsageError, match="unknown environment 'qa'"):
        load_settings("qa", environ={})
    with pytest.raises(UsageError, match="unknown database provider 'podman'") as exc:
        load_settings(provider="podman", environ={})
    assert "embedded, docker, url" in exc.value.hint


def test_placeholder_password_refused_outside_local():
    env = {"DATABASE_URL": "postgres://app:changethis@db.example.com/app"}
    assert load_settings("local", environ=env).database_url is not None
    with pytest.raises(ConfigError, match="placeholder password") as exc:
        load_settings("prod", environ=env)
    assert "changethis" not in exc.value.render()


def test_bad_numbers_name_the_variable():
    with pytest.raises(ConfigError, match="DBOPS_LOCK_TIMEOUT_MS: must be a whole number"):
        load_settings(environ={"DBOPS_LOCK_TIMEOUT_MS": "5s"})


def test_round_trip_knobs_come_from_the_environment():
    assert (load_settings(environ={}).rollback_checkpoint_after,
            load_settings(environ={}).rollback_setup_timeout_s) == (5, 600)
    env = {"DBOPS_ROLLBACK_CHECKPOINT_AFTER": "2", "DBOPS_ROLLBACK_SETUP_TIMEOUT": "30"}
    assert (load_settings(environ=env).rollback_checkpoint_after,
            load_settings(environ=env).rollback_setup_timeout_s) == (2, 30)
    with pytest.raises(ConfigError, match="DBOPS_ROLLBACK_CHECKPOINT_AFTER: must be at least 1, got 0"):
        load_settings(environ={"DBOPS_ROLLBACK_CHECKPOINT_AFTER": "0"})


def test_round_trip_snapshots_setting_takes_full_tracked_or_verify():
    assert load_settings(environ={}).rollback_snapshots == "tracked"
    assert load_settings(environ={"DBOPS_ROLLBACK_SNAPSHOTS": "full"}).rollback_snapshots == "full"
    with pytest.raises(ConfigError, match="DBOPS_ROLLBACK_SNAPSHOTS: is 'partial'") as exc:
        load_settings(environ={"DBOPS_ROLLBACK_SNAPSHOTS": "partial"})
    assert exc.value.hint == "use one of: full, tracked, verify"


def test_describe_masks_every_secret():
    s = load_settings(
        "prod",
        environ={
            "DATABASE_URL": "postgres://app:hunter2pw@db.example.com/app",
            "BACKUP_URL": "s3://bucket/prefix",
            "NOTIFY_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/tokentoken",
        },
    )
    text = "\n".join(f"{k} {v}" for k, v in s.describe())
    assert "hunter2pw" not in text and "tokentoken" not in text
    assert "db.example.com" in text and "s3://bucket/prefix" in text
    assert mask_url(s.database_url).count("***") == 1


def test_monitor_flags_land_in_the_settings_object_over_the_variable():
    environ = {"DBOPS_MONITOR_MINUTES": "10"}
    assert load_settings("local", environ=environ).monitor_window_s == 600
    assert load_settings("local", environ=environ, monitor_minutes=2).monitor_window_s == 120
    assert load_settings("local", environ=environ, monitor_minutes=2, monitor_seconds=7).monitor_window_s == 7
    assert load_settings("local", environ=environ, monitor_seconds=0).monitor_window_s == 0


def _project(tmp_path, block: str):
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "shop"\n\n' + block)
    return {"DBOPS_PROJECT_ROOT": str(tmp_path)}


def test_tool_dbops_sets_what_the_environment_leaves_unset(tmp_path):
    environ = _project(tmp_path, '[tool.dbops]\nurl-variables = ["APP_DB"]\nlock-timeout-ms = 3000\n'
                                 'backup-compression = "zstd"\n\n[tool.dbops.env.prod]\n'
                                 'health-url = "https://api.example.com/health"\n\n[tool.dbops.fleet]\nanything = 1\n')
    prod = load_settings("prod", environ={**environ, "PROD_DATABASE_URL": "postgres://a:s3cr3t@db.example.com/app"})
    assert (prod.lock_timeout_ms, prod.backup_compression, prod.health_url) == (
        3000, "zstd:3", "https://api.example.com/health")
    local = load_settings("local", environ={**environ, "DBOPS_LOCK_TIMEOUT_MS": "10"})
    assert (local.lock_timeout_ms, local.health_url) == (10, None)  # the environment wins; prod's table is prod's
    assert load_settings("local", environ={**environ, "DBOPS_LOCK_TIMEOUT_MS": ""}).lock_timeout_ms == 3000


@pytest.mark.parametrize(("line", "words"), [
    ('database-url = "postgresql://app:pw@db/app"', ["database-url: holds a secret", "set DATABASE_URL in the env"]),
    ('notify-webhook-url = "https://hooks/x"', ["notify-webhook-url: holds a secret"]),
    ("monitor-minuts = 3", ["monitor-minuts: is not a dbops setting", "similar keys: monitor-minutes"]),
    ("lock-timeout-ms = -4", ["DBOPS_LOCK_TIMEOUT_MS: must be at least 1", "set by lock-timeout-ms in [tool.dbops]"]),
    ("lock-timeout-ms = true", ["must be a string or a number"]),
])
def test_tool_dbops_bad_keys_are_refused_with_the_fix(tmp_path, line, words):
    environ = _project(tmp_path, f"[tool.dbops]\n{line}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings("local", environ=environ)
    text = exc.value.render()
    assert all(w in text for w in words), text
    assert "pw@" not in text


def test_tool_dbops_unknown_environment_table(tmp_path):
    environ = _project(tmp_path, '[tool.dbops.env.qa]\nhealth-url = "https://x"\n')
    with pytest.raises(ConfigError, match=r"\[tool.dbops.env.qa\]: is not an environment's table"):
        load_settings("local", environ=environ)


def test_every_tool_dbops_key_is_in_the_configuration_table():
    from pathlib import Path

    from dbops.settings import pyproject_keys

    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    missing = [key for key, variable in pyproject_keys().items() if f"`{variable}`" not in doc]
    assert not missing, f"settings a [tool.dbops] key gives but docs/configuration.md does not list: {missing}"
