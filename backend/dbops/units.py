"""Units for people: sizes, rates, durations and one-line excerpts, each written once.

Pure functions over numbers and strings; every report (backups, the round
trip, the rehearsal, the deploy) formats through these.
"""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB


def human_size(n: int) -> str:
    """``512 B``, ``1.5 MiB``: a size for people."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def rate(nbytes: int, seconds: float) -> str:
    """``12.3 MiB at 45.6 MiB/s``: the progress line of a backup or a restore."""
    return f"{nbytes / MiB:,.1f} MiB at {nbytes / MiB / max(seconds, 1e-6):,.1f} MiB/s"


def duration(seconds: float | None) -> str:
    """``850 ms`` under a second, ``2.31 s`` above; ``-`` when not measured."""
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def millis(value: float | None) -> str:
    """Milliseconds as a bare number (``12``) for a table column; ``-`` when not measured."""
    return "-" if value is None else f"{value:.0f}"


def truncate(text: str | None, width: int) -> str:
    """``text`` on one line (whitespace runs made one space), cut to ``width`` characters with ``…``."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
