"""Settings, loaded once into one typed object.

Every knob the toolkit has is read here from the environment (and nowhere
else), validated, and handed around as a frozen :class:`Settings`.  Per
environment values follow one rule: ``<ENV>_NAME`` wins over ``NAME`` (for
example ``PROD_DATABASE_URL`` over ``DATABASE_URL`` when ``--env prod``), so a
laptop can hold several environments while a container just sets ``NAME``.

The full list of variables is documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import os
import re
import ssl
import tempfile
import tomllib
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import ConfigError, UsageError
from .redact import mask_url

ENVIRONMENTS = ("local", "staging", "prod")
PROVIDERS = ("embedded", "docker", "url")

#: the driver every URL is normalised to (SQLAlchemy 2.1 maps a bare
#: ``postgresql://`` to psycopg 3, which this project does not ship)
DRIVER = "postgresql+psycopg2"

_PLACEHOLDER_SECRETS = {"changeme", "changethis", "secret", "password", "postgres"}

#: the folder of dbops' own client tools (``inv pg-clients``), one ``<major>/`` per PostgreSQL major
PG_CLIENTS_VAR = "DBOPS_PG_CLIENTS"
#: a PostgreSQL bin folder: while it is set, the only one dbops takes programs from
PG_BIN_VAR = "DBOPS_PG_BIN"
#: a PEM file of the CAs pip trusts in image builds (``none``: none; unset: this host's local CAs)
BUILD_CA_VAR = "DBOPS_BUILD_CA"
#: the base of the job image: Debian bookworm, whose libssl3 / libxml2 / libicu72 the PostgreSQL programs link
DEFAULT_PYTHON_IMAGE = "python:3.11-slim-bookworm"


#: the folder of the project dbops manages, when it is not the one found from the working folder
PROJECT_ROOT_VAR = "DBOPS_PROJECT_ROOT"
#: Flask-Migrate's place for Alembic's files (``flask db init``), under the project's folder
FLASK_MIGRATE_INI = Path("migrations", "alembic.ini")


class ProjectPlace(NamedTuple):
    """Where the managed project is: its folder (state, reports and local backups go there) and its alembic.ini."""

    root: Path
    alembic_ini: Path


def find_project(start: Path | None = None) -> ProjectPlace:
    """The project as Alembic finds it: the first folder from ``start`` (the working folder) up that holds an
    ``alembic.ini`` or a ``pyproject.toml`` with ``[tool.alembic]``, else Flask-Migrate's ``migrations/alembic.ini``
    under ``start``.  The search stops at a git repository's top; it never looks where dbops is installed.

    Raises :class:`UsageError` naming the places checked and the ways out.
    """
    start = (start or Path.cwd()).resolve()
    checked: list[Path] = []
    for folder in (start, *start.parents):
        checked.append(folder)
        if (folder / "alembic.ini").is_file() or _has_tool_alembic(folder / "pyproject.toml"):
            return ProjectPlace(folder, folder / "alembic.ini")
        if (folder / ".git").exists():
            break
    if (start / FLASK_MIGRATE_INI).is_file():
        return ProjectPlace(start, start / FLASK_MIGRATE_INI)
    folders = ", ".join(str(f) for f in checked)
    raise UsageError(
        "no Alembic project here: dbops manages the project of the folder it runs in, and found no alembic.ini",
        details=f"checked for alembic.ini (or a pyproject.toml with [tool.alembic]): {folders}\n"
                f"checked for Flask-Migrate's: {start / FLASK_MIGRATE_INI}",
        hint="run dbops from your project's folder (where alembic.ini is), or name its ini: "
             f"`dbops -c path/to/alembic.ini ...` (or ALEMBIC_CONFIG; {PROJECT_ROOT_VAR} for the project's folder)",
    )


def _has_tool_alembic(pyproject: Path) -> bool:
    """Whether ``pyproject`` has Alembic's ``[tool.alembic]`` table (``alembic init -t pyproject``)."""
    try:
        return "alembic" in tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def project_root() -> Path:
    """The managed project's folder: ``DBOPS_PROJECT_ROOT``, else the one :func:`find_project` finds."""
    env = os.environ.get(PROJECT_ROOT_VAR)
    return Path(env).resolve() if env else find_project().root


def _project(config: str | Path | None, environ: Mapping[str, str]) -> tuple[Path, Path | None]:
    """The project's folder and alembic.ini: ``--config`` / ``ALEMBIC_CONFIG`` name the ini (relative to the
    working folder, as ``alembic -c`` reads it), ``DBOPS_PROJECT_ROOT`` the folder; the rest is found."""
    chosen = config or environ.get("ALEMBIC_CONFIG", "").strip() or None
    ini = Path(chosen).resolve() if chosen else None
    if ini is not None and not ini.is_file():
        raise UsageError(
            f"alembic config {ini} does not exist",
            details=f"checked: {'--config' if config else 'ALEMBIC_CONFIG'} ({chosen})",
            hint="pass --config (or set ALEMBIC_CONFIG) with the path of an alembic.ini",
        )
    named_root = environ.get(PROJECT_ROOT_VAR) or os.environ.get(PROJECT_ROOT_VAR)
    if named_root:
        root = Path(named_root).resolve()
        if ini is None and not (root / "alembic.ini").is_file() and (root / FLASK_MIGRATE_INI).is_file():
            ini = root / FLASK_MIGRATE_INI
        return root, ini
    if ini is None:
        return find_project()
    try:  # an ini named from inside a project: that project's folder keeps the state
        return find_project().root, ini
    except UsageError:  # from elsewhere: the ini's own folder (Flask-Migrate's: the folder above migrations/)
        return (ini.parent.parent if ini.parent.name == FLASK_MIGRATE_INI.parts[0] else ini.parent), ini


