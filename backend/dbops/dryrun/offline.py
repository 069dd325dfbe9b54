"""Each revision's SQL without a database (``alembic upgrade prev:rev --sql``), and the line that wrote it.

Every revision is rendered offline on its own, so each Squawk finding names
its revision.  **A revision that cannot be rendered offline** (a data migration
that reads rows through ``op.get_bind()``: offline there is no database, so the
bind is ``None``) does not stop the dry run: :func:`render_sql` records why in
:attr:`RevisionSql.offline_error` (one line: the file's line and the error).

**Which line of the revision file.**  Offline, alembic writes each statement
to an output buffer while the revision's ``upgrade()`` runs; the buffer here
looks up the call stack at every write for the frame in the revision file, so
each statement knows the line of the ``op.*`` call that produced it (exact,
loops and helpers included).

**An empty capture is not a clean result.**  A revision whose ``upgrade()``
does something (:func:`~.source.first_operation`) must leave statements of its
own: offline, in this buffer; from a rehearsal, in what its connection ran.
When alembic did not even write its ``-- Running upgrade ... -> REV`` line here
(env.py sent the offline SQL elsewhere), or a rehearsal's capture of it is
empty (env.py ran it on a connection of its own), :func:`render_sql` raises
:class:`~dbops.errors.NothingCaptured` naming the revision: nothing was
checked, so nothing may pass for "no findings".  A revision that ran here but
wrote nothing offline (its code skips offline mode) gets the one-line notice
of a revision without offline SQL, as one that fails offline does.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy.engine import URL

from ..errors import ENV_PY_FIX, NOT_SEEN, DbopsError, MigrationError, ModelImportError, NothingCaptured
from ..migrations import Project
from .model import CAPTURED, NONE, RevisionSql
from .source import first_operation

#: the URL offline SQL is rendered for: never connected to
OFFLINE_URL = URL.create("postgresql+psycopg2", username="offline", host="localhost", database="offline")


class _TracingBuffer(io.StringIO):
    """alembic's output buffer that remembers, at every write, the line of the revision file running now."""

    def __init__(self, path: str):
        super().__init__()
        self.path = os.path.realpath(path)
        self.marks: list[tuple[int, int | None]] = []  # (offset in the output, line of the revision file)
        self._real: dict[str, str] = {}

    def write(self, text: str) -> int:
        self.marks.append((self.tell(), self._caller_line()))
        return super().write(text)

    def _caller_line(self) -> int | None:
        frame = sys._getframe(2)  # the stack is the only record of which op wrote this
        while frame is not None:
            name = frame.f_code.co_filename
            real = self._real.get(name) or self._real.setdefault(name, os.path.realpath(name))
            if real == self.path:
                return frame.f_lineno
            frame = frame.f_back
        return None

    def lines(self) -> dict[int, int]:
        """1-based line of the output -> line of the revision file, for the lines a revision's op wrote."""
        text = self.getvalue()
        out: dict[int, int] = {}
        first = 1  # the output line a write starts on, counted as the writes go
        for (start, line), (end, _) in itertools.pairwise([*self.marks, (len(text), None)]):
            chunk = text[start:end]
            if line is not None:
                for n in range(first, first + chunk.rstrip("\n").count("\n") + 1):
                    out[n] = line
            first += chunk.count("\n")
        return out


def _revision_frame_line(tb, path: str) -> int | None:
    real, line = os.path.realpath(path), None
    while tb is not None:
        if os.path.realpath(tb.tb_frame.f_code.co_filename) == real:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _start(project: Project, revision: str) -> str | None:
    down = project.revision(revision).down_revision
    start = down if isinstance(down, str) else None
    if isinstance(down, (tuple, list)) and down:
        start = down[0]
    return start


