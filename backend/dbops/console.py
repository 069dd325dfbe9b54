"""The terminal: the UI for people (plain lines, colour, prompts, a live progress line).

Only the front door (``tasks.py``) and the edge use this module; the core
talks through the :class:`dbops.ui.UI` it is handed.  Colour and
carriage-return progress only on a terminal; in CI and container logs every
line is plain text.  Secrets never reach this module: callers pass masked
URLs (``dbops.redact.mask_url``).
"""

from __future__ import annotations

import os
import sys
import time

from .ui import UI, Progress, spelled


def is_tty(stream=None) -> bool:
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty() and os.environ.get("TERM") != "dumb"


def _color(code: str, text: str) -> str:
    if is_tty() and not os.environ.get("NO_COLOR"):
        return f"\033[{code}m{text}\033[0m"
    return text



class TerminalProgress(Progress):
    """A live status line on a terminal; elsewhere (a log) a plain line every ``every`` seconds, the first one
    ``every`` seconds after the start: a step that ends sooner says only its closing line (:meth:`done`), not
    the same state twice."""

    def __init__(self, *, every: float = 5.0, stream=None):
        self.stream = stream or sys.stdout
        self.tty = is_tty(self.stream)
        self.every = every
        self._last = time.monotonic()
        self._width = 0

    def update(self, text: str, *, force: bool = False) -> None:
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
            self._width = len(text)
            return
        now = time.monotonic()
        if force or now - self._last >= self.every:
            self._last = now
            self.stream.write(text + "\n")
            self.stream.flush()

    def done(self, text: str | None = None) -> None:
        if self.tty:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        if text:
            self.stream.write(text + "\n")
        self.stream.flush()


class Console(UI):
    """The UI on stdout/stdin. ``progress=False`` (``--quiet``) keeps the live progress line off."""

    def __init__(self, *, progress: bool = True):
        self.show_progress = progress

    def say(self, text: str = "") -> None:
        print(spelled(text), flush=True)

    def ok(self, text: str) -> None:
        self.say(_color("32", "✔ ") + text)

    def warn(self, text: str) -> None:
        self.say(_color("33", "! ") + text)

    def fail(self, text: str) -> None:
        self.say(_color("31", "✘ ") + text)

    def heading(self, text: str) -> None:
        self.say(_color("1", text))

    def confirm(self, question: str, *, default: bool = False) -> bool:
        """Ask yes/no on the terminal. Without a terminal the default is taken, and said."""
        suffix, question = " [Y/n] " if default else " [y/N] ", spelled(question)
        if not sys.stdin or not sys.stdin.isatty():
            self.say(f"{question}{suffix}(no terminal: {'yes' if default else 'no'})")
            return default
        answer = input(question + suffix).strip().lower()
        if not answer:
            return default
        return answer in ("y", "yes")

    def ask(self, question: str, *, default: str = "") -> str:
        """Ask for a line of text; the default is taken without a terminal."""
        if not sys.stdin or not sys.stdin.isatty():
            return default
        shown = f" [{default}]" if default else ""
        answer = input(f"{question}{shown}: ").strip()
        return answer or default

    def progress(self, *, every: float = 5.0) -> Progress:
        return TerminalProgress(every=every) if self.show_progress else Progress()