def normalize_database_url(raw: str, *, variable: str = "DATABASE_URL") -> URL:
    """Parse a Postgres URL and pin it to the psycopg2 driver.

    Accepts what Neon, Render and Heroku hand out (``postgres://``,
    ``postgresql://``) and any ``postgresql+driver://`` form.  Raises
    :class:`ConfigError` naming the variable, never echoing the password.
    """
    raw = raw.strip()
    port = _url_port(raw)
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError(
            variable,
            f"has the port {port!r}; a port is a whole number from 1 to 65535",
            hint=f"fix the port in {variable} (PostgreSQL's default is 5432)",
        )
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise ConfigError(
            variable,
            "is not a database URL (expected postgresql://user:password@host:5432/dbname)",
            hint=f"set {variable} to the URL your provider shows, e.g. postgresql://app:***@db.example.com/app",
        ) from None
    backend = url.get_backend_name()
    if backend not in ("postgres", "postgresql"):
        raise ConfigError(
            variable,
            f"uses the '{backend}' scheme; only PostgreSQL URLs (postgres:// or postgresql://) are supported",
            hint=f"set {variable} to a postgresql:// URL",
        )
    if not url.host and not url.query.get("host"):
        raise ConfigError(
            variable,
            "has no host",
            hint=f"set {variable} like postgresql://user:password@host:5432/dbname",
        )
    if not url.database:
        raise ConfigError(
            variable,
            "names no database (the part after the last '/')",
            hint=f"append the database name, e.g. {mask_url(url.set(database='app'))}",
        )
    return system_roots(url, variable).set(drivername=DRIVER)


#: where Linux distributions keep the bundle of the system's trusted CAs (Debian, Ubuntu and Alpine first, then
#: Fedora / RHEL, openSUSE, macOS and the BSDs)
SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                     "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem")
#: the sslmode that ``sslrootcert=system`` takes by default and demands (libpq 16+)
_SYSTEM_ROOTS_MODE = "verify-full"


def system_ca_bundle(environ: Mapping[str, str] | None = None) -> tuple[Path | None, list[str]]:
    """The file of the system's trusted CAs, as OpenSSL finds it, and the places looked at.

    ``SSL_CERT_FILE`` first (OpenSSL's own override, which libpq's ``sslrootcert=system`` honours too), then the
    system OpenSSL's default bundle (``/usr/lib/ssl/cert.pem`` on Debian), then the distributions' bundles.
    """
    environ = os.environ if environ is None else environ
    places = [p for p in (environ.get("SSL_CERT_FILE"), ssl.get_default_verify_paths().openssl_cafile) if p]
    places += [p for p in SYSTEM_CA_BUNDLES if p not in places]
    for place in places:
        if Path(place).is_file():
            return Path(place).resolve(), places
    return None, places


def system_roots(url: URL, variable: str = "DATABASE_URL") -> URL:
    """``url`` with ``sslrootcert=system`` replaced by the file of the system's CAs (:func:`system_ca_bundle`).

    libpq 16+ reads ``system`` as "OpenSSL's default CA store", but the driver's bundled libpq looks in the
    OpenSSL folder of the machine it was built on (not Debian's store), and pg_dump / psql 14 and 15 take
    ``system`` for a file name.  A file works with every client, so dbops hands them the file; the rest of
    libpq's rule holds: ``system`` means ``sslmode=verify-full`` (the default then; a weaker mode is refused).
    """
    if url.query.get("sslrootcert") != "system":
        return url
    mode = url.query.get("sslmode")
    if mode is not None and mode != _SYSTEM_ROOTS_MODE:
        raise ConfigError(
            variable,
            f"asks sslrootcert=system with sslmode={mode}; the system's CAs are trusted only with "
            f"sslmode={_SYSTEM_ROOTS_MODE} (any public CA signs certificates for any host name, so the host name "
            "must be checked too; libpq refuses the same)",
            hint=f"use ?sslmode={_SYSTEM_ROOTS_MODE}&sslrootcert=system, or set sslrootcert to the file of the CA "
            "that signed the server's certificate (your provider's CA bundle)",
        )
    bundle, places = system_ca_bundle()
    if bundle is None:
        raise ConfigError(
            variable,
            "asks sslrootcert=system, but this machine has no bundle of trusted CAs "
            f"(looked at {', '.join(places)})",
            hint="install the system's CAs (Debian: apt-get install ca-certificates), point SSL_CERT_FILE at a "
            "bundle, or set sslrootcert to the file of the CA that signed the server's certificate (in a "
            "container, mount it: -v /path/ca.crt:/certs/ca.crt:ro and sslrootcert=/certs/ca.crt)",
        )
    return url.update_query_dict({"sslrootcert": str(bundle), "sslmode": _SYSTEM_ROOTS_MODE})


def _url_port(raw: str) -> str | None:
    """The port text of a URL's (last) host, or None; read without trusting the URL to parse."""
    netloc = urlsplit(raw.strip()).netloc.rsplit("@", 1)[-1]
    if netloc.startswith("["):  # [::1]:5432
        netloc = netloc.partition("]")[2]
    hostport = netloc.split(",")[-1]
    return hostport.rsplit(":", 1)[1] if ":" in hostport else None


