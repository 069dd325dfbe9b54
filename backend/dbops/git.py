"""git, through its command line: the repository a project lives in, refs, the commit that added a file, archives.

``inv compat`` reads the code of another commit (the one serving) without
touching the work tree: :func:`archive` unpacks ``git archive REF`` into a
directory of the caller's choosing.  Every call is an argv list with a
timeout and a checked exit; a failure is a :class:`~dbops.errors.ToolFailed`
with the tail of git's stderr, bad input a :class:`~dbops.errors.UsageError`.
"""

from __future__ import annotations

import subprocess
import tarfile
import threading
from pathlib import Path

from .errors import ToolFailed, UsageError

#: upper bound of one git call (an archive of a large tree included)
TIMEOUT_S = 120


def _run(repo: Path, *args: str, check: bool = True, binary: bool = False) -> subprocess.CompletedProcess:
    argv = ["git", "-C", str(repo), *args]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=TIMEOUT_S, text=not binary, check=False)
    except FileNotFoundError:
        raise UsageError("git is not installed (needed to read the code of another commit)",
                         hint="install git, or run where the project's git history is") from None
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed(f"git {args[0]}", None, f"no answer within {TIMEOUT_S}s") from exc
    if check and done.returncode != 0:
        err = done.stderr.decode(errors="replace") if binary else done.stderr
        raise ToolFailed(f"git {args[0]}", done.returncode, "\n".join(err.strip().splitlines()[-5:]))
    return done


def toplevel(path: Path) -> Path:
    """The root of the work tree ``path`` is in; UsageError when it is not in a git repository."""
    path = Path(path)
    done = _run(path if path.is_dir() else path.parent, "rev-parse", "--show-toplevel", check=False)
    if done.returncode != 0:
        raise UsageError(
            f"{path} is not in a git repository, so the code of another commit cannot be read",
            details=f"checked: git rev-parse --show-toplevel in {path}: {done.stderr.strip().splitlines()[-1:]}",
            hint="run where the project's git history is (a clone, not an image without .git)",
        )
    return Path(done.stdout.strip()).resolve()


def resolve(repo: Path, ref: str) -> str:
    """The full commit id ``ref`` names (a commit, tag or branch); UsageError when there is none."""
    if not ref or ref.startswith("-"):
        raise UsageError(f"{ref!r} is not a git ref", hint="pass a commit, tag or branch (git log --oneline)")
    done = _run(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise UsageError(
            f"unknown git ref {ref!r}: no commit of that name in {repo}",
            details=f"checked: git rev-parse --verify {ref}^{{commit}}",
            hint="pass a commit id, tag or branch that exists there (`git log --oneline` lists commits)",
        )
    return done.stdout.strip()


def commit_adding(repo: Path, paths: list[Path]) -> str | None:
    """The newest commit that added one of ``paths`` (``git log --diff-filter=A``); None when none did."""
    rels = [str(Path(p).resolve().relative_to(repo)) for p in paths]
    done = _run(repo, "log", "-1", "--diff-filter=A", "--format=%H", "--", *rels)
    return done.stdout.strip() or None


def describe(repo: Path, commit: str) -> str:
    """``abc1234 subject`` for messages."""
    return _run(repo, "log", "-1", "--format=%h %s", commit).stdout.strip()


def archive(repo: Path, commit: str, dest: Path, subdir: str = "") -> Path:
    """Unpack the tree of ``commit`` (only ``subdir`` when given) into ``dest``; returns ``dest / subdir``.

    ``git archive`` is streamed into the extraction (a large tree never sits in
    memory) and killed when it runs past :data:`TIMEOUT_S`.
    """
    argv = ["git", "-C", str(repo), "archive", "--format=tar", commit, *(["--", subdir] if subdir else [])]
    dest.mkdir(parents=True, exist_ok=True)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        watchdog = threading.Timer(TIMEOUT_S, proc.kill)
        watchdog.start()
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                tar.extractall(dest, filter="data")
            err = proc.stderr.read().decode(errors="replace")
            code = proc.wait()
        except tarfile.TarError as exc:
            proc.kill()
            code, err = proc.wait(), f"{proc.stderr.read().decode(errors='replace')}\n{exc}"
        finally:
            timed_out = not watchdog.is_alive() and proc.returncode not in (0, None)
            watchdog.cancel()
    if code != 0:
        tail = "\n".join(err.strip().splitlines()[-5:])
        raise ToolFailed("git archive", None if timed_out else code, tail or f"no answer within {TIMEOUT_S}s")
    return dest / subdir if subdir else dest


def changed_since(repo: Path, commit: str, folders: list[Path]) -> set[Path]:
    """The files under ``folders`` that differ from ``commit``'s (added, changed, renamed) or are new and untracked.

    Compares ``commit``'s tree with the work tree (``git diff --name-only``,
    renames as an add) and adds the untracked files git does not ignore
    (``git ls-files --others --exclude-standard``): a revision file written
    but not yet committed is new too.  Paths come back absolute.
    """
    rels = [str(Path(f).resolve().relative_to(repo)) for f in folders]
    diff = _run(repo, "diff", "--name-only", "--no-renames", "--diff-filter=AMRT", commit, "--", *rels)
    untracked = _run(repo, "ls-files", "--others", "--exclude-standard", "--full-name", "--", *rels)
    names = [*diff.stdout.splitlines(), *untracked.stdout.splitlines()]
    return {(repo / name).resolve() for name in names if name.strip()}
