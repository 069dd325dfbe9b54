"""``inv monitor`` and the deploy's monitoring window: the app's health URL and the database, watched.

- :mod:`.window`  the window's length (one place), the interval, :func:`watch`, :func:`monitor_only`
- :mod:`.sample`  one sample: the health URL and the database
"""

from __future__ import annotations

from .sample import Sample
from .window import MonitorResult, monitor_only, watch, window_seconds

__all__ = ["MonitorResult", "Sample", "monitor_only", "watch", "window_seconds"]
