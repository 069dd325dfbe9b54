"""``dbops init``: what a project needs to adopt dbops, written into the project's folder.

Four pieces, each planned first (:func:`plan`), shown, then written (:func:`apply`):

- ``pyproject.toml``: a small ``[tool.dbops]`` block (the file is created when absent; a project that already
  has the table keeps it as it is).  ``url-variables`` is filled when env.py's settings read a database URL
  from a variable dbops does not know (:func:`url_variable_candidates`), else left as a commented example;
- ``.gitignore``: ``.dbops/`` (dbops' state) and ``backups/`` (local backups and reports);
- ``Dockerfile`` and ``.dockerignore``: the job image of this project, from the templates in
  ``dbops/templates`` (``dockerfile_path`` elsewhere when the project's ``Dockerfile`` is its app's; an
  existing ``.dockerignore`` gets the lines it lacks);
- ``.github/workflows/dbops.yml``: the pull-request review through dbops' GitHub Action (``action.yml``).

Nothing that exists changes without asking: a new file is written; lines added to an existing file are
shown and asked for (``yes``: without asking); an existing file that differs from what init would write is
kept, with a line saying so, unless ``force``.  A second run writes nothing.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from . import __version__
from .errors import UsageError
from .migrations import Project
from .migrations.fence import PART_VARIABLES, SSL_VARIABLES, URL_VARIABLES
from .redact import reason
from .ui import SILENT, UI

#: where dbops' repository (and so its GitHub Action) lives; a git install names its own (:func:`action_ref`)
ACTION_REPO = "OWNER/REPO"
#: the actions the written workflow uses, pinned as this repository's workflows pin them (tests/test_workflows.py)
CHECKOUT = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1"

DOCKERFILE = "Dockerfile"
WORKFLOW = ".github/workflows/dbops.yml"
GITIGNORE_LINES = (".dbops/", "backups/")
_SKIPPED_DIRS = {".git", ".venv", "venv", "env", "node_modules", "__pycache__", "site-packages", "build", "dist",
                 "versions", "tests", "test"}


@dataclass(frozen=True)
class Change:
    """One file init writes: ``kind`` is create | add (lines to an existing file) | same | differs."""

    path: str  # relative to the project's folder
    kind: str
    text: str  # the file's whole new content
    shown: str  # what is added or written, for the summary
    note: str = ""


@dataclass(frozen=True)
class Outcome:
    written: tuple[str, ...]
    kept: tuple[str, ...]


# -- what goes in -------------------------------------------------------------------------------------------


def url_variable_candidates(root: Path, env_py: Path) -> list[str]:
    """Variables env.py (or the project's settings modules) read a database URL from that dbops does not
    set by itself: ``os.environ["APP_DB_URL"]``, ``os.getenv(...)`` and pydantic-settings fields
    (``env_prefix="ORDERS_"`` + ``db_url: str``).  A best guess, shown to the user, never required."""
    known = {*URL_VARIABLES, *PART_VARIABLES, *SSL_VARIABLES.values()}
    files = [env_py, *(p for p in sorted(root.rglob("*.py")) if not _SKIPPED_DIRS & set(p.relative_to(root).parts))]
    found: dict[str, None] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        names = re.findall(r"""(?:environ\.get\(|environ\[|getenv\()\s*["']([A-Za-z_][A-Za-z0-9_]*)["']""", text)
        prefix = re.search(r"""env_prefix\s*=\s*["']([A-Za-z0-9_]*)["']""", text)
        if prefix:
            fields = re.findall(r"^\s+([a-z_][a-z0-9_]*)\s*:", text, re.MULTILINE)
            names += [(prefix.group(1) + f).upper() for f in fields]
        for name in names:
            upper = name.upper()
            if (re.search(r"(URL|URI|DSN)$", upper) and re.search(r"DB|DATABASE|SQL|POSTGRES|PG", upper)
                    and upper not in known and not upper.endswith("_DATABASE_URL")):
                found[upper] = None
    return list(found)


def pyproject_block(candidates: Sequence[str]) -> str:
    names = ", ".join(f'"{n}"' for n in candidates)
    variables = (f"url-variables = [{names}]" if candidates else '# url-variables = ["APP_DB_URL"]')
    return ("[tool.dbops]\n"
            "# Any setting of dbops' docs/configuration.md but a secret may be set here (lock-timeout-ms = 5000;\n"
            "# health-url = \"https://...\" under [tool.dbops.env.prod]). The environment wins; secrets\n"
            "# (DATABASE_URL, AWS keys) come from the environment only. `dbops config --env prod` shows what an\n"
            "# environment gets.\n"
            "# url-variables: the variables your env.py reads its database URL from,\n"
            "# beyond DATABASE_URL, SQLALCHEMY_DATABASE_URI, *_DATABASE_URL and POSTGRES_*: dbops points them at\n"
            "# each step's database while env.py runs (written by `dbops init`; check the guess)\n"
            f"{variables}\n")


def template(name: str) -> str | None:
    """A template shipped in ``dbops/templates`` (package data), or None when this install has none."""
    try:
        return resources.files("dbops").joinpath("templates", name).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None


def action_ref() -> tuple[str, bool]:
    """``owner/repo@ref`` of dbops' action for the workflow, and whether it is pinned to a commit: the commit
    dbops was installed from (pip's ``direct_url.json`` of a git install), else this version's tag."""
    try:
        direct = json.loads(metadata.distribution("dbops").read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError):
        direct = {}
    commit = direct.get("vcs_info", {}).get("commit_id", "")
    repo = re.search(r"github\.com[/:]([\w.-]+/[\w.-]+?)(?:\.git)?/?$", direct.get("url", ""))
    if repo and re.fullmatch(r"[0-9a-f]{40}", commit):
        return f"{repo.group(1)}@{commit}", True
    return f"{ACTION_REPO}@v{__version__}", False


def workflow(*, config: str, revisions: str, uses: str) -> str:
    return f"""\
# The migrations a pull request adds, reviewed where the pull request is read: Squawk's lint and the
# round trip (upgrade, downgrade, upgrade) as annotations on the revision files and one comment.
# Written by `dbops init`; the action: dbops' action.yml. Pin `uses:` to a full commit SHA.
name: dbops

on:
  pull_request:

permissions:
  contents: read
  pull-requests: write  # the report as one pull-request comment, updated on each push

jobs:
  review:
    runs-on: ubuntu-latest
    timeout-minutes: 30
    strategy:
      fail-fast: false
      matrix:
        command: [lint, test-rollback]
    steps:
      - uses: {CHECKOUT}
        with:
          fetch-depth: 0  # the base branch, to find the revisions this pull request adds
          persist-credentials: false
      - uses: {uses}
        with:
          command: ${{{{ matrix.command }}}}
          config: {config}
          revisions: {revisions}
          # install: pip install -r requirements.txt  # your project's dependencies (default: found)
"""


# -- plan and apply ------------------------------------------------------------------------------------------


def plan(root: Path, alembic_ini: Path, *, uses: str | None = None, dockerfile_path: str = DOCKERFILE,
         dockerfile: str | None = None, dockerignore: str | None = None) -> list[Change]:
    """What init would write in the project at ``root`` (nothing is written).  ``dockerfile_path``: where the
    job Dockerfile goes; ``dockerfile`` / ``dockerignore``: the templates' text (default: dbops' own);
    ``uses``: the action (default :func:`action_ref`)."""
    root = root.resolve()
    project = Project(alembic_ini)
    script_dir = Path(project.script.dir).resolve()
    changes = [_pyproject(root, url_variable_candidates(root, script_dir / "env.py")), _gitignore(root)]
    dockerfile = template("job.Dockerfile") if dockerfile is None else dockerfile
    if dockerfile is None:
        changes.append(Change(dockerfile_path, "missing", "", "", note="this dbops has no job Dockerfile template"))
    else:
        changes.append(_whole_file(root, dockerfile_path, dockerfile))
        dockerignore = template("job.dockerignore") if dockerignore is None else dockerignore
        if dockerignore is not None:  # BuildKit reads <name>.dockerignore beside a Dockerfile of another name
            plain = Path(dockerfile_path).name == "Dockerfile"
            ignore = ".dockerignore" if plain else f"{dockerfile_path}.dockerignore"
            changes.append(_dockerignore(root, ignore, dockerignore))
    versions = [Path(v).resolve() for v in project.script.version_locations or [project.script.versions]]
    pathspec = " ".join(f"{_relative(v, root)}/*.py" for v in versions)
    changes.append(_whole_file(root, WORKFLOW, workflow(config=_relative(project.ini, root), revisions=pathspec,
                                                        uses=uses or action_ref()[0])))
    return changes


def apply(root: Path, changes: Sequence[Change], *, yes: bool = False, force: bool = False,
          ui: UI = SILENT) -> Outcome:
    """Write the planned changes, saying each one: new files; added lines when asked (or ``yes``); a
    differing file only with ``force``."""
    written: list[str] = []
    kept: list[str] = []
    for change in changes:
        target = root / change.path
        if change.kind == "same":
            ui.say(f"  unchanged  {change.path}{f' ({change.note})' if change.note else ''}")
            continue
        if change.kind == "missing":
            ui.warn(f"skipped    {change.path}: {change.note}")
            kept.append(change.path)
            continue
        if change.kind == "differs" and not force:
            also = (" or `dbops init --dockerfile dbops.Dockerfile` writes the job's beside it"
                    if change.path == DOCKERFILE else "")
            ui.warn(f"skipped    {change.path}: it exists and differs from what dbops would write; "
                    f"kept as it is (`dbops init --force` overwrites it{also})")
            kept.append(change.path)
            continue
        verb = {"create": "create", "add": "add to", "differs": "overwrite"}[change.kind]
        ui.say(f"  {verb:<9}  {change.path}")
        ui.say(_shown(change.shown))
        if change.kind == "add" and not yes and not ui.confirm(f"add these lines to {change.path}?"):
            ui.warn(f"skipped    {change.path}: nothing added (`dbops init --yes` adds without asking)")
            kept.append(change.path)
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(change.text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {reason(exc)}",
                             hint="run dbops init where you may write the project's files") from None
        written.append(change.path)
    return Outcome(tuple(written), tuple(kept))


def init(root: Path, alembic_ini: Path, *, yes: bool = False, force: bool = False, uses: str | None = None,
         dockerfile_path: str = DOCKERFILE, ui: UI = SILENT) -> Outcome:
    """``dbops init``: plan, show and write; a second run writes nothing."""
    if uses is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@[\w./-]+", uses):
        raise UsageError(f"--action {uses!r} is not an action reference",
                         hint="pass dbops' repository at a commit: --action owner/repo@<40-hex SHA>")
    changes = plan(root, alembic_ini, uses=uses, dockerfile_path=dockerfile_path)
    ui.heading(f"dbops init in {root}")
    outcome = apply(root, changes, yes=yes, force=force, ui=ui)
    if uses is None and not action_ref()[1] and any(c.path == WORKFLOW for c in changes if c.kind == "create"):
        ui.warn(f"{WORKFLOW}: `uses: {action_ref()[0]}` names no commit: pin it to dbops' repository at a full "
                "commit SHA (`dbops init --action owner/repo@SHA` writes it)")
    if outcome.written:
        ui.ok(f"wrote {', '.join(outcome.written)}; review them, then commit")
    elif not outcome.kept:
        ui.ok("nothing to write: this project has everything dbops init writes")
    return outcome


# -- one file each -------------------------------------------------------------------------------------------


def _pyproject(root: Path, candidates: list[str]) -> Change:
    path = root / "pyproject.toml"
    block = pyproject_block(candidates)
    if not path.exists():
        return Change("pyproject.toml", "create", block, block)
    old = _read(path)
    try:
        table = tomllib.loads(old).get("tool", {}).get("dbops")
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}", hint="fix pyproject.toml, then run dbops init again"
                         ) from None
    if table is not None:
        listed = table.get("url-variables", []) if isinstance(table, dict) else []
        missing = [n for n in candidates if n not in listed]
        note = (f"has [tool.dbops]; env.py may read {', '.join(missing)}: add it to url-variables if it holds "
                "the database URL" if missing else "has [tool.dbops]")
        return Change("pyproject.toml", "same", old, "", note=note)
    new = old + ("" if old.endswith("\n") or not old else "\n") + ("\n" if old.strip() else "") + block
    try:
        tomllib.loads(new)
    except tomllib.TOMLDecodeError as exc:  # a dotted `tool.dbops.x = ...` elsewhere: the user's to merge
        raise UsageError(f"{path}: a [tool.dbops] table cannot be added at its end ({exc})",
                         details=block, hint="add the block above to pyproject.toml by hand") from None
    return Change("pyproject.toml", "add", new, block)


def _gitignore(root: Path) -> Change:
    return _lines(root, ".gitignore", GITIGNORE_LINES, "# dbops: its state and local backups (dbops init)")


def _dockerignore(root: Path, relative: str, text: str) -> Change:
    """The template whole for a new file; for an existing one (the app's), the template's lines it lacks."""
    if not (root / relative).exists():
        return Change(relative, "create", text, text)
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return _lines(root, relative, lines, "# the dbops job image (dbops init)")


def _lines(root: Path, relative: str, wanted: Sequence[str], header: str) -> Change:
    """Lines a file of patterns lacks (``/x/`` and ``x`` count as one), added under ``header``."""
    path = root / relative
    old = _read(path) if path.exists() else ""
    present = {line.strip().strip("/") for line in old.splitlines()}
    lines = [line for line in wanted if line.strip().strip("/") not in present]
    if not lines:
        return Change(relative, "same", old, "")
    shown = header + "\n" + "\n".join(lines) + "\n"
    if not path.exists():
        return Change(relative, "create", shown, shown)
    return Change(relative, "add", old + ("" if old.endswith("\n") or not old else "\n") + shown, shown)


def _whole_file(root: Path, relative: str, text: str) -> Change:
    path = root / relative
    if not path.exists():
        return Change(relative, "create", text, text)
    return Change(relative, "same" if _read(path) == text else "differs", text, text)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {reason(exc)}", hint="fix or remove the file, then run dbops init"
                         ) from None


def _shown(text: str, most: int = 12) -> str:
    """The lines written, as a diff shows added lines: at most ``most`` of them, then how many more."""
    lines = text.rstrip("\n").splitlines()
    shown = [f"    + {line}".rstrip() for line in lines[:most]]
    if len(lines) > most:
        shown.append(f"    + … ({len(lines) - most} more lines)")
    return "\n".join(shown)


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return Path(path).resolve().as_posix()