def web_url(raw: str | None, variable: str) -> str | None:
    """An http(s) URL setting (HEALTH_URL, NOTIFY_WEBHOOK_URL, the S3 endpoint), checked to be well formed."""
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, f"is not an http(s) URL: {mask_url(value, secret_path=True)}",
                          hint=f"set {variable} like https://host/path")
    port = _url_port(value)
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError(variable, f"has the port {port!r}; a port is a whole number from 1 to 65535",
                          hint=f"fix the port in {variable}")
    return value


def _sse(raw: str | None, variable: str) -> str | None:
    """BACKUP_SSE: AES256 (default), aws:kms, or off/none for stores that reject the header."""
    if raw is None or raw.strip() == "":
        return _default("backup_sse")
    value = raw.strip()
    if value.lower() in ("off", "none", "false", "0"):
        return None
    if value.upper() == "AES256":
        return "AES256"
    if value.lower() in ("aws:kms", "aws:kms:dsse"):
        return value.lower()
    raise ConfigError(variable, f"must be AES256, aws:kms or off, got {value!r}")


#: pg_dump's compression methods and their levels (``METHOD[:LEVEL]``; a bare level is gzip's, 0 is none)
COMPRESSION_LEVELS = {"gzip": (1, 9, 6), "zstd": (1, 22, 3), "lz4": (1, 12, 1)}
_COMPRESSION = re.compile(r"^(?:(?P<level>\d+)|(?P<method>gzip|zstd|lz4)(?::(?:level=)?(?P<mlevel>\d+))?|none)$")


def parse_compression(raw: str, *, what: str = "BACKUP_COMPRESSION") -> str:
    """A compression spec normalised to ``gzip:N``, ``zstd:N``, ``lz4:N`` or ``none``; UsageError naming ``what``.

    Accepts pg_dump's own ``--compress`` forms: a gzip level ``0``-``9`` (0 is
    none), ``gzip``/``zstd``/``lz4`` with an optional ``:LEVEL``, ``none``.
    Which of them the pg_dump that runs supports is checked at backup time
    (zstd and lz4 need pg_dump 16+ built with them).
    """
    value = raw.strip().lower()
    match = _COMPRESSION.match(value)
    hint = ("use gzip:1 (the default, every pg_dump), gzip:N (N 1-9), zstd or zstd:N (1-22), lz4 or lz4:N (1-12) "
            "or none; zstd and lz4 need pg_dump 16+")
    if match is None:
        raise UsageError(f"{what}: unknown compression {raw.strip()!r}", hint=hint)
    if value == "none":
        return value
    method, level = (match["method"], match["mlevel"]) if match["method"] else ("gzip", match["level"])
    low, high, default = COMPRESSION_LEVELS[method]
    if level is None:
        return f"{method}:{default}"
    if int(level) == 0 and match["level"] is not None:
        return "none"
    if not low <= int(level) <= high:
        raise UsageError(f"{what}: {method} level {int(level)} is outside {low}-{high}", hint=hint)
    return f"{method}:{int(level)}"


def _compression(raw: str | None, variable: str) -> str:
    """BACKUP_COMPRESSION (see :func:`parse_compression`); default gzip:1 (fast, ~2% larger than level 6)."""
    if raw is None or raw.strip() == "":
        return _default("backup_compression")
    try:
        return parse_compression(raw, what=variable)
    except UsageError as exc:
        raise ConfigError(variable, exc.message.partition(": ")[2], hint=exc.hint) from None


#: an age X25519 recipient: ``age1`` and 58 Bech32 characters
_AGE_RECIPIENT = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")


def age_recipients(raw: str | None, variable: str) -> tuple[str, ...]:
    """BACKUP_AGE_RECIPIENTS: age public keys (``age1…``) separated by commas or spaces; () when unset."""
    values = tuple(v for v in re.split(r"[\s,]+", (raw or "").strip()) if v)
    for value in values:
        if value.startswith("AGE-SECRET-KEY-"):
            raise ConfigError(variable, "holds an age identity (a secret key), not a recipient",
                              hint=f"put the public key (age1…, the key file's \"public key\" line) in {variable}; "
                              "keep the secret key out of the backup job, in BACKUP_AGE_IDENTITY where restores run")
        if not _AGE_RECIPIENT.match(value.lower()):
            raise ConfigError(variable, f"has {value[:12]!r}…, which is not an age recipient (age1 + 58 characters)",
                              hint="use the public keys (age1…, the \"public key\" line of each age key file), "
                              "separated by commas")
    return tuple(v.lower() for v in values)


def _path(raw: str, root: Path) -> Path:
    """A path setting: absolute, or relative to the project root."""
    path = Path(raw.strip()).expanduser()
    return path if path.is_absolute() else root / path


class BackupLocation(NamedTuple):
    """Where BACKUP_URL keeps backups: ``("s3", bucket, prefix)`` or ``("file", folder, "")``."""

    kind: str
    #: the bucket (s3) or the folder (file)
    where: str
    #: the key prefix inside the bucket ("" for none)
    prefix: str = ""


