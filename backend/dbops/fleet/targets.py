"""The fleet of an environment: its groups in order and their targets, from ``[tool.dbops.fleet.<env>]``.

A target is one tenant: a database (a list of URLs; a URL template plus names; a template plus a SQL query
on a catalog database that returns the names) or a schema of one shared database (a list of schemas, or a
query on that database).  A schema target's URL carries ``options=-csearch_path=<schema>``: every
connection to it - dbops' own, env.py's (the fence hands env.py that URL, and ``DBOPS_SCHEMA``) - finds
that schema's tables and its own ``alembic_version`` first.

Secrets come only from the environment: a URL in the configuration names its password as ``${VARIABLE}``;
a literal password there is refused.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from .. import postgres
from ..errors import ConfigError, UsageError
from ..redact import mask_url
from ..settings import Settings, normalize_database_url

#: the backup policies: one backup per target, one per database (a schema fleet's shared database), one pass per
#: server over its databases before the first wave (a server-level entry in the run manifest), none
BACKUP_POLICIES = ("per-target", "per-database", "per-server", "none")
#: connections one target's deploy holds at most when its run takes no backup: the deploy lock, dbops' own
#: connection (and one to spare)
CONNECTIONS_PER_TARGET = 3
#: ... and when its run takes its backup (``per-target``): the backup's own connection (it exports the snapshot)
#: and pg_dump's besides
CONNECTIONS_WITH_BACKUP = 4
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LITERAL_PASSWORD = re.compile(r"://[^/@:]*:([^/@]+)@")


@dataclass(frozen=True)
class Target:
    """One tenant: its name (unique in the fleet), its group, where it lives."""

    name: str
    group: str
    url: URL = field(repr=False)
    #: the tenant's schema (schema per tenant), else None (database per tenant)
    schema: str | None = None

    @property
    def database(self) -> str:
        return self.url.database or ""

    @property
    def server(self) -> str:
        """Which server the target lives on: the connection budget is counted per server."""
        return f"{self.url.host or 'localhost'}:{self.url.port or 5432}"

    @property
    def place(self) -> tuple[str, str]:
        """(server, database): schema targets of one database share it (and its deploy lock)."""
        return self.server, self.database

    @property
    def database_url(self) -> URL:
        """The database's URL without the schema's search_path (its backup, its catalog reads)."""
        return self.url.difference_update_query(["options"]) if self.schema else self.url

    def describe(self) -> str:
        where = mask_url(self.database_url)
        return f"{where} schema {self.schema}" if self.schema else where

    def to_dict(self) -> dict:
        return {"name": self.name, "group": self.group, "database": self.database, "schema": self.schema,
                "server": self.server}


@dataclass(frozen=True)
class Group:
    name: str
    targets: tuple[Target, ...]
    #: a failure here stops the rollout before any other group
    canary: bool = False
    #: targets per wave inside the group (None: the whole group is one wave)
    batch: int | None = None

    def waves(self) -> list[tuple[Target, ...]]:
        size = self.batch or len(self.targets) or 1
        return [self.targets[i:i + size] for i in range(0, len(self.targets), size)]


@dataclass(frozen=True)
class Fleet:
    """An environment's fleet and its rollout settings."""

    env: str
    groups: tuple[Group, ...]
    #: connections dbops may hold at once on one server
    budget: int = 12
    backup: str = "per-target"
    backup_reason: str | None = None
    max_failures: int = 0
    #: where it was configured, for messages
    source: str = ""

    @property
    def targets(self) -> list[Target]:
        return [t for g in self.groups for t in g.targets]

    def target(self, name: str) -> Target:
        for t in self.targets:
            if t.name == name:
                return t
        raise UsageError(f"no target {name!r} in the {self.env} fleet ({self.source})",
                         hint="`dbops fleet.status --env " + self.env + "` lists the targets")

    @property
    def connections_per_target(self) -> int:
        """What one target's deploy holds at most: a per-target backup in its run adds two connections."""
        return CONNECTIONS_WITH_BACKUP if self.backup == "per-target" else CONNECTIONS_PER_TARGET

    @property
    def slots(self) -> int:
        """Targets deployed at once on one server: the budget over what one target's deploy holds."""
        return max(1, self.budget // self.connections_per_target)


# -- reading the configuration ---------------------------------------------------------------------------------


def fleet_table(settings: Settings, fleet_file: str | Path | None = None) -> tuple[dict, str]:
    """The fleet table of ``settings.env`` and where it was found: ``--fleet-file`` / ``DBOPS_FLEET_FILE``
    (:attr:`Settings.fleet_file`: a TOML file whose top-level tables are the environments), else
    ``[tool.dbops.fleet.<env>]`` in the project's pyproject.toml."""
    named = fleet_file or settings.fleet_file
    env = settings.env
    if named:
        path = Path(named)
        data = _read_toml(path)
        where = f"{path} [{env}]"
        table = data.get(env)
    else:
        path = settings.root / "pyproject.toml"
        data = _read_toml(path) if path.is_file() else {}
        where = f"{path} [tool.dbops.fleet.{env}]"
        table = data.get("tool", {}).get("dbops", {}).get("fleet", {}).get(env)
    if not isinstance(table, dict):
        raise UsageError(f"no fleet configured for --env {env}: {where} is missing",
                         hint="add the table (docs/fleet.md shows one), or name a fleet file with --fleet-file "
                         "or DBOPS_FLEET_FILE")
    return table, where


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"the fleet file {path} does not exist", hint="check --fleet-file / DBOPS_FLEET_FILE") \
            from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path} cannot be read as TOML: {exc}", hint="fix the file; nothing was run") from None


