"""The code now serving: which commit it is, and the models it maps (loaded in a process of its own).

The commit comes from ``--ref``, or from the revision the app reports on its
health URL (the code's own head: ``head``/``heads`` in the body, else its
``revision``/``current``), or, with no health URL, from the database's
``alembic_version``: the newest commit that added that revision's file
(``git log --diff-filter=A``).  That commit's tree is unpacked with ``git
archive`` into a temporary folder and its env.py is run offline by
:mod:`.load_models` in a fresh interpreter, so its ``app`` modules never meet
the serving tree's in ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import git, health, postgres, scratch
from ..errors import MigrationError, ToolFailed, UsageError
from ..migrations import Project
from ..servers import environment_url
from ..settings import Settings

#: upper bound for loading the old models (imports only; nothing connects)
LOAD_TIMEOUT_S = 300

_SCRIPT = Path(__file__).with_name("load_models.py")


@dataclass
class Column:
    name: str
    attr: str | None
    type: str
    nullable: bool
    default: bool


@dataclass
class Table:
    schema: str | None
    name: str
    models: list[str]
    columns: dict[str, Column] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The name the catalog snapshot gives it (``posts``, ``audit.log``)."""
        return self.name if self.schema in (None, "public") else f"{self.schema}.{self.name}"

    @property
    def model(self) -> str:
        """Who maps it, for messages: ``Post``, ``Post, Draft``, or ``table posts`` (a Core table)."""
        return ", ".join(self.models) if self.models else f"table {self.key}"

    def who(self, column: Column) -> str:
        """``Post.title`` (the ORM attribute), else ``Post`` / ``table posts`` and the column."""
        return column.attr or f"{self.model}.{column.name}"


@dataclass
class OldCode:
    """The serving code: its commit, why that commit, its scripts' heads and its tables."""

    commit: str
    described: str
    source: str
    heads: list[str]
    tables: list[Table]


@dataclass
class Serving:
    """What the environment says is serving: revisions, and where they were read."""

    revisions: list[str]
    source: str


def serving_revisions(settings: Settings, project: Project) -> Serving:
    """The revisions of the code now serving: the health URL's answer, else the database's revision."""
    if settings.health_url:
        h = health.check(settings.health_url, timeout=settings.health_timeout_s)
        revs = _code_revisions(h.body)
        if revs:
            return Serving(revs, f"the app at {h.url} reports {', '.join(revs)}")
        reason = h.reason if h.status is None else f"HTTP {h.status}, no revision in its body"
        where = f"the health URL {h.url} ({reason})"
    else:
        where = "no HEALTH_URL"
    url = environment_url(settings, purpose="read the serving revision from (or pass --ref)")
    with postgres.connect(url, name="dbops compat", timeout=settings.connect_timeout_s,
                          hint=settings.connect_hint + "; or pass --ref with the serving commit") as conn:
        current = list(project.current(conn))
    if not current:
        raise UsageError(
            f"cannot tell which code serves --env {settings.env}: {where}, and the database has no "
            "alembic revision yet",
            hint="pass --ref with the commit (or tag) now deployed",
        )
    return Serving(current, f"{where}; the database is at {', '.join(current)}")


def _code_revisions(body: object) -> list[str]:
    """The code's own head(s) a health body names (``head``/``heads``), else the schema's (``revision``...)."""
    if not isinstance(body, dict):
        return []
    heads = body.get("heads")
    if isinstance(heads, list) and heads and all(isinstance(h, str) for h in heads):
        return sorted(heads)
    if isinstance(body.get("head"), str):
        return [body["head"]]
    return health.reported_revisions(body) or []


