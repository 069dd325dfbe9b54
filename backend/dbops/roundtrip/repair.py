"""Undoing what a wrong downgrade left behind, so the walk goes on without rebuilding the database.

When a downgrade leaves objects that were not there before the upgrade (an
index, an enum type, a table), the schema differs from *before* only by
those extra objects.  :func:`drop_leftovers` drops exactly them, on the
tester's own connection, and the stairway checks that the schema is then
**exactly** *before* again; only then does it upgrade again (a meaningful
"upgrade after the downgrade" on the right schema, and no rebuild, which costs
a ``CREATE DATABASE``).  Anything else (an object missing or changed, a
function, a drop that fails) returns False: the stairway rebuilds instead.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..postgres.schema_snapshot import SnapshotText

#: drop order: dependents first (IF EXISTS everywhere: dropping a table takes its indexes with it)
_ORDER = (
    "trigger", "policy", "constraint", "index", "column", "view", "materialized view", "table", "sequence",
    "domain", "composite type", "enum type", "range type", "extension", "schema",
)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _rows(snap: SnapshotText) -> dict[tuple, str]:
    return {(kind, schema, name, rel): json.dumps(attrs) for kind, schema, name, rel, attrs in json.loads(snap.text)}


def _drop(kind: str, schema: str, name: str, rel: str | None, attrs: str) -> str | None:
    obj = f"{_q(schema)}.{_q(name)}"
    table = f"{_q(schema)}.{_q(rel)}" if rel else None
    if kind == "trigger":
        return f"DROP TRIGGER IF EXISTS {_q(name)} ON {table}"
    if kind == "policy":
        return f"DROP POLICY IF EXISTS {_q(name)} ON {table}"
    if kind == "constraint":
        return f"ALTER TABLE IF EXISTS {table} DROP CONSTRAINT IF EXISTS {_q(name)}"
    if kind == "column":
        return f"ALTER TABLE IF EXISTS {table} DROP COLUMN IF EXISTS {_q(name[len(rel) + 1:])}"
    simple = {"index": "INDEX", "view": "VIEW", "materialized view": "MATERIALIZED VIEW", "table": "TABLE",
              "sequence": "SEQUENCE", "domain": "DOMAIN", "composite type": "TYPE", "enum type": "TYPE",
              "range type": "TYPE"}
    if kind in simple:
        return f"DROP {simple[kind]} IF EXISTS {obj}"
    if kind == "extension":
        return f"DROP EXTENSION IF EXISTS {_q(name)}"
    if kind == "schema":
        return f"DROP SCHEMA IF EXISTS {_q(name)}"
    return None  # functions and the rest: rebuild instead


def leftovers(before: SnapshotText, now: SnapshotText) -> list[str] | None:
    """The statements that drop what ``now`` has beyond ``before``; None when that is not the only difference."""
    old, new = _rows(before), _rows(now)
    if any(new.get(key) != attrs for key, attrs in old.items()):
        return None  # something of before is missing or changed
    extra = [key for key in new if key not in old]
    rank = {kind: i for i, kind in enumerate(_ORDER)}
    if any(key[0] not in rank for key in extra):
        return None

    def order(key):
        fk_first = 0 if key[0] == "constraint" and '"foreign key"' in new[key] else 1
        return rank[key[0]], fk_first, key[1], key[2]

    statements = [_drop(*key, new[key]) for key in sorted(extra, key=order)]
    return None if any(s is None for s in statements) else statements


def drop_leftovers(conn: Connection, before: SnapshotText, now: SnapshotText) -> bool:
    """Drop what ``now`` has beyond ``before`` in one transaction; False (nothing changed) when it cannot."""
    statements = leftovers(before, now)
    if not statements:
        return False
    try:
        with conn.begin():
            for statement in statements:
                conn.exec_driver_sql(statement)
    except sa.exc.SQLAlchemyError:
        return False
    return True
