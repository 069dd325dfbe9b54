"""The floors of the toolkit hold: import-linter's contracts (pyproject.toml) pass on the tree, and fail on a copy
of the package with an upward import, a reach into another step's insides, or a cycle — function-level imports
included, since that is where such imports used to hide."""

from __future__ import annotations

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
                          text=True, timeout=300)


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


@pytest.mark.parametrize("module,statement,broken,message", [
    ("units.py", "from dbops.deploy import pipeline", "Floors",
     "dbops.units is not allowed to import dbops.deploy"),
    ("postgres/__init__.py", "from dbops import backup", "Floors",
     "dbops.postgres is not allowed to import dbops.backup"),
    ("sync/loop.py", "from dbops.backup.restore import restore_backup", "dbops.backup through its package",
     "dbops.sync is not allowed to import dbops.backup.restore"),
    ("servers/__init__.py", "import dbops.lineage", "No cycle", "No cycles are allowed in dbops"),
], ids=["upward-from-a-leaf", "upward-from-a-service", "into-another-steps-insides", "a-cycle"])
def test_a_broken_floor_fails_the_check(package_copy: Path, module: str, statement: str, broken: str, message: str):
    if module == "servers/__init__.py":  # lineage imports servers? make the cycle certain: servers -> lineage -> servers
        add_lazy_import(package_copy / "dbops" / "lineage.py", "import dbops.servers")
    add_lazy_import(package_copy / "dbops" / module, statement)
    r = lint_imports(package_copy, package_copy)
    assert r.returncode == 1, r.stdout + r.stderr
    broken_lines = [line for line in r.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(broken in line for line in broken_lines), r.stdout
    assert message in r.stdout, r.stdout
