"""The dry run: the SQL each revision would run (``alembic upgrade prev:rev --sql``), linted by Squawk.

The guide's "dry run" step.  Every revision is rendered offline on its own
(no database), so each Squawk finding names its revision.  Used by the
deploy's dry-run step, by ``inv lint`` and by ``inv sync`` for the revision
it has just generated.  Nothing here prints: results are returned, and the
callers show them through their UI (:mod:`dbops.report_format` formats them).

**A revision that cannot be rendered offline** (a data migration that reads
rows through ``op.get_bind()``: offline there is no database, so the bind is
``None``) does not stop the dry run: :func:`render_sql` records why in
:attr:`RevisionSql.offline_error` (one line: the file's line and the error),
and the other revisions are rendered and linted as usual.

**The rehearsal's hook.**  Whoever ran the revisions for real (``inv
rehearse``) passes the statements it captured from the cursor::

    run = dryrun.lint_revisions(project, ["a1", "b2"], captured={"b2": ["UPDATE users SET ...", ...]})
    run.revisions[1].source        # "captured": b2 was linted from the captured SQL
    run.revisions[1].offline_error # still says why offline SQL failed (or None)
    run.findings                   # squawk's findings, each with .path and .source_line

A revision in ``captured`` is linted from those statements *instead of* its
offline SQL; the others from their offline SQL.

**Which line of the revision file.**  Offline, alembic writes each statement
to an output buffer while the revision's ``upgrade()`` runs; the buffer here
looks up the call stack at every write for the frame in the revision file, so
each statement knows the line of the ``op.*`` call that produced it (exact,
loops and helpers included).  Captured statements have no stack: their line is
the ``op.*`` / ``.execute`` call in ``upgrade()`` whose string arguments share
the most names with the statement (the table counts most), else the
``def upgrade`` line (:func:`source_line_for`).
"""

from __future__ import annotations

import ast
import io
import itertools
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL

from . import postgres, squawk
from .errors import DbopsError, LintFailed, MigrationError, ModelImportError, UsageError
from .migrations import Project
from .settings import Settings
from .squawk import Allow, Finding
from .ui import SILENT, UI

#: the URL offline SQL is rendered for: never connected to
OFFLINE_URL = URL.create("postgresql+psycopg2", username="offline", host="localhost", database="offline")

#: the formats of ``--format`` (lint, test-rollback, rehearse)
FORMATS = ("text", "json", "markdown")

OFFLINE, CAPTURED, NONE = "offline", "captured", "none"


