"""docs/architecture.md is true: its tree lists every module of the toolkit and nothing that is not there, every
file it points to exists, and every room named in its data paths is a real module (or a name in one)."""

from __future__ import annotations

import importlib
import re

from project_copy import ROOT

DOC = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "backend" / "dbops"
ENTRY = re.compile(r"[a-z0-9_]+(\.py|/)")


def tree_entries() -> set[str]:
    """The paths of the doc's tree under ``backend/dbops/`` (``x.py``, ``pkg/``, ``pkg/y.py``)."""
    block = DOC.read_text(encoding="utf-8").split("```", 2)[1]
    lines = block.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "backend/dbops/")
    entries: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in lines[start + 1:]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        token = stripped.split()[0]
        if indent > 16 or not ENTRY.fullmatch(token):  # the next line of a description
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        entries.add("".join(name for _, name in stack) + token)
        if token.endswith("/"):
            stack.append((indent, token))
    return entries


def package_files() -> set[str]:
    return {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def test_the_tree_lists_every_module_and_nothing_else():
    entries = tree_entries()
    files = package_files()
    folders = {e for e in entries if e.endswith("/")}
    assert folders == {f.rsplit("/", 1)[0] + "/" for f in files if "/" in f}
    unlisted = {f for f in files - entries
                if f != "__init__.py" and not (f.endswith("/__init__.py") and f.removesuffix("__init__.py") in folders)}
    assert not unlisted, f"modules missing from docs/architecture.md: {sorted(unlisted)}"
    assert not {e for e in entries if e.endswith(".py")} - files, "docs/architecture.md lists modules that do not exist"


def test_every_file_the_doc_points_to_exists():
    text = DOC.read_text(encoding="utf-8")
    paths = set(re.findall(r"`((?:dbops|tests|docs|backend)/[\w/.-]+)`", text))
    assert paths, "the doc names no files"
    missing = [p for p in sorted(paths)
               if not (ROOT / p).exists() and not (ROOT / "backend" / p).exists()]
    assert not missing, f"docs/architecture.md points to files that do not exist: {missing}"


def resolves(name: str) -> bool:
    """``name`` (``backup.create``, ``postgres.lock``, ``deploy.pipeline``) is a module of dbops, or a name in one."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module("dbops." + ".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_room_in_the_data_paths_exists():
    text = DOC.read_text(encoding="utf-8")
    flows = text.split("## How each task's data flows", 1)[1]
    rooms = set()
    for row in flows.splitlines():
        if not row.startswith("| `inv"):
            continue
        path = row.split("|")[2]
        for step in path.split("→"):
            match = re.match(r"\s*([a-z_]+(?:\.[a-z_]+)*)", step)
            if match:
                rooms.add(match.group(1))
    assert len(rooms) > 20, rooms
    missing = [r for r in sorted(rooms) if not resolves(r)]
    assert not missing, f"rooms in the data paths of docs/architecture.md that do not exist: {missing}"
