"""The pieces every report is made of: ``--format text|json|markdown``, JSON, tables, and showing a report.

Nothing here knows a step: each step renders its own report with these
(``inv lint``: :mod:`dbops.dryrun.report`; ``inv test-rollback``:
:mod:`dbops.roundtrip.report`; ``inv rehearse``: :mod:`dbops.rehearse.report`)
and shows it with :func:`show_report`.

- :func:`check_format` — ``fmt`` is one of :data:`FORMATS`, else a UsageError.
- :func:`to_json` — a report's dict as JSON (indented, ``default=str``); :func:`write_json` writes it,
  :func:`write_report_json` says why it could not (a read-only folder) instead of failing the run.
- :func:`markdown_table` — a GitHub-flavoured table; cells escaped (``|``, newlines) and code spans safe
  (:func:`md_cell`, :func:`md_code`).
- :func:`text_table` — a plain-text table, columns padded.
- :func:`show_report` — the GitHub annotations (under GitHub Actions), then the report, through the UI.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import UsageError
from .ui import UI, spelled
from .units import truncate

FORMATS = ("text", "json", "markdown")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", hint=f"use --format with one of: {', '.join(FORMATS)}")
    return fmt


def to_json(data: object) -> str:
    return spelled(json.dumps(data, indent=2, default=str))


def write_json(path: Path, data: object) -> Path:
    """``data`` as :func:`to_json` at ``path`` (its folder made), ending in a newline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(data) + "\n", encoding="utf-8")
    return path


def write_report_json(path: Path, data: object) -> str | None:
    """:func:`write_json`, for a report that is also printed: None when written, else one line saying why not.

    A folder that cannot be written (a read-only container's ``/app/backups``, a full disk, a path through a
    file) never fails the run: its outcome is what it printed and its exit code, the file is a copy.
    """
    try:
        write_json(path, data)
    except OSError as exc:
        return f"could not write the report to {path}: {exc.strerror or exc}; it is printed here only"
    return None


def formatted(report: object, fmt: str, *, text: Callable[[], str], markdown: Callable[[], str]) -> str:
    """A step's report as ``--format fmt``: its ``to_dict()`` as JSON, or the step's own text or markdown."""
    check_format(fmt)
    if fmt == "json":
        return to_json(report.to_dict())  # type: ignore[attr-defined]
    return markdown() if fmt == "markdown" else text()


def show_report(ui: UI, report: str, annotations: Callable[[], str], *, fmt: str, github_actions: bool) -> None:
    """Say ``report``; under GitHub Actions first the workflow commands ``annotations()`` returns.

    A JSON report is a document of its own: no annotations are mixed into it.
    """
    if github_actions and fmt != "json":
        commands = annotations()
        if commands:
            ui.say(commands)
    ui.say(report)


# -- markdown ------------------------------------------------------------------------------------------------

def md_cell(text: object) -> str:
    return " ".join(str("" if text is None else text).split()).replace("|", "\\|")


class Code(str):
    """A cell already made safe for markdown (a code span)."""


def md_code(text: object, width: int = 120) -> Code:
    flat = truncate(str(text or ""), width).replace("`", "'").replace("|", "\\|")
    return Code(f"`{flat}`" if flat else "")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) if isinstance(c, Code) else md_cell(c) for c in row) + " |"
              for row in rows]
    return "\n".join(lines)


# -- plain text ----------------------------------------------------------------------------------------------

def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
