"""The edge: where every failure becomes one clear message and an exit code, secrets masked.

``dbops.tasks`` wraps every task with :func:`edge`; the container entrypoint
runs ``inv`` and so goes through the same place.  Nothing below this module
exits the process or prints tracebacks:

- a :class:`DbopsError` prints its own message (what failed, what was
  checked, how to fix it) and exits with its code;
- Ctrl-C prints ``interrupted`` and exits 130;
- anything else is a fault of the tool, never of the user's input: one line
  ``internal error: <type>: <first line>``, a hint to rerun with
  ``DBOPS_DEBUG=1``, exit 1.  The traceback is shown only under debug.

Every log record of every library (httpx, botocore, alembic, ...) passes
:class:`MaskingFilter` on its way out, also under ``DBOPS_DEBUG=1``: the
values of secret variables (passwords, tokens, the AWS keys, the webhook
URL's token) and anything that looks like one become ``***``.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable
from typing import TypeVar

from invoke.exceptions import Exit

from .errors import DbopsError, UsageError, exit_code
from .redact import environment_secrets, mask_text, reason
from .ui import spelled

F = TypeVar("F", bound=Callable[..., object])

_FORMAT = "%(levelname)s %(name)s: %(message)s"


def debug_enabled() -> bool:
    return os.environ.get("DBOPS_DEBUG", "") not in ("", "0")


class MaskingFilter(logging.Filter):
    """Masks secrets in a record's message, its traceback and its stack before any handler writes it."""

    def __init__(self, secrets: list[str] | None = None):
        super().__init__()
        self.secrets = environment_secrets() if secrets is None else secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a library's own bad format string: show it raw, masked
            message = f"{record.msg} {record.args}"
        record.msg, record.args = mask_text(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info, self.secrets)
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (tests swap it), through the masking filter."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging() -> None:
    """Root logging to stderr, every record masked; DEBUG under ``DBOPS_DEBUG=1``, else WARNING.

    Replaces the handler an earlier call installed, so the secrets are those of the environment now.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(MaskingFilter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug_enabled() else logging.WARNING)
    logging.captureWarnings(True)
    if not debug_enabled():
        warnings.filterwarnings("ignore", module="botocore")


def database_error_message(exc: BaseException) -> str:
    """A database error no step turned into a DbopsError: what the server said, and the statement it said it to."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "pgcode", None)
    statement = " ".join(str(getattr(exc, "statement", "") or "").split())[:120]
    secrets = environment_secrets()
    lines = [mask_text(f"error: the database refused a statement ({type(orig).__name__}"
                       + (f", SQLSTATE {code}" if code else "") + f"): {reason(exc)}", secrets)]
    if statement:
        lines.append(mask_text(f"    statement: {statement}", secrets))
    lines.append("hint: if the statement is in one of your migrations, fix that revision; "
                 "otherwise rerun with DBOPS_DEBUG=1 and report it")
    return "\n".join(lines)


def internal_error_message(exc: BaseException) -> str:
    """``internal error: <type>: <first line>``, secrets masked, and how to see more."""
    line = mask_text(f"internal error: {reason(exc, typed=True, unwrap=False)}")
    return line + "\nhint: this is a fault of dbops, not of your input; rerun with DBOPS_DEBUG=1 for the traceback"


def _is_database_error(exc: BaseException) -> bool:
    try:
        from sqlalchemy.exc import DBAPIError
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        return False
    return isinstance(exc, DBAPIError)


def edge(fn: F) -> F:
    """Run a task body; every exception becomes a message and an exit code, never a raw traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        root = logging.getLogger()
        level = root.level
        setup_logging()
        log = logging.getLogger("dbops")
        try:
            return _run(fn, log, args, kwargs)
        finally:  # an in-process caller (a test, a library) gets its logging back as it was
            root.setLevel(level)
            for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
                root.removeHandler(handler)

    return wrapper  # type: ignore[return-value]


def _run(fn, log: logging.Logger, args, kwargs):
    """The task body; every exception becomes invoke's Exit with a message and a code."""
    try:
        return fn(*args, **kwargs)
    except (Exit, SystemExit):
        raise
    except DbopsError as exc:
        if debug_enabled():
            log.exception("debug traceback")
        raise Exit(spelled(mask_text(exc.render())), code=exc.exit_code) from None
    except KeyboardInterrupt:
        raise Exit("interrupted", code=exit_code(KeyboardInterrupt())) from None
    except Exception as exc:  # the catch-all: a fault of the tool, one line
        if debug_enabled():
            log.exception("internal error")
        if _is_database_error(exc):
            raise Exit(database_error_message(exc), code=1) from None
        raise Exit(internal_error_message(exc), code=1) from None


def number(flag: str, raw: object, *, whole: bool = False, minimum: float | None = None,
           maximum: float | None = None, default: float | None = None):
    """A task's numeric flag parsed and range-checked at the edge; None (or ``default``) when not given.

    Raises :class:`UsageError` naming the flag: ``--keep must be a whole number, got 'x'``.
    """
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return default
    what = "a whole number" if whole else "a number"
    try:
        value = int(str(raw).strip()) if whole else float(str(raw).strip())
    except ValueError:
        raise UsageError(f"{flag} must be {what}, got {str(raw)!r}", hint=f"pass {flag} N") from None
    if not math.isfinite(value):
        raise UsageError(f"{flag} must be a finite number, got {str(raw)!r}", hint=f"pass {flag} N")
    if minimum is not None and value < minimum:
        raise UsageError(f"{flag} must be at least {minimum:g}, got {value:g}", hint=f"pass {flag} {minimum:g} or more")
    if maximum is not None and value > maximum:
        raise UsageError(f"{flag} must be at most {maximum:g}, got {value:g}", hint=f"pass {flag} {maximum:g} or less")
    return value
