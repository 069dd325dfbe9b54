import logging
import os
import uuid

import pytest
import sqlalchemy as sa

from dbops.errors import ConfigError, DatabaseUnreachable
from dbops.servers import DockerServer, EmbeddedServer, UrlServer, choose_provider, server_for
from dbops.servers.embedded import FAST_OPTIONS, free_port
from dbops.settings import load_settings, normalize_database_url


def test_explicit_provider_wins():
    assert choose_provider(load_settings(provider="embedded",
                                         environ={"DATABASE_URL": "postgres://u@h/d"})) == "embedded"


def test_database_url_selects_url_provider():
    s = load_settings(environ={"DATABASE_URL": "postgres://u:p@h/d"})
    assert choose_provider(s) == "url"
    assert isinstance(server_for(s), UrlServer)


def test_without_url_docker_or_embedded(monkeypatch):
    from dbops.containers import engine as dockerctl
    from dbops.servers.docker import unavailable

    s = load_settings(environ={})
    usable = dockerctl.engine_available() and unavailable(s.postgres_image, s.docker_container) is None
    assert choose_provider(s) == ("docker" if usable else "embedded")


@pytest.mark.docker
def test_a_running_engine_without_the_postgres_image_falls_back_to_embedded_and_says_why(caplog, monkeypatch):
    # an env.py's logging.config.fileConfig() earlier in the same process may have disabled the logger
    monkeypatch.setattr(logging.getLogger("dbops.servers"), "disabled", False)
    image = f"dbops-test/no-such-postgres-{uuid.uuid4().hex[:8]}:1"
    s = load_settings(environ={"DBOPS_POSTGRES_IMAGE": image})
    with caplog.at_level("WARNING", logger="dbops.servers"):
        assert choose_provider(s) == "embedded"
    assert isinstance(server_for(s), EmbeddedServer)
    lines = [r.getMessage() for r in caplog.records if r.name == "dbops.servers"]
    assert len(lines) == 2 and lines[0] == lines[1], lines  # one line per choice
    assert image in lines[0] and "could not be pulled" in lines[0] and "using the embedded server" in lines[0]
    assert "\n" not in lines[0]


@pytest.mark.docker
def test_a_running_engine_with_the_postgres_image_stays_docker(caplog):
    image = os.environ.get("DBOPS_POSTGRES_IMAGE") or "postgres:16"
    from dbops.servers.docker import unavailable

    if unavailable(image, "dbops-test-none") is not None:
        pytest.skip(f"{image} is not here (set DBOPS_POSTGRES_IMAGE to a local image)")
    with caplog.at_level("WARNING", logger="dbops.servers"):
        assert choose_provider(load_settings(environ={"DBOPS_POSTGRES_IMAGE": image})) == "docker"
    assert not [r for r in caplog.records if r.name == "dbops.servers"]


def test_url_provider_without_url_says_which_variable():
    with pytest.raises(ConfigError, match="DATABASE_URL: is not set, and --db url needs it") as exc:
        server_for(load_settings("staging", provider="url", environ={}))
    assert exc.value.variable == "DATABASE_URL" and "--db embedded" in exc.value.hint


def test_unreachable_url_says_what_and_hides_password():
    port = free_port()
    url = normalize_database_url(f"postgresql://app:pa55word@127.0.0.1:{port}/app")
    with pytest.raises(DatabaseUnreachable) as exc:
        UrlServer(url, connect_timeout=2).start()
    text = exc.value.render()
    assert f"127.0.0.1:{port}" in text and "Connection refused" in text
    assert "pa55word" not in text
    assert "DATABASE_URL" in text  # the hint names what to check
    assert exc.value.exit_code == 3


def test_embedded_keeps_data_across_restart(tmp_path):
    server = EmbeddedServer(tmp_path / "emb", port=0, options=FAST_OPTIONS)
    try:
        url = server.start()
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE kept (x int)"))
            conn.execute(sa.text("INSERT INTO kept VALUES (42)"))
        engine.dispose()
        server.stop()
        assert not server.is_running()
        url = server.start()
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT x FROM kept")).scalar_one() == 42
        engine.dispose()
        assert url.host == "127.0.0.1"
    finally:
        server.destroy()
    assert not (tmp_path / "emb").exists()


def test_embedded_picks_another_port_when_preferred_is_taken(tmp_path, pg_server):
    busy = pg_server.url().port
    server = EmbeddedServer(tmp_path / "emb", port=busy, options=FAST_OPTIONS)
    assert server.port != busy


@pytest.mark.docker
def test_docker_provider_round_trip():
    name = f"dbops-test-{uuid.uuid4().hex[:8]}"
    image = os.environ.get("DBOPS_POSTGRES_IMAGE", "postgres:16")
    server = DockerServer(image=image, container=name, volume=name)
    try:
        url = server.start()
        assert url.host == "127.0.0.1" and url.password  # generated, not a fixed default
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE kept (x int)"))
            conn.execute(sa.text("INSERT INTO kept VALUES (7)"))
        engine.dispose()
        server.stop()
        assert not server.is_running()
        url = server.start()  # same container and volume: data survived
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT x FROM kept")).scalar_one() == 7
        engine.dispose()
        c = server._container()
        bindings = c.attrs["NetworkSettings"]["Ports"]["5432/tcp"]
        assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
    finally:
        server.destroy()