def load_fleet(settings: Settings, fleet_file: str | Path | None = None, *,
               environ: Mapping[str, str] | None = None) -> Fleet:
    """The fleet of ``settings.env``, every target resolved (catalog and schema queries run, read-only)."""
    environ = os.environ if environ is None else environ
    table, where = fleet_table(settings, fleet_file)
    raw_groups = table.get("groups")
    if not isinstance(raw_groups, list) or not raw_groups:
        raise ConfigError(where, "has no groups", hint="add [[...groups]] tables, the canary group first")
    groups: list[Group] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_groups):
        if not isinstance(raw, dict):
            raise ConfigError(where, f"groups[{i}] is not a table")
        name = str(raw.get("name") or f"group{i + 1}")
        here = f"{where} group {name!r}"
        targets = tuple(_targets(raw, name, here, settings, environ))
        for t in targets:
            if t.name in seen:
                raise ConfigError(here, f"names target {t.name!r} twice in the fleet",
                                  hint="every target (database, or database/schema) appears once")
            seen.add(t.name)
        batch = raw.get("batch")
        if batch is not None and (not isinstance(batch, int) or batch < 1):
            raise ConfigError(here, f"batch must be a whole number of targets, at least 1; got {batch!r}")
        groups.append(Group(name, targets, canary=bool(raw.get("canary", name == "canary")), batch=batch))
    backup = str(table.get("backup", "per-target"))
    if backup not in BACKUP_POLICIES:
        raise ConfigError(where, f"backup = {backup!r} is not a policy", hint=f"one of: {', '.join(BACKUP_POLICIES)}")
    reason = table.get("backup-reason")
    if backup == "none" and not (isinstance(reason, str) and reason.strip()):
        raise ConfigError(where, 'backup = "none" needs backup-reason = "why no backup is taken"',
                          hint="say why (e.g. the provider's point-in-time recovery covers it)")
    budget = _whole(table, "budget", 12, where, minimum=1)
    return Fleet(settings.env, tuple(groups), budget=budget, backup=backup,
                 backup_reason=reason if backup == "none" else None,
                 max_failures=_whole(table, "max-failures", 0, where, minimum=0), source=where)


def variables(table: object) -> tuple[str, ...]:
    """Every ``${NAME}`` the fleet table names, in order (the secrets a shard needs)."""
    found: list[str] = []
    if isinstance(table, dict):
        for value in table.values():
            found += variables(value)
    elif isinstance(table, list):
        for value in table:
            found += variables(value)
    elif isinstance(table, str):
        found += _VARIABLE.findall(table)
    return tuple(dict.fromkeys(found))