@dataclass
class RevisionSql:
    """One revision's SQL for the preview, and where it came from."""

    revision: str
    doc: str
    #: the revision file
    path: str
    #: the SQL linted: offline SQL, or the captured statements; "" when neither exists
    sql: str = ""
    #: why offline SQL could not be rendered (one line, with the file's line), None when it was
    offline_error: str | None = None
    #: the line of the revision file where offline rendering failed
    error_line: int | None = None
    #: offline | captured | none (not linted)
    source: str = OFFLINE
    #: 1-based line of ``sql`` -> line of the revision file that produced it (offline rendering)
    lines: dict[int, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def notice(self) -> str | None:
        """The one line the dry run and ``inv lint`` show for a revision without offline SQL."""
        if self.offline_error is None:
            return None
        then = ("linted from the rehearsal's captured SQL" if self.source == CAPTURED
                else "not linted (`inv rehearse` runs it on a copy and lints the SQL it really runs)")
        return f"revision {self.revision} ({self.name}): no offline SQL: {self.offline_error}; {then}"

    def source_line(self, sql_line: int) -> int | None:
        """The line of the revision file that produced line ``sql_line`` (1-based) of :attr:`sql`."""
        if sql_line in self.lines:
            return self.lines[sql_line]
        before = [n for n in self.lines if n <= sql_line]
        return self.lines[max(before)] if before else None

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("lines")
        return data


@dataclass
class DryRun:
    """Each revision's SQL and Squawk's findings on it (:func:`lint_revisions`)."""

    revisions: list[RevisionSql] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    #: allow comments no finding matched (a stale allow is worth removing)
    unused_allows: list[Allow] = field(default_factory=list)

    @property
    def sql(self) -> dict[str, str]:
        """revision -> the SQL linted (revisions without any SQL are left out)."""
        return {r.revision: r.sql for r in self.revisions if r.sql}

    @property
    def errors(self) -> list[Finding]:
        """The findings that stop a deploy."""
        return [f for f in self.findings if f.is_error]

    @property
    def accepted(self) -> list[Finding]:
        return [f for f in self.findings if f.accepted]

    @property
    def notices(self) -> list[str]:
        """One line per revision without offline SQL."""
        return [r.notice for r in self.revisions if r.notice]

    def revision(self, rev: str) -> RevisionSql | None:
        return next((r for r in self.revisions if r.revision == rev), None)

    def as_dict(self) -> dict:
        return {
            "ok": not self.errors,
            "errors": len(self.errors),
            "revisions": [
                {**r.as_dict(), "findings": [f.as_dict() for f in self.findings if f.revision == r.revision]}
                for r in self.revisions
            ],
            "findings": [f.as_dict() for f in self.findings],
            "accepted": [f.as_dict() for f in self.accepted],
            "unused_allows": [asdict(a) for a in self.unused_allows],
            "notices": self.notices,
        }


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


def revision_sql(project: Project, revision: str, *, url: URL = OFFLINE_URL) -> str:
    """The SQL one revision runs on upgrade (from its parent), without a database.

    Raises what the revision raises offline; :func:`render_sql` turns that into ``offline_error``.
    """
    return project.upgrade_sql(url, _start(project, revision), revision)


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
    return result


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
    (env.py, a model import) still raises its DbopsError.
    """
    captured = {project.revision(k).revision: v for k, v in (captured or {}).items()}
    out = []
    for rev in revisions:
        result = _offline(project, rev, url)
        if result.revision in captured:
            result.sql = captured_sql(captured[result.revision])
            result.source, result.lines = CAPTURED, {}
        out.append(result)
    return out


def captured_sql(statements: Sequence[str]) -> str:
    """Captured statements as one SQL text, one statement per ``;``."""
    parts = [s.strip().rstrip(";").strip() for s in statements]
    return "".join(f"{p};\n" for p in parts if p)


# -- the line of the operation, for captured SQL --------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ROOTS_SKIPPED = {"sa", "sqlalchemy", "postgresql", "mysql", "text"}


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Call)):
        node = node.value if isinstance(node, ast.Attribute) else node.func
    return node.id if isinstance(node, ast.Name) else None


def _upgrade_calls(path: str) -> tuple[int | None, list[tuple[int, set[str]]]]:
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None, []
    upgrade = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and n.name == "upgrade"), None)
    if upgrade is None:
        return None, []
    calls = []
    for node in ast.walk(upgrade):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and _root_name(node.func) not in _ROOTS_SKIPPED:
            words = {w.lower() for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)
                     for w in _WORD.findall(c.value)}
            calls.append((node.lineno, words))
    return upgrade.lineno, sorted(calls)


def source_line_for(path: str, statement: str) -> int | None:
    """The line in ``upgrade()`` of the call that most likely produced ``statement`` (a search, see the module)."""
    def_line, calls = _upgrade_calls(path)
    words = {w.lower() for w in _WORD.findall(statement)}
    table = squawk.statement_table(statement)
    best, best_score = def_line, 0
    for line, strings in calls:
        score = len(words & strings) + (10 if table and table in strings else 0)
        if score > best_score:
            best, best_score = line, score
    return best


# -- linting ----------------------------------------------------------------------------------------------------

def lint_revisions(project: Project, revisions: Iterable[str], *, pg_version: str | None = None,
                   captured: dict[str, Sequence[str]] | None = None,
                   config: str | Path | None | bool = True) -> DryRun:
    """Each revision's SQL (:func:`render_sql`) and its findings, oldest first as given.

    ``captured``: revision -> statements a rehearsal captured, linted instead of the offline SQL.
    ``config``: the ``.squawk.toml`` to honour; ``True`` (the default) finds the project's beside
    alembic.ini, ``None``/``False`` uses none.  Each revision file's ``# dbops: allow <rule>: <why>``
    comments accept its findings of that rule (read first: a malformed one raises BadAllowComment
    before anything is linted).
    """
    revisions = [project.revision(r).revision for r in revisions]
    if config is True:
        config = squawk.project_config(project.ini.parent)
    allows = {rev: squawk.allows_in(project.revision(rev).path) for rev in revisions}
    run = DryRun(render_sql(project, revisions, captured=captured))
    for rev in run.revisions:
        if not rev.sql:
            continue
        found = squawk.lint_sql(rev.sql, revision=rev.revision, pg_version=pg_version, config=config or None)
        used = set()
        for f in found:
            f.path = rev.path
            f.source_line = rev.source_line(f.line) if rev.source == OFFLINE else None
            if f.source_line is None:
                f.source_line = source_line_for(rev.path, f.statement)
            allow = next((a for a in allows[rev.revision] if a.rule == f.rule), None)
            if allow is not None:
                f.accepted = allow.reason
                used.add(allow)
        run.findings += found
        run.unused_allows += [a for a in allows[rev.revision] if a not in used]
    return run


def sql_text(revisions: Sequence[RevisionSql]) -> str:
    """The dry-run SQL with a banner at every revision boundary (a revision without SQL says why)."""
    parts = []
    for r in revisions:
        via = " (captured in a rehearsal)" if r.source == CAPTURED else ""
        parts.append(f"-- ==== revision {r.revision}: {r.doc} ({r.name}){via} ====")
        if r.offline_error and r.source != CAPTURED:
            parts.append(f"-- no offline SQL: {r.offline_error}")
        elif r.sql:
            parts.append(r.sql.strip())
    return "\n\n".join(parts) + "\n"


def revision_id(project: Project, ref: str) -> str:
    """A revision from an id (a prefix, ``head``) or from the path of its file (what a CI diff lists)."""
    if ref.endswith(".py") and Path(ref).is_file():
        path = Path(ref).resolve()
        script = next((s for s in project.script.walk_revisions() if Path(s.path).resolve() == path), None)
        if script is None:
            raise UsageError(f"{ref} is not a revision file of {project.ini}",
                             hint=f"pass a file under {project.script.dir} or a revision id")
        return script.revision
    return project.revision(ref).revision


def pending_revisions(settings: Settings, project: Project) -> list[str]:
    """The revisions pending on the environment's database."""
    from .servers import environment_url

    url = environment_url(settings)
    with postgres.connect(url, name="dbops lint", timeout=settings.connect_timeout_s,
                          hint=settings.connect_hint) as conn:
        return [s.revision for s in project.pending(project.current(conn))]


def lint_pending(settings: Settings, revisions: list[str] | None = None, *, fmt: str = "text",
                 captured: dict[str, Sequence[str]] | None = None, ui: UI = SILENT) -> DryRun:
    """``inv lint``: lint the given revisions, or those pending on the environment's database.

    Shows the report in ``fmt`` (text: the SQL, the findings; json; markdown: a table per revision) and,
    under GitHub Actions (``settings.github_actions``, text and markdown only), an annotation per finding
    on the revision file.  Raises LintFailed on error-level findings.
    """
    from . import report_format

    report_format.check_format(fmt)
    project = Project(settings.alembic_ini)
    revisions = [revision_id(project, r) for r in revisions] if revisions else pending_revisions(settings, project)
    run = lint_revisions(project, revisions, captured=captured,
                         config=squawk.project_config(settings.root) or True)
    if settings.github_actions and fmt != "json":
        annotations = report_format.lint_annotations(run, root=settings.root)
        if annotations:
            ui.say(annotations)
    ui.say(report_format.lint_report(run, fmt))
    if run.errors:
        raise LintFailed(run.findings, hint="rewrite the statements the safer way shown above before deploying, "
                         "or accept one with `# dbops: allow <rule>: <why>` in the revision file")
    return run


def lint_revision_file(path: str | Path, ini: str | Path, *, ui: UI = SILENT) -> list[Finding]:
    """Squawk's findings for a freshly generated revision file (``inv sync`` calls this), shown through ``ui``."""
    path = Path(path).resolve()
    project = Project(ini)
    script = next((s for s in project.script.walk_revisions() if Path(s.path).resolve() == path), None)
    if script is None:
        ui.warn(f"lint: {path} is not a revision of {project.ini}; not linted")
        return []
    run = lint_revisions(project, [script.revision])
    for line in run.notices:
        ui.warn(line)
    if run.findings:
        ui.say(squawk.render_findings(run.findings))
    elif not run.notices:
        ui.ok(f"squawk: no findings in {script.revision}")
    return run.findings
