"""Secrets never printed, never written: every task with distinctive secrets, also under DBOPS_DEBUG=1.

The tasks run as ``inv`` processes against real Postgres, real S3 (SeaweedFS),
the real app and a real webhook receiver, so every library logger (botocore,
httpx, httpcore, alembic, sqlalchemy) gets its say under debug.  Then all
output, every file the runs wrote and every stored object are searched for
the database password, the AWS access key id and secret key, the webhook's
token and the health URL's query token.
"""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import ClassVar

import pytest
from deploy_fixtures import ADD_PHONE, BASE, SECRET, add_revision
from project_copy import ROOT
from s3_server import ACCESS_KEY, SECRET_KEY

WEBHOOK_TOKEN = "T0K3N-webhook-9f8e7d6c"
HEALTH_TOKEN = "HealthTok-5a4b3c2d1e"


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[bytes]] = []

    def do_POST(self):
        self.received.append(self.rfile.read(int(self.headers.get("content-length") or 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/services/{WEBHOOK_TOKEN}"
    server.shutdown()


def inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL") and not k.startswith("DBOPS_")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args], env=full,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("debug", ["0", "1"], ids=["plain", "DBOPS_DEBUG=1"])
def test_no_task_prints_writes_or_stores_a_secret(project: Path, db, deploy_env, s3, webhook, debug):
    env = {
        **deploy_env,
        "DBOPS_DEBUG": debug,
        "PROD_BACKUP_URL": "s3://dbops-backups/secrets",
        "PROD_HEALTH_URL": deploy_env["PROD_HEALTH_URL"] + f"?token={HEALTH_TOKEN}",
        "NOTIFY_WEBHOOK_URL": webhook,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ENDPOINT_URL_S3": s3.endpoint,
        "AWS_REGION": "us-east-1",
        "DATABASE_URL": deploy_env["PROD_DATABASE_URL"],
    }
    add_revision(project, "a1", BASE, *ADD_PHONE)
    runs = [
        inv("config", "--env", "prod", env=env),
        inv("status", env=env),
        inv("backup", "--env", "prod", "--quiet", env=env),
        inv("backups", "--env", "prod", env=env),
        inv("rehearse", "--env", "prod", env=env),
        inv("deploy", "--env", "prod", "--plan", env=env),
        inv("deploy", "--env", "prod", "--monitor-seconds", "1", env=env),
        inv("monitor", "--env", "prod", "--seconds", "1", env=env),
        inv("verify-backup", "--env", "prod", "--quiet", env=env),
        inv("prune-backups", "--env", "prod", env=env),
        inv("restore", "--env", "prod", "--quiet", env=env),
        inv("rollback", "--env", "prod", env=env),
        inv("lint", "--env", "prod", "--revision", "a1", env=env),
        inv("restore", "--env", "prod", "--backup", "nope", env=env),  # an error path too
        inv("backups", "--env", "prod", env={**env, "AWS_SECRET_ACCESS_KEY": SECRET_KEY + "x"}),  # refused creds
    ]
    assert [r.returncode for r in runs[:13]] == [0] * 13, "\n".join(r.stdout + r.stderr for r in runs if r.returncode)
    assert runs[13].returncode == 2 and runs[14].returncode != 0
    if debug == "1":
        assert "DEBUG botocore" in "".join(r.stderr for r in runs)  # the library loggers did speak
        assert "DEBUG httpx" in "".join(r.stderr for r in runs) or "DEBUG httpcore" in "".join(r.stderr for r in runs)
    secrets = [SECRET, ACCESS_KEY, SECRET_KEY, WEBHOOK_TOKEN, HEALTH_TOKEN]
    output = "\n".join(r.stdout + r.stderr for r in runs)
    written = {str(p): p.read_bytes() for p in project.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    client = s3.client()
    stored = {o["Key"]: client.get_object(Bucket="dbops-backups", Key=o["Key"])["Body"].read()
              for o in client.list_objects_v2(Bucket="dbops-backups").get("Contents", [])}
    assert stored and any(k.endswith(".json") and "deploy_prod" in k for k in stored)
    for secret in secrets:
        assert secret not in output, f"{secret} printed:\n" + "\n".join(
            line for line in output.splitlines() if secret in line)[:2000]
        leaked = [p for p, data in {**written, **stored}.items()
                  if secret.encode() in data and not p.endswith((".py", ".ini"))]
        assert not leaked, f"{secret} written to {leaked}"
    assert _Hook.received and all(SECRET.encode() not in body for body in _Hook.received)


def test_the_masking_filter_covers_library_loggers_and_tracebacks(monkeypatch, capsys):
    """The filter on its own: the lines botocore, httpx and psycopg2 write under debug, and a traceback."""
    import logging

    from dbops.cli import setup_logging

    root_level = logging.getLogger().level
    monkeypatch.setenv("DBOPS_DEBUG", "1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("NOTIFY_WEBHOOK_URL", f"https://hooks.example.com/services/{WEBHOOK_TOKEN}")
    monkeypatch.setenv("PROD_HEALTH_URL", f"https://api.example.com/health?token={HEALTH_TOKEN}")
    monkeypatch.setenv("PROD_DATABASE_URL", f"postgresql://app:{SECRET}@db.example.com/app")
    setup_logging()
    for name in ("botocore.auth", "botocore.credentials", "httpx", "urllib3.connectionpool", "dbops"):
        # an env.py's logging.config.fileConfig() earlier in the same process disables existing loggers
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    logging.getLogger("botocore.auth").debug(
        "Signature: Authorization: AWS4-HMAC-SHA256 Credential=%s/20261201/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0a1b2c3d4e5f", ACCESS_KEY)
    logging.getLogger("botocore.credentials").debug("found credentials %r", {"secret": SECRET_KEY})
    logging.getLogger("httpx").info('HTTP Request: POST https://hooks.example.com/services/%s "HTTP/1.1 200 OK"',
                                    WEBHOOK_TOKEN)
    logging.getLogger("httpx").info("HTTP Request: GET https://api.example.com/health?token=%s", HEALTH_TOKEN)
    logging.getLogger("urllib3.connectionpool").debug("connect dsn=host=db user=app password=%s dbname=app", SECRET)
    try:
        raise RuntimeError(f"boom postgresql://app:{SECRET}@db.example.com/app")
    except RuntimeError:
        logging.getLogger("dbops").exception("debug traceback")
    err = capsys.readouterr().err
    assert err.count("DEBUG") >= 3 and "password=***" in err and "Traceback" in err and "***" in err
    for secret in (SECRET, ACCESS_KEY, SECRET_KEY, WEBHOOK_TOKEN, HEALTH_TOKEN, "0a1b2c3d4e5f"):
        assert secret not in err, err
    logging.getLogger().handlers[:] = [h for h in logging.getLogger().handlers if type(h).__name__ != "_StderrHandler"]
    logging.getLogger().setLevel(root_level)


#: URLs as providers hand them out, with the secrets each one holds and the settings that must stay readable
REAL_URLS = [
    ("PROD_DATABASE_URL",  # Neon
     "postgresql://neondb_owner:npg_AbC123xyzQ@ep-cool-darkness-123456.us-east-2.aws.neon.tech/neondb"
     "?sslmode=require&channel_binding=require",
     ["npg_AbC123xyzQ"], ["sslmode=require", "channel_binding=require"]),
    ("DATABASE_URL",  # RDS with the CA mounted, a client key with a passphrase, a libpq options string
     "postgresql://app:Rds%2FPa55-w0rd@prod.abc123.eu-west-1.rds.amazonaws.com:5432/app?sslmode=verify-full"
     "&sslrootcert=/certs/global-bundle.pem&sslcert=/certs/client.crt&sslkey=/certs/client.key"
     "&sslpassword=Key-Pa55phrase&application_name=shop&target_session_attrs=read-write",
     ["Rds/Pa55-w0rd", "Rds%2FPa55-w0rd", "Key-Pa55phrase"],
     ["sslmode=verify-full", "sslrootcert=/certs/global-bundle.pem", "sslkey=/certs/client.key",
      "application_name=shop", "target_session_attrs=read-write"]),
    ("STAGING_DATABASE_URL",  # a password in the query string, and the system's CAs
     "postgresql://db.example.com/app?user=app&password=Qry-Pa55word&sslmode=verify-full&sslrootcert=system",
     ["Qry-Pa55word"], ["sslmode=verify-full", "sslrootcert=system"]),
    ("PROD_HEALTH_URL",  # a token, an Azure Functions key, a harmless switch
     "https://api.example.com/api/health?token=HealthTok-5a4b3c2d1e&code=Zx9y8w7v6u5t4s3r&verbose=full",
     ["HealthTok-5a4b3c2d1e", "Zx9y8w7v6u5t4s3r"], []),
]


@pytest.mark.parametrize(("variable", "url", "secrets", "settings"), REAL_URLS, ids=lambda v: str(v)[:24])
def test_masking_hides_secrets_and_only_secrets(variable, url, secrets, settings):
    from dbops.redact import environment_secrets, mask_text, mask_url

    known = environment_secrets({variable: url})
    assert set(secrets) <= set(known) and not {"require", "verify-full", "system", "full", "shop"} & set(known)
    shown = mask_url(url)
    for secret in secrets:
        assert secret not in shown, shown
    for setting in settings:
        assert setting in shown, shown
    # free text: a driver's error naming the settings, the hint dbops prints for sslrootcert=system
    text = mask_text(f"cannot connect to {shown}: {' '.join(settings)} failed for {' '.join(secrets)}; "
                     "sslrootcert=system uses the system's CAs; password=" + (secrets[0]), known)
    assert "sslrootcert=system uses the system's CAs" in text and all(s in text for s in settings), text
    assert not any(secret in text for secret in secrets), text


def test_a_refused_connection_names_every_setting_of_the_url_and_no_secret(tmp_path: Path):
    """Through `inv` as a user runs it: a Neon-style URL with a client key's passphrase, to a port nothing serves."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = (f"postgresql://neondb_owner:npg_AbC123xyzQ@127.0.0.1:{port}/neondb?sslmode=require"
           "&channel_binding=require&application_name=shop&sslpassword=Key-Pa55phrase")
    env = {"PROD_DATABASE_URL": url, "PROD_BACKUP_URL": str(tmp_path / "backups"), "DBOPS_PROJECT_ROOT": str(ROOT)}
    for run in (inv("backup", "--env", "prod", env=env), inv("config", "--env", "prod", env=env)):
        shown = run.stdout + run.stderr
        assert "npg_AbC123xyzQ" not in shown and "Key-Pa55phrase" not in shown, shown
        assert ("sslmode=require" in shown and "channel_binding=require" in shown and "application_name=shop" in shown
                and "sslpassword=***" in shown), shown
    failed = inv("backup", "--env", "prod", env=env)
    assert failed.returncode == 3 and failed.stderr.startswith(
        f"error: cannot connect to postgresql+psycopg2://neondb_owner:***@127.0.0.1:{port}/neondb?"), failed.stderr
    assert "sslpassword=***: connection to server" in failed.stderr, failed.stderr
