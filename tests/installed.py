"""dbops as a user gets it: the wheel built from this repository, installed into virtual environments of their own.

Shared by tests/test_packaging.py and tests/test_user_install.py.  A module of its own (not conftest.py), imported
by name like ``fingerprint``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    """``argv`` in ``cwd`` with exactly ``env``; never raises on a non-zero exit."""
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def build_wheel(work: Path) -> Path:
    """The wheel, built (`pip wheel`, an isolated build) in ``work`` from a copy of what the repository tracks for
    it: a build in the checkout itself would pick up a stale build/ folder."""
    src, out = work / "src", work / "wheel"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "backend" / "dbops", src / "backend" / "dbops",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    done = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, src], cwd=src,
               env=dict(os.environ))
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob("dbops-*.whl")
    return built


def make_venv(where: Path, *installs: list[str | Path], cwd: Path) -> Path:
    """A new virtual environment at ``where`` (no system site-packages), then one ``pip install`` per entry of
    ``installs``, in order, from ``cwd`` (pip's own configuration and cache, as on the user's machine)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    done = run([sys.executable, "-m", "venv", where], cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    for args in installs:
        done = run([where / "bin" / "python", "-m", "pip", "install", "-q", *args], cwd=cwd, env=env)
        assert done.returncode == 0, f"pip install {args} in {where}:\n{done.stdout}{done.stderr}"
    return where
