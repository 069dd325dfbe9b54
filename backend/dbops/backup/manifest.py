"""The records stored beside a dump: its manifest (``.manifest.json``) and its verification (``.verified.json``).

:class:`Manifest` is what the backup wrote after the dump was checked: the
checksum and size, the revision, the server and pg_dump that made it, every
table's row count.  :meth:`Manifest.from_dict` reads manifests of older
dbops versions too (a field they lack takes its default, as the readers
always assumed); :meth:`Manifest.to_dict` is the JSON written, key for key.
:class:`Verification` is verify-backup's record of a restore that matched;
:class:`Drill` is a restore drill's record (``.drill.json``): its recovery time step by step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: the manifest's ``format``
FORMAT = "dbops-backup/1"


def _int(value: Any) -> int:
    """A number of a record, 0 when missing or unreadable (unknown: how every reader of an older manifest took it)."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


@dataclass
class Manifest:
    """One backup's manifest, written only after the dump was streamed and checked."""

    sha256: str
    size: int
    format: str = FORMAT
    key: str | None = None
    env: str | None = None
    database: str | None = None
    #: the revisions joined by ``+`` ("base": never migrated); the file name carries it too
    revision: str | None = None
    revisions: list[str] = field(default_factory=list)
    server_version: str | None = None
    #: the source server's major version (0: unknown, an older manifest)
    server_major: int = 0
    pg_dump_version: str | None = None
    #: the major version of the pg_dump that wrote the archive (0: unknown)
    pg_dump_major: int = 0
    pg_dump_path: str | None = None
    pg_dump_why: str | None = None
    pg_dump_ssl: bool | None = None
    #: pg_dump's ``--compress`` (None: an older manifest, pg_dump's default)
    compression: str | None = None
    database_size: int | None = None
    part_size: int | None = None
    sse: str | None = None
    #: client-side encryption: "age" (None: the object is the pg_dump archive itself)
    encryption: str | None = None
    #: the age recipients the archive was encrypted to (any one's identity decrypts it)
    recipients: list[str] = field(default_factory=list)
    #: the archive's own sha256 and size before encryption (``sha256``/``size`` are the stored object's)
    plain_sha256: str | None = None
    plain_size: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    #: ``{"schema.table": rows}`` in the dump's snapshot
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def archive_sha256(self) -> str:
        """The sha256 of the pg_dump archive pg_restore reads (the stored object's, unless encrypted)."""
        return self.plain_sha256 if self.encryption and self.plain_sha256 else self.sha256

    @property
    def archive_size(self) -> int:
        """The size of the pg_dump archive pg_restore reads (the stored object's, unless encrypted)."""
        return self.plain_size if self.encryption and self.plain_size is not None else self.size

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        """A manifest as stored; the fields an older manifest lacks take their defaults."""
        return cls(
            sha256=data["sha256"],
            size=data["size"],
            format=data.get("format") or FORMAT,
            key=data.get("key"),
            env=data.get("env"),
            database=data.get("database"),
            revision=data.get("revision"),
            revisions=list(data.get("revisions") or []),
            server_version=data.get("server_version"),
            server_major=_int(data.get("server_major")),
            pg_dump_version=data.get("pg_dump_version"),
            pg_dump_major=_int(data.get("pg_dump_major")),
            pg_dump_path=data.get("pg_dump_path"),
            pg_dump_why=data.get("pg_dump_why"),
            pg_dump_ssl=data.get("pg_dump_ssl"),
            compression=data.get("compression"),
            database_size=data.get("database_size"),
            part_size=data.get("part_size"),
            sse=data.get("sse"),
            encryption=data.get("encryption"),
            recipients=list(data.get("recipients") or []),
            plain_sha256=data.get("plain_sha256"),
            plain_size=data.get("plain_size"),
            started_at=data.get("started_at"),
            finished_at=data.get("finished_at"),
            duration_s=data.get("duration_s"),
            tables=dict(data["tables"]) if isinstance(data.get("tables"), dict) else {},
        )

    def to_dict(self) -> dict:
        """The stored JSON, in the order the backup has always written it."""
        return {
            "format": self.format,
            "key": self.key,
            "env": self.env,
            "database": self.database,
            "revision": self.revision,
            "revisions": list(self.revisions),
            "sha256": self.sha256,
            "size": self.size,
            "server_version": self.server_version,
            "server_major": self.server_major,
            "pg_dump_version": self.pg_dump_version,
            "pg_dump_major": self.pg_dump_major,
            "pg_dump_path": self.pg_dump_path,
            "pg_dump_why": self.pg_dump_why,
            "pg_dump_ssl": self.pg_dump_ssl,
            "compression": self.compression,
            "database_size": self.database_size,
            "part_size": self.part_size,
            "sse": self.sse,
            # only in an encrypted backup's manifest: an unencrypted one stays as older dbops wrote it
            **({"encryption": self.encryption, "recipients": list(self.recipients),
                "plain_sha256": self.plain_sha256, "plain_size": self.plain_size} if self.encryption else {}),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "tables": dict(self.tables),
        }


@dataclass
class Verification:
    """verify-backup's record: the backup restored into a throwaway server and matched its manifest."""

    key: str | None = None
    sha256: str | None = None
    size: int | None = None
    verified_at: str | None = None
    duration_s: float | None = None
    tables: dict[str, int] = field(default_factory=dict)
    pg_restore_version: str | None = None
    pg_restore: str | None = None
    server_version: str | None = None
    server_major: int = 0

    @classmethod
    def from_dict(cls, data: dict) -> Verification:
        """A record as stored, taken as it is (only its checksum and time are ever read back)."""
        return cls(
            key=data.get("key"),
            sha256=data.get("sha256"),
            size=data.get("size"),
            verified_at=data.get("verified_at"),
            duration_s=data.get("duration_s"),
            tables=data.get("tables") or {},
            pg_restore_version=data.get("pg_restore_version"),
            pg_restore=data.get("pg_restore"),
            server_version=data.get("server_version"),
            server_major=data.get("server_major") or 0,
        )

    def to_dict(self) -> dict:
        """The stored JSON (``<stem>.verified.json``)."""
        return asdict(self)


@dataclass
class Drill:
    """A restore drill's record (``<stem>.drill.json``): the backup restored into a throwaway server of the
    source's major, checked, and how long each step of the recovery took."""

    key: str | None = None
    sha256: str | None = None
    drilled_at: str | None = None
    #: whether the restore succeeded and every check passed
    ok: bool = False
    #: the recovery time: fetch + decrypt + restore + checks, seconds (the throwaway server's start is not in it)
    recovery_s: float | None = None
    fetch_s: float | None = None
    decrypt_s: float | None = None
    restore_s: float | None = None
    checks_s: float | None = None
    #: the throwaway server's start (not part of the recovery: on the bad day the server is there)
    server_s: float | None = None
    jobs: int = 1
    #: why the restore ran in one stream though more jobs were asked for ("" when it did not)
    single_stream_why: str = ""
    tables: int = 0
    rows: int = 0
    #: what failed (empty when ``ok``)
    problems: list[str] = field(default_factory=list)
    pg_restore: str | None = None
    server_version: str | None = None
    server_major: int = 0
    host: str | None = None

    @classmethod
    def from_dict(cls, data: dict) -> Drill:
        """A record as stored; unknown keys are ignored, missing ones take their defaults."""
        known = {f: data[f] for f in cls.__dataclass_fields__ if f in data}
        known["problems"] = list(known.get("problems") or [])
        return cls(**known)

    def to_dict(self) -> dict:
        """The stored JSON (``<stem>.drill.json``)."""
        return asdict(self)

