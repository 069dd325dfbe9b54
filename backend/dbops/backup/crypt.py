"""Client-side encryption of backups to the team's age recipients, streamed with bounded memory (pyrage).

With ``BACKUP_AGE_RECIPIENTS`` set, the backup stores ``pg_dump | age -r …``
instead of the archive: the store (and whoever reads the bucket) never sees
a byte of the data.  The manifest records the recipients, the stored
object's sha256/size (what restore and the parallel fetch check) and the
archive's own (``plain_sha256``/``plain_size``, what pg_restore reads).

Reading back needs an identity (secret key) of one of the recipients, from
``BACKUP_AGE_IDENTITY`` or the file ``BACKUP_AGE_IDENTITY_FILE``;
:func:`identities` refuses in one line naming the recipients before
anything is changed.  :func:`open_plain` turns the stored stream into the
archive's (passthrough when the backup is not encrypted), :func:`decrypt_file`
does the same file to file, :func:`encrypt_stream` is the backup's side.

pyrage (the ``encrypt`` extra: Rust's ``age`` crate) rather than the ``age``
program: no second binary to find, install and version in every image, no
extra process and pipe per backup; the age format is the same, so
``age -d -i key.txt`` decrypts any backup by hand.  Memory stays bounded:
age encrypts in 64 KiB chunks, and :class:`PlainReader` holds a few of them.
"""

from __future__ import annotations

import hashlib
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO

from ..errors import CheckFailed, ChecksumMismatch, ConfigError, DbopsError, KeyRequired, UsageError
from ..settings import Settings
from .manifest import Manifest

#: the manifest's ``encryption`` for an age-encrypted backup
AGE = "age"
#: the first bytes of every age file (a backup whose object starts otherwise is not encrypted)
AGE_MAGIC = b"age-encryption.org/v1\n"
#: what people set; each may carry the environment's name in front (``PROD_BACKUP_AGE_IDENTITY``)
IDENTITY_VAR = "BACKUP_AGE_IDENTITY"
IDENTITY_FILE_VAR = "BACKUP_AGE_IDENTITY_FILE"
RECIPIENTS_VAR = "BACKUP_AGE_RECIPIENTS"
#: decrypted chunks (64 KiB each) waiting for the reader: the memory :class:`PlainReader` holds
_QUEUED = 16
#: Python's thread switch interval while pyrage runs (the default is 5 ms), see :func:`_quick_handoff`
_SWITCH_S = 0.0002


