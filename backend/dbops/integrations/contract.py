"""dbops' health contract, answered for an app: where its database stands against the head its code expects.

Framework-free: :class:`HealthContract` reads the database's revision on the
app's own engine and the code's heads from its migration scripts, then
classifies them with :mod:`dbops.lineage` (its scripts first, then the
lineage ``dbops deploy`` records, so an old release knows a newer schema is
**ahead**).  :meth:`HealthContract.answer` gives the status and the JSON body
the router and the blueprint send:

- **200** ``at head`` / ``ahead``;
- **503** ``behind`` (a migration this code needs has not run), ``unknown``
  (a revision this code cannot place), the database unreachable or not
  configured, the scripts unreadable.

The body names both sides: ``heads`` (and ``head``) what the code expects,
``current`` (and ``revision``) where the database is, ``schema`` and a
``detail`` sentence.  :mod:`dbops.health` recognises these fields, and only
then speaks of the contract in a deploy's words.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Engine

from .. import lineage
from ..errors import DbopsError
from ..migrations import Project
from ..redact import reason
from ..settings import normalize_database_url

#: the app's database: an Engine, a URL (``postgres://`` as platforms hand it out), or a callable returning one
#: (read on each request: ``lambda: db.engine`` under Flask-SQLAlchemy) or None (503 "not configured")
Database = Engine | URL | str | Callable[[], "Engine | URL | str | None"] | None
#: a path, or a callable returning one (read on each request)
PathSource = str | os.PathLike | Callable[[], "str | os.PathLike | None"] | None


@dataclass(frozen=True)
class Answer:
    status: int  # 200 or 503
    body: dict

    @property
    def healthy(self) -> bool:
        return self.status == 200


def _value(source):
    return source() if callable(source) else source


class HealthContract:
    """The contract over one app's database and migration scripts (``alembic_ini`` or ``script_location``).

    Engines it makes from a URL are made once (a small pool, pre-ping, a 3 s connect timeout); an Engine
    passed in is the app's own and used as it is.  The scripts are read again only when a file under their
    versions folder changes (a revision added to a running app counts from the next request).
    """

    def __init__(self, database: Database, *, alembic_ini: PathSource = None, script_location: PathSource = None):
        if (alembic_ini is None) == (script_location is None):
            raise TypeError("pass one of alembic_ini= (the project's alembic.ini) or script_location= "
                            "(the migrations folder, e.g. Flask-Migrate's migrations/)")
        self._database, self._ini, self._location = database, alembic_ini, script_location
        if isinstance(database, str):  # a bad URL fails now, at the app's start, naming what is wrong
            normalize_database_url(database, variable="the health contract's database URL")
        self._engines: dict[str, Engine] = {}
        self._scripts: dict[str, tuple[tuple, list[str], dict[str, tuple[str, ...]]]] = {}
        self._lock = threading.Lock()

    # -- the two sides ---------------------------------------------------------------------------------------
    def engine(self) -> Engine | None:
        """The app's engine (None: no database configured)."""
        db = _value(self._database)
        if db is None or db == "":
            return None
        if isinstance(db, Engine):
            return db
        url = normalize_database_url(db if isinstance(db, str) else db.render_as_string(hide_password=False),
                                     variable="the health contract's database URL")
        key = url.render_as_string(hide_password=False)
        with self._lock:
            if key not in self._engines:
                self._engines[key] = sa.create_engine(url, pool_pre_ping=True, pool_size=2,
                                                      connect_args={"connect_timeout": 3})
            return self._engines[key]

    def script(self) -> ScriptDirectory:
        """The code's migration scripts, as Alembic (and ``dbops``) read them."""
        location = _value(self._location)
        if location is not None:
            return ScriptDirectory(str(Path(location).resolve()))
        ini = _value(self._ini)
        if ini is None:
            raise TypeError("the alembic_ini callable returned None")
        return ScriptDirectory.from_config(Project(Path(ini)).config())

    def code(self) -> tuple[list[str], dict[str, tuple[str, ...]]]:
        """(the code's heads, revision → parents), read again only when a revision file changed."""
        script = self.script()
        key, stamp = script.dir, _signature(script)
        with self._lock:
            cached = self._scripts.get(key)
            if cached and cached[0] == stamp:
                return cached[1], cached[2]
        heads, parents = sorted(script.get_heads()), lineage.script_parents(script)
        with self._lock:
            self._scripts[key] = (stamp, heads, parents)
        return heads, parents

    # -- the answer ------------------------------------------------------------------------------------------
    def answer(self) -> Answer:
        """The status and body of the health endpoint, now."""
        try:
            heads, parents = self.code()
        except Exception as exc:
            return Answer(503, {"status": "error", "database": "unknown",
                                "detail": f"this app's migration scripts cannot be read: {reason(exc, typed=True)}"})
        try:
            engine = self.engine()
        except DbopsError as exc:
            return Answer(503, {"status": "error", "database": "not configured", "detail": exc.message,
                                "heads": heads})
        if engine is None:
            return Answer(503, {"status": "error", "database": "not configured", "heads": heads})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
                current = sorted(Project.current(conn))
                found = lineage.state_for(conn, heads, current, parents)
        except sa.exc.SQLAlchemyError as exc:
            return Answer(503, {"status": "error", "database": "unreachable", "detail": reason(exc, engine.url),
                                "heads": heads})
        body = {
            "status": "ok" if found.healthy else "error",
            "database": "ok",
            "schema": found.state,
            "detail": found.detail,
            "current": current,
            "heads": heads,
            # single-revision convenience fields (what most checkers read): the database's, and this code's
            "revision": current[0] if len(current) == 1 else None,
            "head": heads[0] if len(heads) == 1 else None,
        }
        return Answer(200 if found.healthy else 503, body)


def _signature(script: ScriptDirectory) -> tuple:
    """What changes when a revision file is added, edited or removed under the scripts' version folders."""
    found = []
    for folder in script.version_locations or [script.versions]:
        path = Path(folder)
        files = path.rglob("*.py") if script.recursive_version_locations else path.glob("*.py")
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            found.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(sorted(found))
