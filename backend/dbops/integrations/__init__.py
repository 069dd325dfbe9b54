"""dbops' health contract inside your app: a drop-in FastAPI router and Flask blueprint.

A plain health endpoint (HTTP 200, any body) is all ``dbops deploy`` needs:
it checks the schema itself, on its own connection.  An app that wants to
say where *its* database stands against the head *its* code expects (at
head, ahead, behind, unknown: the rule in :mod:`dbops.lineage`) mounts one
of these; docs/production.md ("Deploy orders and the health contract").

- :mod:`.contract`  the answer, framework-free: :class:`HealthContract`, :class:`Answer`
- :mod:`.fastapi`   ``health_router(...)``: an ``APIRouter`` (imports FastAPI, only this module)
- :mod:`.flask`     ``health_blueprint(...)``: a ``Blueprint`` (imports Flask, only this module)
"""

from __future__ import annotations

from .contract import Answer, HealthContract

__all__ = ["Answer", "HealthContract"]
