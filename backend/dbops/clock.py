"""Time as the toolkit writes it: one stamp for names, ISO 8601 for records."""

from __future__ import annotations

import datetime as dt

#: UTC to the microsecond, for backup keys, report file names and database names:
#: sorts as text, and two in the same second never collide
STAMP = "%Y%m%dT%H%M%S.%fZ"


def now() -> dt.datetime:
    """The current time, in UTC."""
    return dt.datetime.now(dt.UTC)


def stamp(when: dt.datetime | None = None) -> str:
    """``20261201T213324.123456Z``: the time in names (keys, files, databases)."""
    return (when or now()).strftime(STAMP)


def iso(when: dt.datetime | None = None, *, precise: bool = False) -> str:
    """``2026-12-01T21:33:24+00:00``: the time in records (reports, history); ``precise`` keeps the
    microseconds (backup manifests, whose durations are computed from them)."""
    return (when or now()).isoformat(timespec="microseconds" if precise else "seconds")


def show(when: dt.datetime) -> str:
    """``2026-12-01 21:33:24 UTC``: the time for people (tables, messages)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
