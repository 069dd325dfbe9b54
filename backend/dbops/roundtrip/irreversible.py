"""Finding downgrades that do nothing, and the marker that says it is on purpose.

A revision is *irreversible* when its ``downgrade()`` is missing, empty
(only ``pass``, ``...``, a docstring or comments) or only raises
``NotImplementedError``.  That fails the check unless the file says it is on
purpose, in either of two ways::

    irreversible = True          # a module-level variable, or
    # dbops: irreversible        # this comment anywhere in the file

A revision whose ``upgrade()`` is empty too (a merge point) has nothing to
undo and is not irreversible.  A marked revision is upgraded but never
downgraded by the stairway.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from alembic.script import Script

MARKER = re.compile(r"^\s*#\s*dbops:\s*irreversible\b", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Irreversible:
    revision: str
    #: why: "no downgrade() function", "downgrade() is empty", "downgrade() raises NotImplementedError"
    reason: str
    #: the file marks it as irreversible on purpose
    marked: bool
    path: str


def _is_noop(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.Pass):
        return True
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and (
        stmt.value.value is Ellipsis or isinstance(stmt.value.value, str)
    )


def _raises_not_implemented(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.Raise) or stmt.exc is None:
        return False
    exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def _marked(tree: ast.Module, source: str) -> bool:
    if MARKER.search(source):
        return True
    for node in tree.body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        value = getattr(node, "value", None)
        if (any(isinstance(t, ast.Name) and t.id == "irreversible" for t in targets)
                and isinstance(value, ast.Constant) and value.value is True):
            return True
    return False


def irreversible_downgrade(script: Script) -> Irreversible | None:
    """None when ``downgrade()`` does something; else why it is irreversible and whether it is marked."""
    path = Path(script.path)
    stat = path.stat()
    return _check(script.revision, str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4096)
def _check(revision: str, name: str, _mtime: int, _size: int) -> Irreversible | None:
    """:func:`check` of one version of one file (cached: the file is parsed once per change)."""
    path = Path(name)
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "downgrade"]
    ups = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"]
    if ups and not [s for s in ups[-1].body if not _is_noop(s)]:
        return None  # nothing to undo: merge points and other empty revisions
    if not funcs:
        reason = "no downgrade() function"
    else:
        body = [s for s in funcs[-1].body if not _is_noop(s)]
        if not body:
            reason = "downgrade() is empty"
        elif len(body) == 1 and _raises_not_implemented(body[0]):
            reason = "downgrade() raises NotImplementedError"
        else:
            return None
    return Irreversible(revision, reason, _marked(tree, source), str(path))


#: Operations that change data, not the schema (a backfill or a repair is made of these)
_DATA_OPERATIONS = frozenset({
    "execute", "bulk_insert", "get_bind", "get_context", "inline_literal", "f", "run_async", "invoke",
    "implementation_for", "register_operation", "create_module_class_proxy", "batch_alter_table", "context", "impl",
    "migration_context",
})


def _schema_operation_names() -> frozenset[str]:
    from alembic.operations import BatchOperations, Operations

    names = {n for cls in (Operations, BatchOperations) for n in dir(cls) if not n.startswith("_")}
    return frozenset(names - _DATA_OPERATIONS)


def schema_operations(script: Script) -> list[str]:
    """The schema operations ``upgrade()`` calls (``op.add_column``, ``batch_op.alter_column``, ...), in order.

    Found in the source (any ``<name>.<operation>(...)`` call whose operation is
    one of Alembic's schema operations); ``op.execute`` and ``op.bulk_insert``
    change data and do not count.
    """
    source = Path(script.path).read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(script.path))
    ups = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "upgrade"]
    if not ups:
        return []
    known = _schema_operation_names()
    found = []
    for node in ast.walk(ups[-1]):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in known:
            owner = node.func.value
            if isinstance(owner, ast.Name):
                found.append(f"{owner.id}.{node.func.attr}")
    return list(dict.fromkeys(found))
