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