@contextmanager
def _quick_handoff() -> Iterator[None]:
    """A short thread switch interval while pyrage works.

    pyrage holds the GIL while it encrypts or decrypts (it lets go only when
    it calls back into Python), so the threads beside it (the one reading
    pg_dump's pipe, the one uploading parts, the one feeding pg_restore)
    each waited out Python's 5 ms switch interval for the GIL, many times a
    second: in ``bench/backup`` an encrypted backup took 1.2-1.3x the
    unencrypted one with the same CPU seconds (its cores idle meanwhile).
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, _SWITCH_S))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _pyrage():
    try:
        import pyrage
    except ImportError:
        raise UsageError("encrypted backups need the pyrage package, which is not installed",
                         hint="pip install 'dbops[encrypt]'") from None
    return pyrage


def _manifest(backup: Any) -> Manifest:
    """The manifest of a BackupInfo (or the manifest itself)."""
    manifest = backup if isinstance(backup, Manifest) else backup.manifest
    if manifest is None:
        raise UsageError(f"backup {backup.key} has no manifest: it cannot be read back")
    return manifest


def is_encrypted(backup: Any) -> bool:
    """Whether the stored object of this backup (a BackupInfo or Manifest) is age-encrypted."""
    return _manifest(backup).encryption == AGE


def encrypting(settings: Settings) -> bool:
    """Whether new backups are encrypted (``BACKUP_AGE_RECIPIENTS`` is set)."""
    return bool(settings.backup_age_recipients)


def recipients(settings: Settings) -> list:
    """The pyrage recipients of ``BACKUP_AGE_RECIPIENTS`` (checked before anything is written)."""
    pyrage = _pyrage()
    out = []
    for text in settings.backup_age_recipients:
        try:
            out.append(pyrage.x25519.Recipient.from_str(text))
        except pyrage.RecipientError as exc:
            raise ConfigError(f"{settings.env.upper()}_{RECIPIENTS_VAR}",
                              f"has {text!r}, which age does not accept as a recipient ({exc})",
                              hint="use the public keys (age1…, the \"public key\" line of each age key file)",
                              ) from None
    return out


def identities(settings: Settings, backup: Any) -> list:
    """The identities of ``settings`` that decrypt ``backup`` ([] when it is not encrypted).

    Raises :class:`KeyRequired` (one line naming the recipients) when no
    identity is set or none matches: called before anything is changed.
    The secret keys are never part of a message.
    """
    manifest = _manifest(backup)
    if manifest.encryption is None:
        return []
    key = manifest.key or getattr(backup, "key", "?")
    if manifest.encryption != AGE:
        raise UsageError(f"backup {key} is encrypted with {manifest.encryption!r}, which this dbops cannot read",
                         hint="upgrade dbops")
    pyrage = _pyrage()
    texts: list[tuple[str, str]] = []
    if settings.backup_age_identity:
        texts.append((IDENTITY_VAR, settings.backup_age_identity))
    if settings.backup_age_identity_file is not None:
        path = settings.backup_age_identity_file
        try:
            texts.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(IDENTITY_FILE_VAR, f"names {path}, which cannot be read ({type(exc).__name__})",
                              hint="point it at the age key file, readable by this user") from None
    hint = (f"set {IDENTITY_VAR} to the secret key (AGE-SECRET-KEY-1…) of one of these recipients, "
            f"or {IDENTITY_FILE_VAR} to the file holding it; nothing was changed")
    if not texts:
        raise KeyRequired(key, manifest.recipients, f"set {IDENTITY_VAR} or {IDENTITY_FILE_VAR} to decrypt it",
                          hint=hint)
    found = []
    for where, text in texts:
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                found.append(pyrage.x25519.Identity.from_str(line))
            except pyrage.IdentityError:  # the line is a secret: say where it is, never what it holds
                raise ConfigError(where if where == IDENTITY_VAR else IDENTITY_FILE_VAR,
                                  f"line {n} is not an age identity (AGE-SECRET-KEY-1…)"
                                  + ("" if where == IDENTITY_VAR else f" in {where}"),
                                  hint="use the key file age-keygen writes, or the AGE-SECRET-KEY-1… line of it"
                                  ) from None
    wanted = set(manifest.recipients)
    matching = [i for i in found if str(i.to_public()) in wanted]
    if not matching:
        raise KeyRequired(key, manifest.recipients,
                          f"the identity set in {' and '.join(w for w, _ in texts)} is for "
                          f"{', '.join(sorted({str(i.to_public()) for i in found}))} instead", hint=hint)
    return matching


def check_key(settings: Settings, backup: Any) -> None:
    """Refuse (:class:`KeyRequired`) before anything changes when ``backup`` cannot be decrypted here."""
    identities(settings, backup)


# -- the backup's side ------------------------------------------------------
class _Source:
    """A file-like ``read(n)`` over a function returning the next chunk (empty at the end)."""

    def __init__(self, next_chunk: Callable[[], bytes | memoryview]):
        self.next_chunk = next_chunk
        self.chunk: bytes | memoryview = b""
        self.pos = 0
        self.done = False
        self.error: BaseException | None = None

    def read(self, n: int = -1) -> bytes:
        try:
            while self.pos >= len(self.chunk):
                if self.done:
                    return b""
                self.chunk, self.pos = self.next_chunk(), 0
                if not self.chunk:
                    self.done = True
                    return b""
            end = len(self.chunk) if n is None or n < 0 else self.pos + n
            out = bytes(self.chunk[self.pos:end])
            self.pos += len(out)
            return out
        except BaseException as exc:  # pyrage wraps it in EncryptError: kept to raise as it was
            self.error = exc
            raise


class _Sink:
    """A file-like ``write`` calling ``write`` (errors kept to raise as they were)."""

    def __init__(self, write: Callable[[bytes], object]):
        self._write = write
        self.error: BaseException | None = None

    def write(self, data: bytes) -> int:
        try:
            self._write(data)
        except BaseException as exc:
            self.error = exc
            raise
        return len(data)

    def flush(self) -> None:
        pass


def encrypt_stream(settings: Settings, next_chunk: Callable[[], bytes | memoryview],
                   write: Callable[[bytes], object]) -> None:
    """Encrypt the chunks ``next_chunk()`` returns (until an empty one) to the settings' recipients, each
    encrypted piece handed to ``write``; an error raised by either is raised as it was."""
    pyrage = _pyrage()
    to = recipients(settings)
    source, sink = _Source(next_chunk), _Sink(write)
    try:
        with _quick_handoff():
            pyrage.encrypt_io(source, sink, to)
    except Exception as exc:  # EncryptError (wrapping what a callback raised), OSError
        error = source.error or sink.error
        if error is not None:
            raise error from None
        raise CheckFailed(f"encrypting the backup failed: {exc}") from None


# -- the reading side ---------------------------------------------------------
def _decrypt_error(key: str, exc: BaseException) -> DbopsError:
    return CheckFailed(f"backup {key} could not be decrypted: {exc}",
                       hint="the stored object is damaged or was replaced; restore another backup")


class PlainReader:
    """``read(n)`` of the archive inside an age-encrypted stream ``raw``; ``close()`` closes ``raw``.

    A thread runs pyrage's decryption from ``raw`` into a queue of a few
    64 KiB chunks, so memory stays bounded whatever the backup's size.  An
    error of ``raw`` (the store failing) is raised as it was; a damaged
    object as :class:`~dbops.errors.CheckFailed`.
    """

    def __init__(self, raw: BinaryIO, identities: list, key: str):
        self.raw = raw
        self.key = key
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=_QUEUED)
        self._stopped = threading.Event()
        self._buffer = b""
        self._pos = 0
        self._done = False
        self._raw_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(identities,), daemon=True, name="age-decrypt")
        self._thread.start()

    def _read_raw(self, n: int = -1) -> bytes:
        try:
            return self.raw.read(n)
        except BaseException as exc:
            self._raw_error = exc
            raise

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stopped

    def _run(self, ids: list) -> None:
        pyrage = _pyrage()
        try:
            with _quick_handoff():
                pyrage.decrypt_io(SimpleNamespace(read=self._read_raw), _Sink(self._put), ids)
            item: bytes | BaseException = b""
        except Exception as exc:
            item = self._raw_error or (exc if isinstance(exc, _Stopped) else _decrypt_error(self.key, exc))
        if not self._stopped.is_set():
            try:
                self._put(item)
            except _Stopped:
                pass

    def read(self, n: int = -1) -> bytes:
        while self._pos >= len(self._buffer):
            if self._done:
                return b""
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._done = True
                raise item
            if not item:
                self._done = True
                return b""
            self._buffer, self._pos = item, 0
        end = len(self._buffer) if n is None or n < 0 else self._pos + n
        out = self._buffer[self._pos:end]
        self._pos += len(out)
        return out

    def close(self) -> None:
        self._stopped.set()
        try:
            self.raw.close()
        finally:
            self._thread.join(timeout=5)


class _Stopped(Exception):
    """The reader was closed: the decrypting thread stops."""


def open_plain(settings: Settings, backup: Any, raw: BinaryIO) -> BinaryIO:
    """The archive's bytes from ``raw``, the stored object's stream: ``raw`` itself when ``backup`` is not
    encrypted, else a :class:`PlainReader` (:class:`KeyRequired` first when no identity here decrypts it).

    Check the bytes read against ``manifest.archive_sha256`` / ``archive_size``.
    """
    try:
        ids = identities(settings, backup)
    except BaseException:
        raw.close()
        raise
    if not ids:
        return raw
    return PlainReader(raw, ids, _manifest(backup).key or backup.key)  # type: ignore[return-value]


def decrypt_file(settings: Settings, backup: Any, src: Path, dst: Path) -> tuple[str, int]:
    """Decrypt the stored object downloaded to ``src`` into ``dst``, streamed; returns the archive's
    (sha256, size), checked against the manifest (:class:`ChecksumMismatch`).  ``dst`` is removed on failure.

    A backup that is not encrypted is refused (nothing to decrypt: use ``src`` as it is).
    """
    manifest = _manifest(backup)
    if manifest.encryption is None:
        raise UsageError(f"backup {manifest.key} is not encrypted: there is nothing to decrypt")
    ids = identities(settings, backup)
    pyrage = _pyrage()
    digest = hashlib.sha256()
    size = 0
    try:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            def write(data: bytes) -> None:
                nonlocal size
                digest.update(data)
                size += len(data)
                fout.write(data)

            sink = _Sink(write)
            try:
                pyrage.decrypt_io(fin, sink, ids)
            except Exception as exc:
                if sink.error is not None:
                    raise sink.error from None
                raise _decrypt_error(manifest.key or str(src), exc) from None
        actual = digest.hexdigest()
        if actual != manifest.archive_sha256 or size != manifest.archive_size:
            raise ChecksumMismatch(manifest.key or str(src),
                                   f"archive sha256 {manifest.archive_sha256[:16]}… ({manifest.archive_size} bytes)",
                                   f"sha256 {actual[:16]}… ({size} bytes) after decryption",
                                   hint="the object was changed or damaged after the backup; restore another backup")
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    return actual, size
