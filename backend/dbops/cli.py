"""The edge: where toolkit errors become exit codes and clean messages.

``tasks.py`` wraps every task with :func:`edge`; the container entrypoint
runs ``inv`` and so goes through the same place.  Nothing below this module
exits the process or prints tracebacks for expected failures.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from invoke.exceptions import Exit

from .errors import DbopsError, exit_code

F = TypeVar("F", bound=Callable[..., object])


def setup_logging() -> None:
    level = logging.DEBUG if os.environ.get("DBOPS_DEBUG") else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def edge(fn: F) -> F:
    """Run a task body; map DbopsError (and Ctrl-C) to a message and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        setup_logging()
        try:
            return fn(*args, **kwargs)
        except DbopsError as exc:
            if os.environ.get("DBOPS_DEBUG"):
                logging.getLogger("dbops").exception("debug traceback")
            raise Exit(exc.render(), code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=exit_code(KeyboardInterrupt())) from None

    return wrapper  # type: ignore[return-value]
