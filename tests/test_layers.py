"""The floors of the toolkit hold: import-linter's contracts (pyproject.toml) pass on the tree, and fail on a copy
of the package with an upward import, a reach into another step's insides, or a cycle — function-level imports
included, since that is where such imports used to hide."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from project_copy import ROOT

PACKAGE = ROOT / "backend" / "dbops"


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the contracts of ``cwd/pyproject.toml``, ``dbops`` found first on ``pythonpath``."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([sys.executable, "-c", code, "--no-cache"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def test_the_floors_hold_on_the_tree():
    r = lint_imports(ROOT, ROOT / "backend")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the package and of pyproject.toml (the contracts) to break on purpose."""
    shutil.copytree(PACKAGE, tmp_path / "dbops", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_lazy_import(module: Path, statement: str) -> None:
    """``statement`` inside a new function at the end of ``module``: a function-level import."""
    module.write_text(module.read_text() + f"\n\ndef _added_by_the_test():\n    {statement}\n")


@pytest.mark.parametrize("additions,broken,message", [
    ([("units.py", "from dbops.deploy import pipeline")], "Floors",
     "dbops.units is not allowed to import dbops.deploy"),
    ([("postgres/__init__.py", "from dbops import backup")], "Floors",
     "dbops.postgres is not allowed to import dbops.backup"),
    ([("sync/loop.py", "from dbops.backup.restore import restore_backup")], "dbops.backup through its package",
     "dbops.sync is not allowed to import dbops.backup.restore"),
    ([("lineage.py", "import dbops.servers"), ("servers/__init__.py", "import dbops.lineage")], "No cycle",
     "No cycles are allowed in dbops."),
    ([("rehearse/model.py", "from dbops.rehearse import report")], "No cycle",
     "No cycles are allowed in dbops.rehearse."),
], ids=["upward-from-a-leaf", "upward-from-a-service", "into-another-steps-insides", "a-cycle-between-services",
        "a-cycle-inside-a-step"])
def test_a_broken_floor_fails_the_check(package_copy: Path, additions: list[tuple[str, str]], broken: str,
                                        message: str):
    for module, statement in additions:
        add_lazy_import(package_copy / "dbops" / module, statement)
    r = lint_imports(package_copy, package_copy)
    assert r.returncode == 1, r.stdout + r.stderr
    broken_lines = [line for line in r.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(broken in line for line in broken_lines), r.stdout
    assert message in r.stdout, r.stdout


def test_no_module_imports_a_private_name_of_another():
    """A name another module needs is public: ``from .x import _y`` (or ``x._y``) between toolkit modules is not."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {}  # local name -> toolkit module it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("dbops")):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports {alias.name}")
                    aliases[alias.asname or alias.name] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and node.value.id not in ("self", "cls")):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not found, "\n".join(found)


def test_every_function_level_import_of_the_toolkit_says_why():
    """Lazy imports hid the tangle; the few left (start-up time, an optional dependency) carry their reason."""
    unexplained = []
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.col_offset == 0:
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if not (getattr(node, "level", 0) or any(n.startswith("dbops") for n in names)):
                continue
            if "#" not in lines[node.lineno - 1] and not lines[node.lineno - 2].strip().startswith("#"):
                unexplained.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not unexplained, "function-level imports without a reason:\n" + "\n".join(unexplained)
