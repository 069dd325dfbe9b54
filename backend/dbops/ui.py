"""The UI the core talks to: a small object, silent by default.

Core functions take ``ui: UI = SILENT`` and never print or read stdin
themselves; the front door (``tasks.py``) hands them a
:class:`dbops.console.Console`, which talks to a terminal.  The same call
under a test or a library caller says nothing and takes every default, the
way alembic's commands write only through ``Config.print_stdout``.
"""

from __future__ import annotations

import re

#: how the user runs dbops' tasks in this process: ``inv`` (this repository's tasks.py) or ``dbops`` (the installed
#: command sets it in :func:`dbops.tasks.main`). Every command dbops prints for a user is written ``inv <task>``
#: in the core and spelled this way on its way out (:func:`spelled`).
_program = ["inv"]
_INV = re.compile(r"(?<![\w./-])inv(?= (?:-|[a-z]))")


def set_program(name: str) -> None:
    """Spell the commands dbops prints with ``name`` (``dbops``) from now on, in this process."""
    _program[0] = name


def spelled(text: str) -> str:
    """``text`` with each ``inv <task>`` spelled as this process was run (``dbops <task>`` under ``dbops``)."""
    return text if _program[0] == "inv" else _INV.sub(_program[0], text)


class Progress:
    """A live status line. This one shows nothing."""

    def update(self, text: str, *, force: bool = False) -> None:
        """The latest state (a terminal rewrites one line; logs get a line now and then)."""

    def done(self, text: str | None = None) -> None:
        """Clear the live line; ``text`` stays as a line of its own."""


class UI:
    """Says nothing and answers every question with its default. :class:`dbops.console.Console` talks."""

    def say(self, text: str = "") -> None:
        """A line of output."""

    def ok(self, text: str) -> None:
        """Something went right (✔)."""

    def warn(self, text: str) -> None:
        """Something to look at (!)."""

    def fail(self, text: str) -> None:
        """Something went wrong (✘); the error itself still reaches the edge."""

    def heading(self, text: str) -> None:
        """The start of a section."""

    def confirm(self, question: str, *, default: bool = False) -> bool:
        """Yes or no; without anyone to ask, the default."""
        return default

    def ask(self, question: str, *, default: str = "") -> str:
        """A line of text; without anyone to ask, the default."""
        return default

    def progress(self, *, every: float = 5.0) -> Progress:
        """A live status line (``every``: seconds between plain lines where there is no terminal)."""
        return Progress()


#: the default UI of every core function
SILENT = UI()