def _whole(table: dict, key: str, default: int, where: str, *, minimum: int) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(where, f"{key} must be a whole number, at least {minimum}; got {value!r}")
    return value


def expand(raw: str, where: str, environ: Mapping[str, str]) -> str:
    """``${NAME}`` replaced by the variable's value; a literal password is refused (secrets only from the
    environment)."""
    literal = _LITERAL_PASSWORD.search(raw)
    if literal and not _VARIABLE.fullmatch(literal.group(1)):
        raise ConfigError(where, "holds a password in the configuration file",
                          hint="secrets come only from the environment: write the password as ${VARIABLE} "
                          "(e.g. postgresql://app:${TENANT_DB_PASSWORD}@db:5432/{name})")

    def value(m: re.Match) -> str:
        name = m.group(1)
        if not environ.get(name):
            raise ConfigError(name, f"is not set (named in {where})", hint=f"export {name}")
        return environ[name]

    return _VARIABLE.sub(value, raw)


def _url(raw: str, where: str, environ: Mapping[str, str]) -> URL:
    return normalize_database_url(expand(raw, where, environ), variable=where)


def _names(raw: dict, here: str, settings: Settings, environ: Mapping[str, str], *, key: str) -> list[str]:
    """Names listed under ``key``, or returned by ``<key>-query`` (first column) on ``catalog`` (or the
    group's database)."""
    if key in raw:
        names = raw[key]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(here, f"{key} must be a list of names")
        return names
    query = raw.get(f"{key}-query")
    if not isinstance(query, str):
        raise ConfigError(here, f"lists no {key} (or {key}-query)")
    where_url = raw.get("catalog") or raw.get("database")
    if not isinstance(where_url, str):
        raise ConfigError(here, f"{key}-query needs catalog = \"postgresql://...\" (the database it runs on)")
    url = _url(where_url, here, environ)
    with postgres.connect(url, name="dbops fleet catalog", timeout=settings.connect_timeout_s) as conn:
        try:
            rows = conn.execute(sa.text(query)).all()
        except sa.exc.SQLAlchemyError as exc:
            raise ConfigError(here, f"{key}-query failed on {mask_url(url)}: {type(exc.orig or exc).__name__}",
                              details=str(getattr(exc, "orig", exc)).strip()[:500],
                              hint="run the query by hand (psql) and fix it") from None
        conn.rollback()
    return [str(r[0]) for r in rows]


def _targets(raw: dict, group: str, here: str, settings: Settings, environ: Mapping[str, str]) -> list[Target]:
    if "urls" in raw:
        urls = raw["urls"]
        if not isinstance(urls, list):
            raise ConfigError(here, "urls must be a list of database URLs")
        out = []
        for u in urls:
            url = _url(str(u), here, environ)
            out.append(Target(url.database or "", group, url))
        return out
    if "template" in raw:
        template = str(raw["template"])
        if "{name}" not in template:
            raise ConfigError(here, "template has no {name} placeholder",
                              hint="e.g. postgresql://app:${TENANT_DB_PASSWORD}@db:5432/tenant_{name}")
        names = _names(raw, here, settings, environ, key="names")
        out = []
        for n in names:
            _check_name(n, here)
            url = _url(template.replace("{name}", n), here, environ)
            out.append(Target(n, group, url))
        return out
    if "database" in raw:
        base = _url(str(raw["database"]), here, environ)
        schemas = _names(raw, here, settings, environ, key="schemas")
        out = []
        for s in schemas:
            _check_name(s, here)
            url = base.update_query_dict({"options": f"-csearch_path={s}"})
            out.append(Target(f"{base.database}/{s}", group, url, schema=s))
        return out
    raise ConfigError(here, "names no targets",
                      hint="give urls = [...], or template + names / names-query, or database + schemas / "
                      "schemas-query")


def _check_name(name: str, here: str) -> None:
    if not _NAME.fullmatch(name):
        raise ConfigError(here, f"{name!r} is not a plain name (letters, digits and _, at most 63)",
                          hint="tenant names go into URLs and search_path: keep them plain")
