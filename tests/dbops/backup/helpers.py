"""What the backup tests share: settings for a test project, seeding, snapshots, the store's keys, running inv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from s3_server import ACCESS_KEY, BUCKETS, SECRET_KEY

from dbops import backup, postgres
from dbops.migrations import Project
from dbops.postgres import clients as pgtools
from dbops.postgres import programs
from dbops.settings import load_settings

ROOT = Path(__file__).resolve().parents[3]
BUCKET = BUCKETS[0]
DB_PASSWORD = "db-PASSW0RD-never-print"
FIRST_REV = "dc524d74cab6"
LATER_MIGRATION = '''"""add comments

Revision ID: 0002comments
Revises: dc524d74cab6
"""
from alembic import op
import sqlalchemy as sa

revision = "0002comments"
down_revision = "dc524d74cab6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("comments", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.Text))
    op.add_column("users", sa.Column("nickname", sa.String(30)))
    op.execute("INSERT INTO comments (body) VALUES ('after the backup')")


def downgrade() -> None:
    op.drop_column("users", "nickname")
    op.drop_table("comments")
'''


def with_password(url):
    return url.set(password=DB_PASSWORD)  # the test server trusts 127.0.0.1; the password only has to stay hidden


def settings_for(project: Path, url, *, backup_url: str = f"s3://{BUCKET}/team", env: str = "staging", **extra):
    environ = dict(os.environ)
    environ.update({
        "DBOPS_PROJECT_ROOT": str(project),
        f"{env.upper()}_DATABASE_URL": with_password(url).render_as_string(hide_password=False),
        f"{env.upper()}_BACKUP_URL": backup_url,
        **extra,
    })
    return load_settings(env, environ=environ)


def migrate(project: Path, url, target: str = "head") -> None:
    engine = postgres.make_engine(url)
    with engine.begin() as conn:
        Project(project / "alembic.ini").upgrade(conn, target)
    engine.dispose()


def seed(url, users: int = 50, tag: str = "u") -> None:
    engine = postgres.make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO users (id, email, name) SELECT gen_random_uuid(), :tag || g || '@example.com', 'User ' || g "
            "FROM generate_series(1, :n) g"), {"n": users, "tag": tag})
        conn.execute(sa.text(
            "INSERT INTO posts (author_id, title, body, published) "
            "SELECT id, 'post of ' || name, repeat('x', 100), true FROM users WHERE email LIKE :tag || '%'"),
            {"tag": tag})
    engine.dispose()


def snapshot(url) -> tuple[str, dict[str, list]]:
    """(schema DDL, every table's rows): what 'identical' means for a restore."""
    out = programs.run(
        [str(pgtools.find("pg_dump")), "--schema-only", "--no-owner", "--no-privileges",
         *programs.conninfo_args(url), programs.dbname_arg(url)],
        timeout=60, env=programs.libpq_env(url),
    ).stdout
    ddl = "\n".join(line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict", "--")))
    engine = postgres.make_engine(url)
    rows = {}
    with engine.connect() as conn:
        for table in backup.table_row_counts(conn):
            rows[table] = sorted(tuple(map(str, r)) for r in conn.execute(sa.text(f"SELECT * FROM {table}")).all())
    engine.dispose()
    return ddl, rows


def databases(server) -> set[str]:
    with postgres.admin_connection(server.url()) as conn:
        return set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())


def keys(s3, prefix: str = "") -> list[str]:
    resp = s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in resp.get("Contents", []))


def uploads(s3) -> list:
    return s3.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads") or []


def inv(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.endswith(("DATABASE_URL", "BACKUP_URL")) and k != "DBOPS_DB"}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
                          capture_output=True, text=True, env=full, timeout=300, check=False)


def cli_env(project: Path, url, s3, **extra) -> dict[str, str]:
    return {
        "DBOPS_PROJECT_ROOT": str(project),
        "STAGING_DATABASE_URL": with_password(url).render_as_string(hide_password=False),
        "STAGING_BACKUP_URL": f"s3://{BUCKET}/cli",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_ENDPOINT_URL_S3": s3.endpoint,
        "AWS_REGION": "us-east-1",
        **extra,
    }


def assert_no_secrets(r: subprocess.CompletedProcess[str]) -> None:
    text = r.stdout + r.stderr
    assert SECRET_KEY not in text and DB_PASSWORD not in text
    assert "Traceback" not in text