def parse_backup_url(url: str, *, root: Path | None = None) -> BackupLocation:
    """The :class:`BackupLocation` of a BACKUP_URL: ``s3://b/p``, ``file:///dir`` or a path (relative to ``root``)."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ConfigError("BACKUP_URL", "names no bucket", hint="use s3://bucket/prefix")
        if "@" in parts.netloc:
            raise ConfigError("BACKUP_URL", "must not carry credentials",
                              hint="use s3://bucket/prefix and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")
        return BackupLocation("s3", parts.netloc, parts.path.strip("/"))
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError("BACKUP_URL", f"names the host {parts.netloc!r}; file:// URLs are local paths only",
                              hint=f"use file:///{parts.netloc}{parts.path} (three slashes) for a local path")
        if not parts.path:
            raise ConfigError("BACKUP_URL", "names no folder", hint="use file:///absolute/path")
        return BackupLocation("file", parts.path, "")
    if parts.scheme and len(parts.scheme) > 1:
        raise ConfigError("BACKUP_URL", f"uses the unsupported scheme {parts.scheme!r}",
                          hint="use s3://bucket/prefix, file:///path or a plain path")
    path = Path(url)
    if not path.is_absolute() and root is not None:
        path = root / path
    return BackupLocation("file", str(path), "")


@dataclass(frozen=True)
class ClientPlaces:
    """Where dbops looks for PostgreSQL's programs before the system's installs, the wheel and PATH."""

    #: ``DBOPS_PG_CLIENTS``: ``inv pg-clients``' folder, one ``<major>/`` per PostgreSQL major
    clients_dir: Path
    #: ``DBOPS_PG_BIN``: a bin folder, the only one looked in while it is set
    pg_bin: Path | None = None


def default_clients_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``inv pg-clients``' folder when DBOPS_PG_CLIENTS is not set: ``~/.cache/dbops/pg-clients``
    (``$XDG_CACHE_HOME``), and ``/var/cache/dbops/pg-clients`` for root: throwaway servers run as an
    unprivileged user then, who cannot reach into ``/root``."""
    environ = os.environ if environ is None else environ
    if os.geteuid() == 0:
        return Path("/var/cache/dbops/pg-clients")
    cache = environ.get("XDG_CACHE_HOME")
    if not cache:
        try:
            cache = str(Path.home() / ".cache")
        except RuntimeError:  # no HOME and no passwd entry (a bare container user): every setting still loads
            cache = str(Path(tempfile.gettempdir()) / f"dbops-{os.geteuid()}")
    return Path(cache) / "dbops" / "pg-clients"


def client_places(environ: Mapping[str, str] | None = None) -> ClientPlaces:
    """DBOPS_PG_CLIENTS and DBOPS_PG_BIN as ``environ`` (default: this process's) sets them.

    :func:`load_settings` reads them so (:attr:`Settings.client_places`); a caller without settings
    (a library caller, a test) gets the same from :mod:`dbops.postgres.clients` by passing none.
    """
    environ = os.environ if environ is None else environ
    raw = environ.get(PG_CLIENTS_VAR)
    clients_dir = Path(raw).expanduser().resolve() if raw else default_clients_dir(environ)
    pg_bin = environ.get(PG_BIN_VAR)
    return ClientPlaces(clients_dir, Path(pg_bin) if pg_bin else None)