def commit_for(repo: Path, project: Project, revisions: list[str], source: str) -> tuple[str, str]:
    """The newest commit that added one of these revisions' files, and a sentence saying so."""
    scripts = [project.revision(r) for r in revisions]
    files = [Path(s.path).resolve() for s in scripts]
    outside = [f for f in files if not f.is_relative_to(repo)]
    if outside:
        raise UsageError(f"the revision file {outside[0]} is not in the git repository {repo}",
                         hint="pass --ref with the commit now deployed")
    commit = git.commit_adding(repo, files)
    if commit is None:
        raise UsageError(
            f"no commit added the file of revision {', '.join(revisions)} ({files[0].name}): it is not committed",
            details=f"checked: git log --diff-filter=A -- {files[0].relative_to(repo)}",
            hint="commit it, or pass --ref with the commit now deployed",
        )
    return commit, f"{source}; its file was added in commit {commit[:12]}"


def load(settings: Settings, project: Project, *, ref: str | None = None, workdir: Path) -> OldCode:
    """Find the serving commit, unpack its tree under ``workdir`` and load its models in a subprocess."""
    repo = git.toplevel(settings.alembic_ini.parent)
    if ref:
        commit = git.resolve(repo, ref)
        source = f"--ref {ref}"
    else:
        serving = serving_revisions(settings, project)
        commit, source = commit_for(repo, project, serving.revisions, serving.source)
    if not settings.alembic_ini.resolve().is_relative_to(repo):
        raise UsageError(f"the alembic config {settings.alembic_ini} is outside the git repository {repo}",
                         hint="run from the repository the project lives in")
    ini_rel = settings.alembic_ini.resolve().relative_to(repo)
    # the project's folder when alembic.ini lies under it (Flask-Migrate's migrations/ beside the app), else the ini's
    root = settings.root.resolve()
    base = root if settings.alembic_ini.resolve().is_relative_to(root) and root.is_relative_to(repo) \
        else settings.alembic_ini.resolve().parent
    project_rel = base.relative_to(repo).as_posix()
    git.archive(repo, commit, workdir / "tree", "" if project_rel == "." else project_rel)
    old_ini = workdir / "tree" / ini_rel
    old_toml = old_ini.parent / "pyproject.toml"
    if not old_ini.is_file() and not (old_toml.is_file() and "[tool.alembic]" in old_toml.read_text(errors="replace")):
        raise UsageError(f"commit {commit[:12]} has no {ini_rel}: it predates the Alembic project",
                         hint="pass --ref with a commit that has the migrations (the one now deployed)")
    data = _load_models(old_ini, commit, tree=workdir / "tree", exclude=[settings.alembic_ini.parent.resolve(), repo])
    tables = [Table(t["schema"], t["name"], t["models"],
                    {c["name"]: Column(c["name"], c["attr"], c["type"], c["nullable"], c["default"])
                     for c in t["columns"]})
              for t in data["tables"]]
    return OldCode(commit, git.describe(repo, commit), source, data["heads"], tables)


def _load_models(ini: Path, commit: str, *, tree: Path, exclude: list[Path]) -> dict:
    with scratch.temporary_directory("dbops-compat-", purpose="the serving commit's models") as tmp:
        out = tmp / "models.json"
        argv = [sys.executable, "-I", str(_SCRIPT), str(ini), str(out), *map(str, exclude)]
        try:
            done = subprocess.run(argv, cwd=ini.parent, capture_output=True, text=True, timeout=LOAD_TIMEOUT_S,
                                  check=False)  # its exit is read below, with its output file
        except subprocess.TimeoutExpired as exc:
            raise ToolFailed("loading the models of the serving commit", None,
                             f"no answer within {LOAD_TIMEOUT_S}s") from exc
        try:
            data = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise ToolFailed("loading the models of the serving commit", done.returncode, tail) from None
    if "error" in data:
        # the unpacked tree is gone by now: name the file as `git show COMMIT:PATH` does
        where = data.get("where", "")
        for root in {f"{tree.resolve()}/", f"{tree}/"}:
            where = where.replace(root, f"{commit[:12]}:")
        where = f" ({where})" if where else ""
        raise MigrationError(
            f"the models of commit {commit[:12]} could not be loaded{where}: {data['error']}",
            hint="pass --ref with the commit now deployed (its env.py must load its models offline)",
        )
    return data
