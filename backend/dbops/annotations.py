"""GitHub Actions annotations: workflow commands a step prints so the runner marks a line of a file.

``::error file={name},line={line},title={title}::{message}`` (also ``warning`` and ``notice``), one per
line, escaped as GitHub's toolkit does: ``%`` ``\\r`` ``\\n`` in the message as ``%25`` ``%0D``
``%0A``; in properties also ``:`` ``,`` as ``%3A`` ``%2C``.  ``file`` is relative to the repository
root (:func:`repo_path`).  The runner reads them from the step's output; a step prints them under
``GITHUB_ACTIONS=true`` only (``settings.github_actions``), before its report
(:func:`dbops.formats.show_report`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

LEVELS = ("error", "warning", "notice")


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


@dataclass(frozen=True)
class Annotation:
    level: str  # error | warning | notice
    file: str
    line: int | None
    title: str
    message: str

    def command(self) -> str:
        if self.level not in LEVELS:
            raise ValueError(f"annotation level {self.level!r}")
        props = [f"file={escape_property(self.file)}"]
        if self.line:
            props.append(f"line={int(self.line)}")
        if self.title:
            props.append(f"title={escape_property(self.title)}")
        return f"::{self.level} {','.join(props)}::{escape_data(self.message)}"


def annotations(items: Iterable[Annotation]) -> str:
    """The workflow commands, one a line ("" for none)."""
    return "\n".join(a.command() for a in items)


def repo_path(path: str | Path, root: str | Path | None) -> str:
    """``path`` relative to the repository root (what GitHub's ``file=`` wants), else as given."""
    path = Path(path).resolve()
    if root is not None:
        try:
            return path.relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def function_line(path: str | Path, name: str) -> int | None:
    """The line of ``def name`` in a Python file."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    return next((n.lineno for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name == name), None)