def _number(environ: Mapping[str, str], name: str, default: float, *, minimum: float = 0) -> float:
    """A numeric variable, of the type of its default (a whole number for an int default)."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    kind, what = (int, "a whole number") if isinstance(default, int) else (float, "a number")
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(name, f"must be {what}, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum:g}, got {value:g}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the toolkit needs to know, resolved for one environment."""

    env: str = "local"
    root: Path = field(default_factory=project_root)
    #: the alembic.ini of the project being managed
    alembic_ini: Path | None = None
    #: explicit provider choice (``--db`` / ``DBOPS_DB``), or None for auto
    provider: str | None = None
    #: ``<ENV>_DATABASE_URL`` or ``DATABASE_URL``, normalised; None when unset
    database_url: URL | None = None
    #: which variable the URL came from (for messages)
    database_url_var: str = "DATABASE_URL"
    #: where the tool keeps its own state (embedded data, docker password)
    state_dir: Path | None = None
    #: database name the local providers create
    local_database: str = "app"
    embedded_port: int = 54329
    postgres_image: str = "postgres:16"
    docker_container: str = "dbops-postgres"
    docker_volume: str = "dbops-pgdata"
    #: backups: ``s3://bucket/prefix``, ``file://path`` or a path
    backup_url: str | None = None
    #: S3 endpoint for non-AWS stores (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``); None: AWS
    backup_endpoint_url: str | None = None
    #: S3 region (``AWS_REGION`` / ``AWS_DEFAULT_REGION``); None: boto3's default
    backup_region: str | None = None
    #: server-side encryption for backup objects (``BACKUP_SSE``): AES256, aws:kms, or None (off)
    backup_sse: str | None = "AES256"
    #: upper bound for one pg_dump / pg_restore run (``DBOPS_BACKUP_TIMEOUT``, seconds)
    backup_timeout_s: int = 6 * 3600
    #: pg_dump's compression for backups (``BACKUP_COMPRESSION``, ``--compression``): gzip:N, zstd:N, lz4:N, none
    backup_compression: str = "gzip:1"
    #: client-side encryption: the age recipients (public keys) every new backup is encrypted to
    #: (``BACKUP_AGE_RECIPIENTS``); empty: not encrypted
    backup_age_recipients: tuple[str, ...] = ()
    #: the age identity (secret key) that decrypts backups (``BACKUP_AGE_IDENTITY``; a secret: never shown)
    backup_age_identity: str | None = field(default=None, repr=False)
    #: a file of age identities (``BACKUP_AGE_IDENTITY_FILE``), read only when a backup is decrypted
    backup_age_identity_file: Path | None = None
    #: prune-backups: also keep the newest backup of each of the last N days / ISO weeks / months (0: no such rule)
    backup_keep_daily: int = 0
    backup_keep_weekly: int = 0
    backup_keep_monthly: int = 0
    #: restore --jobs / drill: where the fetched archive is written (``DBOPS_SCRATCH_DIR``; "": the temp folder)
    scratch_dir: str = ""
    #: restore --jobs / drill: free space (MB) that must remain there beside the archive, else one stream
    scratch_min_free_mb: int = 512
    #: ``backups --check``: the newest backup must have a drill at most this many hours old
    drill_max_age_h: float = 192.0
    #: ``backups --check``: the drill's recovery time (fetch + restore + checks) must be at most this (seconds)
    drill_target_s: float = 3600.0
    health_url: str | None = None
    lock_timeout_ms: int = 5_000
    statement_timeout_ms: int = 600_000
    connect_timeout_s: int = 10
    monitor_minutes: float = 10.0
    notify_webhook_url: str | None = None
    #: deploy: how long a second deploy waits for the deploy lock
    deploy_lock_wait_s: float = 60.0
    #: deploy: attempts of the upgrade when it fails on lock_timeout (SQLSTATE 55P03)
    lock_retries: int = 3
    #: deploy: how long verify keeps retrying the health URL and the DB before it fails
    verify_timeout_s: float = 60.0
    #: timeout of one health request
    health_timeout_s: float = 5.0
    #: monitor: seconds between polls
    monitor_interval_s: float = 5.0
    #: monitor: a transaction open longer than this is reported
    long_transaction_s: float = 300.0
    #: monitor: this many bad samples in a row fail the window (an isolated blip does not)
    monitor_failures: int = 3
    #: monitor: the window also fails when more than this share of its samples (at least 10 taken) were bad
    monitor_error_budget: float = 0.2
    #: rehearse: a lock blocking reads or writes held this long (ms) is an error; 0: the lock_timeout
    rehearse_max_block_ms: int = 0
    #: rehearse: a rewrite or validating scan of a table at least this big (MiB) is an error
    rehearse_large_table_mb: float = 10.0
    #: deploy: rehearse by default when the backup is at most this big (MiB); 0: only with --rehearse
    rehearse_auto_mb: float = 256.0
    #: test-rollback: a rebuild that replayed this many revisions (or took longer than creating a
    #: database) leaves a checkpoint to rebuild from next time
    rollback_checkpoint_after: int = 5
    #: test-rollback: how long --setup-sql may run in psql / pg_restore (seconds)
    rollback_setup_timeout_s: int = 600
    #: test-rollback (``DBOPS_ROLLBACK_SNAPSHOTS``): ``tracked`` re-reads only what each step touched (on a
    #: schema of about 400 objects and more); ``full`` reads the whole catalog at every snapshot; ``verify``:
    #: tracked at every size, each snapshot checked against a full one (tests)
    rollback_snapshots: str = "tracked"
    #: under GitHub Actions (``GITHUB_ACTIONS=true``): lint / test-rollback also print ``::error file=…``
    #: annotations (dbops.annotations)
    github_actions: bool = False
    #: ``DBOPS_PG_BIN``: a PostgreSQL bin folder, the only one programs are taken from while it is set
    pg_bin: Path | None = None
    #: ``DBOPS_PG_CLIENTS``: ``inv pg-clients``' folder (default: a cache folder, see :func:`default_clients_dir`)
    pg_clients: Path = field(default_factory=default_clients_dir)
    #: ``DBOPS_PYTHON_IMAGE``: the base image of ``inv image`` (``--python-image`` wins)
    python_image: str = DEFAULT_PYTHON_IMAGE
    #: ``DBOPS_BUILD_CA``: a PEM file of the CAs pip trusts in image builds, ``none``, or None: this host's local CAs
    build_ca: str | None = None
    #: ``RENDER_API_KEY`` (a secret: never shown); ``inv render-job`` needs it
    render_api_key: str | None = field(default=None, repr=False)
    #: ``RENDER_JOB_SERVICE_ID``: the ``srv-...`` id of the job service, and the variable it came from
    render_job_service_id: str | None = None
    render_job_service_var: str = "RENDER_JOB_SERVICE_ID"
    #: ``RENDER_API_URL``; None: Render's own (tests point it at a fake)
    render_api_url: str | None = None
    #: ``DBOPS_FLEET_FILE``: the fleet file (dbops fleet.*); None: ``[tool.dbops.fleet.<env>]`` in pyproject.toml
    fleet_file: Path | None = None

    def __post_init__(self) -> None:
        if self.alembic_ini is None:
            object.__setattr__(self, "alembic_ini", self.root / "alembic.ini")
        if self.state_dir is None:
            object.__setattr__(self, "state_dir", self.root / ".dbops")

    @property
    def is_local(self) -> bool:
        return self.env == "local"

    @property
    def rehearse_block_limit_ms(self) -> int:
        """The hold time from which a blocking lock is an error in a rehearsal: DBOPS_REHEARSE_MAX_BLOCK_MS or
        lock_timeout."""
        return self.rehearse_max_block_ms or self.lock_timeout_ms

    @property
    def connect_hint(self) -> str:
        """The hint of a failed connection to the environment's database."""
        return f"check {self.database_url_var} and that the server accepts connections from here"

    @property
    def monitor_window_s(self) -> float:
        """The monitoring window in seconds (``--monitor-seconds``/``--monitor-minutes``, else the variable)."""
        return round(self.monitor_minutes * 60, 3)

    @property
    def backups_dir(self) -> Path:
        return self.root / "backups"

    def backup_location(self) -> BackupLocation:
        """Where backups live (BACKUP_URL parsed); ConfigError naming ``<ENV>_BACKUP_URL`` when it is not set."""
        if not self.backup_url:
            var = f"{self.env.upper()}_BACKUP_URL"
            raise ConfigError(var, "is not set, so there is nowhere to keep backups",
                              hint=f"export {var}=s3://bucket/prefix (or BACKUP_URL for every environment), or set "
                                   f"backup-url under [tool.dbops.env.{self.env}] in pyproject.toml")
        return parse_backup_url(self.backup_url, root=self.root)

    @property
    def client_places(self) -> ClientPlaces:
        """Where PostgreSQL's programs are looked for first (DBOPS_PG_CLIENTS, DBOPS_PG_BIN)."""
        return ClientPlaces(self.pg_clients, self.pg_bin)

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (for ``--db``, ``--config`` overrides)."""
        return replace(self, **changes)

    def describe(self) -> list[tuple[str, str]]:
        """(name, value) pairs with every secret masked, for ``inv config``."""
        rows = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, URL) or (
                f.name in ("backup_url", "backup_endpoint_url", "notify_webhook_url", "health_url") and value
            ):
                value = mask_url(value)
            elif not f.repr and value is not None:  # a secret
                value = "***"
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            rows.append((f.name, "(not set)" if value is None else shown))
        return rows


#: numeric settings: field -> (variable, minimum); each default is the field's own, in :class:`Settings`
_NUMBERS = {
    "embedded_port": ("DBOPS_EMBEDDED_PORT", 0),
    "backup_timeout_s": ("DBOPS_BACKUP_TIMEOUT", 1),
    "lock_timeout_ms": ("DBOPS_LOCK_TIMEOUT_MS", 1),
    "statement_timeout_ms": ("DBOPS_STATEMENT_TIMEOUT_MS", 1),
    "connect_timeout_s": ("DBOPS_CONNECT_TIMEOUT", 1),
    "monitor_minutes": ("DBOPS_MONITOR_MINUTES", 0),
    "deploy_lock_wait_s": ("DBOPS_DEPLOY_LOCK_WAIT", 0),
    "lock_retries": ("DBOPS_LOCK_RETRIES", 1),
    "verify_timeout_s": ("DBOPS_VERIFY_TIMEOUT", 0),
    "health_timeout_s": ("DBOPS_HEALTH_TIMEOUT", 0.1),
    "monitor_interval_s": ("DBOPS_MONITOR_INTERVAL", 0.1),
    "long_transaction_s": ("DBOPS_LONG_TRANSACTION", 1),
    "monitor_failures": ("DBOPS_MONITOR_FAILURES", 1),
    "monitor_error_budget": ("DBOPS_MONITOR_ERROR_BUDGET", 0),
    "rehearse_max_block_ms": ("DBOPS_REHEARSE_MAX_BLOCK_MS", 0),
    "rehearse_large_table_mb": ("DBOPS_REHEARSE_LARGE_TABLE_MB", 0),
    "rehearse_auto_mb": ("DBOPS_REHEARSE_AUTO_MB", 0),
    "rollback_checkpoint_after": ("DBOPS_ROLLBACK_CHECKPOINT_AFTER", 1),
    "rollback_setup_timeout_s": ("DBOPS_ROLLBACK_SETUP_TIMEOUT", 1),
    "backup_keep_daily": ("DBOPS_BACKUP_KEEP_DAILY", 0),
    "backup_keep_weekly": ("DBOPS_BACKUP_KEEP_WEEKLY", 0),
    "backup_keep_monthly": ("DBOPS_BACKUP_KEEP_MONTHLY", 0),
    "scratch_min_free_mb": ("DBOPS_SCRATCH_MIN_FREE_MB", 0),
    "drill_max_age_h": ("DBOPS_DRILL_MAX_AGE_HOURS", 0.1),
    "drill_target_s": ("DBOPS_DRILL_TARGET_S", 0.001),
}
#: text settings: field -> variable
_TEXTS = {
    "postgres_image": "DBOPS_POSTGRES_IMAGE",
    "docker_container": "DBOPS_DOCKER_CONTAINER",
    "docker_volume": "DBOPS_DOCKER_VOLUME",
    "python_image": "DBOPS_PYTHON_IMAGE",
    "scratch_dir": "DBOPS_SCRATCH_DIR",
    "rollback_snapshots": "DBOPS_ROLLBACK_SNAPSHOTS",
}
#: the values DBOPS_ROLLBACK_SNAPSHOTS takes
ROLLBACK_SNAPSHOTS = ("full", "tracked", "verify")


#: [tool.dbops] keys that name a variable other than ``DBOPS_<KEY>`` (the others: ``lock-timeout-ms`` is
#: ``DBOPS_LOCK_TIMEOUT_MS``, and so on for every numeric and text setting above)
_PYPROJECT_PLAIN = ("BACKUP_URL", "HEALTH_URL", "BACKUP_SSE", "BACKUP_COMPRESSION", "AWS_ENDPOINT_URL_S3",
                    "AWS_ENDPOINT_URL", "AWS_REGION", "RENDER_JOB_SERVICE_ID", "RENDER_API_URL",
                    "BACKUP_AGE_RECIPIENTS", "BACKUP_AGE_IDENTITY_FILE")
#: settings that hold a secret, or a URL that carries one: from the environment only, never from a file in git
_PYPROJECT_SECRETS = ("DATABASE_URL", "NOTIFY_WEBHOOK_URL", "RENDER_API_KEY", "AWS_ACCESS_KEY_ID",
                      "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "BACKUP_AGE_IDENTITY")
#: [tool.dbops] keys read by other parts of dbops, not by load_settings
_PYPROJECT_OWN_TABLES = ("url-variables",)


def _key(variable: str) -> str:
    """The [tool.dbops] key of a variable: ``DBOPS_LOCK_TIMEOUT_MS`` → ``lock-timeout-ms``."""
    return variable.removeprefix("DBOPS_").lower().replace("_", "-")


def pyproject_keys() -> dict[str, str]:
    """Every [tool.dbops] key a setting can be given by, and the variable it stands for (docs/configuration.md)."""
    variables = [*_PYPROJECT_PLAIN, "DBOPS_DB", *(var for var, _ in _NUMBERS.values()), *_TEXTS.values()]
    return {_key(var): var for var in variables}


def pyproject_settings(root: Path) -> dict[str, str]:
    """The variables ``[tool.dbops]`` in ``root/pyproject.toml`` sets, as the environment would spell them.

    ``lock-timeout-ms = 3000`` is ``DBOPS_LOCK_TIMEOUT_MS=3000``; ``[tool.dbops.env.prod]`` ``health-url = …`` is
    ``PROD_HEALTH_URL``.  The environment wins over the file.  Secrets are refused here: they come from the
    environment only.  Sub-tables other than ``env`` belong to other parts of dbops (``fleet``) and are skipped.
    """
    path = root / "pyproject.toml"
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("dbops", {})
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), f"cannot be read as TOML ({exc})", hint="fix the file's TOML syntax") from None
    if not isinstance(table, dict):
        return {}
    keys = pyproject_keys()
    found: dict[str, str] = {}

    def take(items: Mapping, prefix: str, where: str) -> None:
        for key, value in items.items():
            if key in _PYPROJECT_OWN_TABLES or (isinstance(value, dict) and where == "[tool.dbops]"):
                continue
            secret = key.upper().replace("-", "_")
            if secret in _PYPROJECT_SECRETS or secret.endswith("DATABASE_URL"):
                raise ConfigError(
                    f"{path} {where} {key}",
                    "holds a secret (or a URL that carries one); secrets are read from the environment only",
                    hint=f"remove {key} from {path.name} and set {secret} in the environment (a Render env group, "
                         "a CI secret, a .env file kept out of git)",
                )
            if key not in keys:
                close = [k for k in keys if k.split("-")[0] == key.split("-")[0]] or sorted(keys)[:8]
                raise ConfigError(
                    f"{path} {where} {key}", "is not a dbops setting (checked the keys of docs/configuration.md)",
                    hint=f"fix the key's spelling (similar keys: {', '.join(close)}), or remove it",
                ).with_context(details=f"[tool.dbops] keys: {', '.join(sorted(keys))}")
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ConfigError(f"{path} {where} {key}", f"must be a string or a number, got {value!r}",
                                  hint=f'e.g. {key} = "…" or {key} = 10')
            found[prefix + keys[key]] = str(value)

    take(table, "", "[tool.dbops]")
    envs = table.get("env", {})
    if not isinstance(envs, dict):
        raise ConfigError(f"{path} [tool.dbops] env", "must be a table of environments",
                          hint="e.g. [tool.dbops.env.prod] with health-url = \"https://…\"")
    for name, values in envs.items():
        if name not in ENVIRONMENTS or not isinstance(values, dict):
            raise ConfigError(f"{path} [tool.dbops.env.{name}]", "is not an environment's table",
                              hint=f"use [tool.dbops.env.<name>] with one of: {', '.join(ENVIRONMENTS)}")
        take(values, f"{name.upper()}_", f"[tool.dbops.env.{name}]")
    return found


def _default(name: str):
    """The default of a :class:`Settings` field: the one place defaults are written."""
    return Settings.__dataclass_fields__[name].default


def load_settings(
    env: str = "local",
    *,
    provider: str | None = None,
    alembic_ini: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    compression: str | None = None,
    monitor_minutes: float | None = None,
    monitor_seconds: float | None = None,
) -> Settings:
    """Read and validate the settings for ``env`` from the environment.

    The keyword arguments after ``environ`` are a task's flags, already parsed and range-checked at the edge
    (``dbops.cli.number``); they win over the variables: ``compression`` is ``--compression``, and
    ``monitor_seconds`` (else ``monitor_minutes``) sets the monitoring window, read back as
    :attr:`Settings.monitor_window_s`.
    """
    environ = os.environ if environ is None else environ
    if env not in ENVIRONMENTS:
        raise UsageError(
            f"unknown environment {env!r}",
            hint=f"use --env with one of: {', '.join(ENVIRONMENTS)}",
        )
    root, ini = _project(alembic_ini, environ)
    from_file = pyproject_settings(root)
    given = {name: value for name, value in environ.items() if value != ""}  # an empty variable is unset
    try:
        return _load(env, root, ini, ChainMap(given, from_file), provider=provider, compression=compression,
                     monitor_minutes=monitor_minutes, monitor_seconds=monitor_seconds)
    except ConfigError as exc:
        if exc.variable not in from_file or exc.variable in given:
            raise
        key = _key(exc.variable.removeprefix(f"{env.upper()}_"))
        raise exc.with_context(hint=f"{exc.hint or 'fix it'} (it is set by {key} in [tool.dbops] of "
                                    f"{root / 'pyproject.toml'})") from None


def _load(env: str, root: Path, ini: Path | None, environ: Mapping[str, str], *, provider: str | None,
          compression: str | None, monitor_minutes: float | None, monitor_seconds: float | None) -> Settings:
    def get(name: str) -> tuple[str | None, str]:
        scoped = f"{env.upper()}_{name}"
        if environ.get(scoped):
            return environ[scoped], scoped
        return environ.get(name) or None, name

    provider = provider or environ.get("DBOPS_DB") or None
    if provider is not None and provider not in PROVIDERS:
        raise UsageError(
            f"unknown database provider {provider!r}",
            hint=f"use --db with one of: {', '.join(PROVIDERS)} (or leave it out to choose automatically)",
        )

    raw_url, url_var = get("DATABASE_URL")
    database_url = normalize_database_url(raw_url, variable=url_var) if raw_url else None
    if database_url is not None and env != "local":
        password = database_url.password or ""
        if password.lower() in _PLACEHOLDER_SECRETS:
            raise ConfigError(
                url_var,
                f"uses a placeholder password, refused outside local development (--env {env})",
                hint=f"set {url_var} to the real connection string of the {env} database",
            )

    backup_url, _ = get("BACKUP_URL")
    endpoint, _ = get("AWS_ENDPOINT_URL_S3")
    endpoint_var = "AWS_ENDPOINT_URL_S3" if endpoint else "AWS_ENDPOINT_URL"
    endpoint = web_url(endpoint or get("AWS_ENDPOINT_URL")[0], endpoint_var)
    region = get("AWS_REGION")[0] or get("AWS_DEFAULT_REGION")[0]
    sse_raw, sse_var = get("BACKUP_SSE")
    sse = _sse(sse_raw, sse_var)
    compression = (parse_compression(compression, what="--compression") if compression is not None
                   else _compression(*get("BACKUP_COMPRESSION")))
    recipients = age_recipients(*get("BACKUP_AGE_RECIPIENTS"))
    identity_file, _ = get("BACKUP_AGE_IDENTITY_FILE")
    health_url = web_url(*get("HEALTH_URL"))
    webhook = web_url(*get("NOTIFY_WEBHOOK_URL"))
    if backup_url:
        parse_backup_url(backup_url, root=root)  # checks the scheme, the bucket, a file:// host
    budget = environ.get("DBOPS_MONITOR_ERROR_BUDGET", "").strip()
    if budget and _number(environ, "DBOPS_MONITOR_ERROR_BUDGET", 0.0) > 1:
        raise ConfigError("DBOPS_MONITOR_ERROR_BUDGET", f"is a share of the samples from 0 to 1, got {budget}",
                          hint="e.g. 0.2: fail when more than a fifth of the samples were bad")
    places = client_places(environ)
    service_id, service_var = get("RENDER_JOB_SERVICE_ID")
    port = environ.get("DBOPS_EMBEDDED_PORT", "").strip()
    if port and port.lstrip("-").isdigit() and int(port) > 65535:
        raise ConfigError("DBOPS_EMBEDDED_PORT", f"must be a port from 0 to 65535, got {port}",
                          hint="unset it for the default, or 0 for a free port")
    settings = Settings(
        env=env,
        root=root,
        alembic_ini=ini,
        provider=provider,
        database_url=database_url,
        database_url_var=url_var,
        state_dir=Path(environ["DBOPS_STATE_DIR"]).resolve() if environ.get("DBOPS_STATE_DIR") else None,
        backup_url=backup_url or (str(root / "backups") if env == "local" else None),
        backup_endpoint_url=endpoint,
        backup_region=region,
        backup_sse=sse,
        backup_compression=compression,
        backup_age_recipients=recipients,
        backup_age_identity=get("BACKUP_AGE_IDENTITY")[0],
        backup_age_identity_file=_path(identity_file, root) if identity_file else None,
        health_url=health_url,
        notify_webhook_url=webhook,
        github_actions=environ.get("GITHUB_ACTIONS", "").strip().lower() == "true",
        pg_bin=places.pg_bin,
        pg_clients=places.clients_dir,
        build_ca=environ.get(BUILD_CA_VAR, "").strip() or None,
        render_api_key=get("RENDER_API_KEY")[0],
        render_job_service_id=service_id,
        render_job_service_var=service_var,
        render_api_url=get("RENDER_API_URL")[0],
        fleet_file=Path(environ["DBOPS_FLEET_FILE"]).resolve() if environ.get("DBOPS_FLEET_FILE") else None,
        **{name: _number(environ, var, _default(name), minimum=low) for name, (var, low) in _NUMBERS.items()},
        **{name: environ.get(var) or _default(name) for name, var in _TEXTS.items()},
    )
    if settings.rollback_snapshots not in ROLLBACK_SNAPSHOTS:
        raise ConfigError("DBOPS_ROLLBACK_SNAPSHOTS", f"is {settings.rollback_snapshots!r}",
                          hint=f"use one of: {', '.join(ROLLBACK_SNAPSHOTS)}")
    if monitor_seconds is not None:
        settings = settings.with_(monitor_minutes=monitor_seconds / 60)
    elif monitor_minutes is not None:
        settings = settings.with_(monitor_minutes=float(monitor_minutes))
    return settings