def _offline(project: Project, rev: str, url: URL) -> RevisionSql:
    script = project.revision(rev)
    result = RevisionSql(script.revision, script.doc or "", str(script.path))
    buffer = _TracingBuffer(script.path)
    try:
        result.sql = project.upgrade_sql(url, _start(project, script.revision), script.revision, output=buffer)
    except ModelImportError:
        raise
    except Exception as exc:
        cause = exc.__cause__ if isinstance(exc, DbopsError) and exc.__cause__ is not None else exc
        line = _revision_frame_line(cause.__traceback__, script.path)
        first = (str(cause).strip().splitlines() or [""])[0]
        if line is None:  # not the revision's own code (env.py, alembic): the whole dry run cannot go on
            if isinstance(exc, DbopsError):
                raise
            raise MigrationError(
                f"the offline SQL of revision {script.revision} ({result.name}) cannot be rendered: "
                f"{type(cause).__name__}: {first}",
                hint="fix env.py's offline mode (run_migrations_offline); nothing was changed",
            ) from None
        result.error_line, result.source = line, NONE
        result.offline_error = f"line {line}: {_why(script.path, line, cause)}: {type(cause).__name__}: {first}"
        return result
    result.lines = buffer.lines()
    line = first_operation(script.path)
    if line is not None and not result.lines and _ran(result.sql, script.revision):
        # alembic ran it into this buffer, but its own code wrote nothing: it skips offline mode
        result.error_line, result.source, result.sql = line, NONE, ""
        result.offline_error = (f"line {line}: upgrade() has operations but wrote no statement in offline mode "
                                "(alembic upgrade --sql): its code skips it")
    return result


def _ran(sql: str, revision: str) -> bool:
    """Whether alembic wrote its ``-- Running upgrade ... -> REV`` line for ``revision`` into the buffer."""
    return re.search(rf"^-- Running upgrade .*-> {re.escape(revision)}\s*$", sql, re.MULTILINE) is not None


def _why(path: str, line: int, exc: BaseException) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8").splitlines()[line - 1]
    except (OSError, IndexError, UnicodeDecodeError):
        text = ""
    if "get_bind" in text or "NoneType" in str(exc):
        return "it reads the database (op.get_bind()), which offline SQL (alembic upgrade --sql) does not have"
    return "the revision fails in offline mode (alembic upgrade --sql)"


def render_sql(project: Project, revisions: Iterable[str], *, captured: dict[str, Sequence[str]] | None = None,
               url: URL = OFFLINE_URL) -> list[RevisionSql]:
    """Each revision's SQL, oldest first as given: never raises for one revision's offline failure.

    A revision that fails offline gets ``offline_error`` (one line) and ``source="none"``; one in
    ``captured`` (revision -> the statements a rehearsal captured) is given those statements as its SQL
    (``source="captured"``), whether or not offline SQL exists.  A failure outside the revisions' own code
    (env.py, a model import) still raises its DbopsError; a revision with operations of which nothing was
    captured (module docstring) raises NothingCaptured.
    """
    captured = {project.revision(k).revision: v for k, v in (captured or {}).items()}
    out, lost, empty = [], [], []
    for rev in revisions:
        result = _offline(project, rev, url)
        line = first_operation(result.path)
        if result.revision in captured:
            result.sql = captured_sql(captured[result.revision])
            result.source, result.lines = CAPTURED, {}
            if line is not None and not result.sql:
                empty.append((result.revision, result.path, line))
        elif line is not None and result.offline_error is None and not _ran(result.sql, result.revision):
            lost.append((result.revision, result.path, line))
        out.append(result)
    if empty:
        raise NothingCaptured(
            empty, "the rehearsal's capture (every statement run on dbops' connection to the copy)",
            why=NOT_SEEN,
            hint=f"{ENV_PY_FIX}; in the revision, run SQL through op.execute() or op.get_bind(), not a raw DBAPI "
            "cursor; then rehearse again. Nothing was linted, and nothing was changed",
        )
    if lost:
        raise NothingCaptured(
            lost, "the offline SQL (alembic upgrade --sql through env.py)",
            why="alembic wrote no `-- Running upgrade ... -> REV` line into the buffer dbops handed env.py: env.py "
            "sent the offline SQL elsewhere (an output_buffer of its own) or did not run the migrations offline",
            hint="let env.py's run_migrations_offline() call context.configure(url=..., literal_binds=True) "
            "without an output_buffer of its own, then context.run_migrations(); nothing was linted, and nothing "
            "was changed",
        )
    return out


def captured_sql(statements: Sequence[str]) -> str:
    """Captured statements as one SQL text, one statement per ``;``."""
    parts = [s.strip().rstrip(";").strip() for s in statements]
    return "".join(f"{p};\n" for p in parts if p)
