"""The sync step: ``inv sync`` and ``inv status`` (the seed guide's sync_db.py).

Every mode works on whichever server the provider selection gives
(embedded, docker or a URL) and is silent unless handed a UI:

- :mod:`.status`: :func:`status` and its text :func:`render_status`
  (``inv status``), :func:`check` (``--check-only``);
- :mod:`.loop`: :func:`sync`, the loop (apply pending, offer a backup,
  generate, lint, apply, verify the round trip);
- :mod:`.recreate`: :func:`force_recreate` (``--force-recreate``).
"""

from __future__ import annotations

from .loop import SyncResult, sync
from .recreate import force_recreate
from .status import Status, check, render_status, status

__all__ = ["Status", "SyncResult", "check", "force_recreate", "render_status", "status", "sync"]
