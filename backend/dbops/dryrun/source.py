"""Which line of a revision file produced a captured statement (a search of ``upgrade()``'s calls), and whether
``upgrade()`` does anything at all (:func:`first_operation`).

Captured statements (a rehearsal's) have no stack to look up: their line is
the ``op.*`` / ``.execute`` call in ``upgrade()`` whose string arguments share
the most names with the statement (the table counts most), else the ``def
upgrade`` line (:func:`source_line_for`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ..squawk import statement_table

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ROOTS_SKIPPED = {"sa", "sqlalchemy", "postgresql", "mysql", "text"}


def _root_name(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Call)):
        node = node.value if isinstance(node, ast.Attribute) else node.func
    return node.id if isinstance(node, ast.Name) else None


def _upgrade_def(path: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The revision file's ``def upgrade`` (None: unreadable, or no such function at the top level)."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    return next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name == "upgrade"), None)


def first_operation(path: str) -> int | None:
    """The line of the first statement of ``upgrade()`` that does something; None when it does nothing.

    "Nothing" is a body of ``pass``, ``...``, a docstring (any bare string) and
    a bare ``return``: what ``alembic revision`` writes for an empty or merge
    revision.  Anything else (a call, an assignment, an ``if``, a loop) is an
    operation, so a revision whose capture holds no statement of its own is
    not taken for an empty one.  None too when the file cannot be read or has
    no top-level ``def upgrade`` (nothing to say then).
    """
    upgrade = _upgrade_def(path)
    if upgrade is None:
        return None
    for node in upgrade.body:
        if isinstance(node, ast.Pass) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            continue
        if isinstance(node, ast.Return) and (node.value is None or isinstance(node.value, ast.Constant)):
            continue
        return node.lineno
    return None


def _upgrade_calls(path: str) -> tuple[int | None, list[tuple[int, set[str]]]]:
    upgrade = _upgrade_def(path)
    if upgrade is None:
        return None, []
    calls = []
    for node in ast.walk(upgrade):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and _root_name(node.func) not in _ROOTS_SKIPPED:
            words = {w.lower() for c in ast.walk(node) if isinstance(c, ast.Constant) and isinstance(c.value, str)
                     for w in _WORD.findall(c.value)}
            calls.append((node.lineno, words))
    return upgrade.lineno, sorted(calls)


def source_line_for(path: str, statement: str) -> int | None:
    """The line in ``upgrade()`` of the call that most likely produced ``statement`` (a search, see the module)."""
    def_line, calls = _upgrade_calls(path)
    words = {w.lower() for w in _WORD.findall(statement)}
    table = statement_table(statement)
    best, best_score = def_line, 0
    for line, strings in calls:
        score = len(words & strings) + (10 if table and table in strings else 0)
        if score > best_score:
            best, best_score = line, score
    return best
