"""Preflight: the deploy target, and what would be deployed there, checked without changing anything.

Settings are complete; the URL is a direct connection (not a pooled
endpoint: Neon ``-pooler``, Supabase's pooler, port 6543); the server
answers; the history has one head; applied migration files are unchanged
since they were applied; and how many revisions are pending (more than one
needs ``--allow-multiple``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from alembic.script import Script
from sqlalchemy.engine import URL, Connection

from .. import health
from ..errors import ConfigError, Refused
from ..health import HealthResult
from ..migrations import Project
from ..servers import environment_url
from ..settings import Settings
from . import checksums
from .report import PendingRevision


@dataclass
class Preflight:
    server_version: str
    current: tuple[str, ...]
    head: str
    pending: list[Script]
    checks: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)
    #: the health URL's answer now (when revisions are pending): the plan's words follow what it speaks
    health: HealthResult | None = None

    @property
    def nothing_pending(self) -> bool:
        return not self.pending

    def pending_rows(self) -> list[PendingRevision]:
        return [PendingRevision(s.revision, s.doc, Path(s.path).name) for s in self.pending]


def target_url(settings: Settings, *, need_backup: bool = True, need_health: bool = True) -> URL:
    """The database to deploy to: the environment's URL (pooled endpoints refused), or for --env local the
    tool's own server; outside local, BACKUP_URL and HEALTH_URL are mandatory (changes nothing)."""
    url = environment_url(settings, purpose="deploy to")
    if not settings.is_local:
        scoped = settings.env.upper()
        if need_backup and not settings.backup_url:
            raise ConfigError(
                f"{scoped}_BACKUP_URL",
                f"is not set: a backup is mandatory before a {settings.env} deploy",
                hint=f"export {scoped}_BACKUP_URL (or BACKUP_URL), e.g. s3://my-bucket/dbops/{settings.env}",
            )
        if need_health and not settings.health_url:
            raise ConfigError(
                f"{scoped}_HEALTH_URL",
                f"is not set: a {settings.env} deploy verifies the app's health endpoint",
                hint=f"export {scoped}_HEALTH_URL (or HEALTH_URL): your app's health endpoint, e.g. "
                "https://api.example.com/health (any endpoint that answers HTTP 200 when the app is up)",
            )
    return url


def inspect(conn: Connection, project: Project, settings: Settings, *, allow_multiple: bool = False) -> Preflight:
    """Run every read-only check; raise the first refusal."""
    version = conn.execute(sa.text("SHOW server_version")).scalar_one()
    checks = [f"connected over a direct connection (PostgreSQL {version})"]
    head = project.single_head()
    checks.append(f"one head: {head}")
    current = project.current(conn)
    pending = project.pending(current)
    verification = checksums.verify(conn, project, current, settings.env)
    if verification.checked:
        checks.append(f"{len(verification.checked)} applied migration file(s) unchanged since applied")
    if verification.unrecorded:
        checks.append(f"{len(verification.unrecorded)} applied revision(s) have no checksum yet "
                      "(recorded by this deploy)")
    if conn.in_transaction():
        conn.rollback()
    if len(pending) > 1 and not allow_multiple:
        raise Refused(
            f"{len(pending)} revisions are pending ({', '.join(s.revision for s in pending)}); "
            "a deploy ships one at a time",
            details="\n".join(f"{s.revision}  {s.doc}" for s in pending),
            hint="deploy them one release at a time, or pass --allow-multiple to apply them in one run "
            "(each still in its own transaction)",
        )
    checks.append(f"{len(pending)} pending revision(s)")
    if pending:  # models that fail to import are found now, before the backup
        project.load_env(conn.engine.url)
        checks.append("env.py and the models load")
    if pending and settings.health_url:  # a mistyped HEALTH_URL is found now, not after the upgrade
        h = health.check(settings.health_url, timeout=settings.health_timeout_s)
        if h.status is None:
            raise Refused(
                f"the health URL {h.url} does not answer ({h.reason}); verify would fail after the upgrade",
                hint="check HEALTH_URL (scheme, host, port, path) and that the app runs; nothing was changed",
                exit_code=3,  # a service that does not answer (docs/container.md), as an unreachable database
            )
        checks.append(f"health URL answers (HTTP {h.status}"
                      + (", dbops' health contract" if h.contract else "") + ")")
    else:
        h = None
    return Preflight(version, current, head, pending, checks, verification.unrecorded, h)
