"""tests/project_copy.py: a copy holds git's view of the tree (tracked files, staged new ones, edits), not strays."""

from __future__ import annotations

import subprocess
from pathlib import Path

from project_copy import copy_project


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, timeout=30)


def test_a_copy_has_tracked_and_staged_files_with_their_edits_and_no_stray_revision(tmp_path: Path):
    repo = tmp_path / "repo"
    versions = repo / "alembic" / "versions"
    versions.mkdir(parents=True)
    (repo / "backend" / "app").mkdir(parents=True)
    (repo / "alembic.ini").write_text("[alembic]\n")
    (versions / "a1.py").write_text("revision = 'a1'\n")
    (repo / "backend" / "app" / "models.py").write_text("# models\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "base")
    (versions / "a1.py").write_text("revision = 'a1'  # edited under test\n")  # the change under test
    (versions / "a2.py").write_text("revision = 'a2'\n")
    git(repo, "add", "alembic/versions/a2.py")                                 # a new file of the change
    (versions / "stray.py").write_text("revision = 'stray'\n")                 # written by another run
    (versions / "__pycache__").mkdir()
    (versions / "__pycache__" / "a1.cpython-311.pyc").write_bytes(b"\0")

    dest = copy_project(tmp_path / "copy", root=repo)

    copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert copied == ["alembic.ini", "alembic/versions/a1.py", "alembic/versions/a2.py", "backend/app/models.py"]
    assert (dest / "alembic" / "versions" / "a1.py").read_text() == "revision = 'a1'  # edited under test\n"
    assert (dest / "backups").is_dir()


def test_outside_a_git_checkout_the_folders_are_copied_as_they_are(tmp_path: Path):
    repo = tmp_path / "tarball"
    (repo / "alembic" / "versions").mkdir(parents=True)
    (repo / "backend" / "app").mkdir(parents=True)
    (repo / "alembic.ini").write_text("[alembic]\n")
    (repo / "alembic" / "versions" / "a1.py").write_text("revision = 'a1'\n")
    (repo / "backend" / "app" / "models.py").write_text("# models\n")

    dest = copy_project(tmp_path / "copy", root=repo)

    copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert copied == ["alembic.ini", "alembic/versions/a1.py", "backend/app/models.py"]
