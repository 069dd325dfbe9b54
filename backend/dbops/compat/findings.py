"""What the old code meets on the new schema: dropped or renamed tables and columns, narrowed types, NOT NULL.

Every finding names the model and the column, the revision that makes the
change, and the expand/contract sequence that ships the same change without
breaking the code still serving.  Only changes the pending revisions make are
findings: a difference already there before them is the serving code's
present, not this deploy's doing.
"""

from __future__ import annotations

import re

from ..findings import COMPAT, ERROR, SAFER, Finding
from ..postgres.schema_snapshot import Snapshot
from .old_code import Column, OldCode, Table
from .schema import SchemaSteps

DROPPED, NARROWED, NOT_NULL = "dropped or renamed", "type narrowed", "NOT NULL without default"


# -- types ----------------------------------------------------------------------

_ALIASES = {
    "character varying": "varchar", "char": "character", "bpchar": "character", "int": "integer",
    "int4": "integer", "int8": "bigint", "int2": "smallint", "decimal": "numeric", "float8": "double precision",
    "float": "double precision", "float4": "real", "bool": "boolean", "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp", "time with time zone": "timetz",
    "time without time zone": "time", "datetime": "timestamp",
}
_STRINGS = {"text", "varchar", "character", "citext"}
_INTEGERS = {"smallint": 2, "integer": 4, "bigint": 8}
_INT_DIGITS = {"smallint": 5, "integer": 10, "bigint": 19}
_FLOATS = {"real": 4, "double precision": 8}
_TYPE = re.compile(r"^(?P<base>[a-z_ ][a-z0-9_ .\"]*?)\s*(?:\((?P<args>[^)]*)\))?\s*(?P<array>(\[\])*)$")


def normalize(type_: str) -> str:
    """A type as the catalog snapshot writes it: ``VARCHAR(200)`` → ``varchar(200)``,
    ``NUMERIC(10, 2)`` → ``numeric(10,2)``."""
    text = " ".join(type_.strip().lower().split())
    m = _TYPE.match(text)
    if not m:
        return text
    base = _ALIASES.get(m["base"].strip(), m["base"].strip())
    if base == "timestamp" and "with time zone" in text:
        base = "timestamptz"
    args = f"({m['args'].replace(' ', '')})" if m["args"] else ""
    return f"{base}{args}{m['array'] or ''}"


def _parse(type_: str) -> tuple[str, tuple[int, ...], str]:
    m = _TYPE.match(normalize(type_))
    if not m:
        return type_, (), ""
    try:
        args = tuple(int(a) for a in m["args"].split(",")) if m["args"] else ()
    except ValueError:
        args = ()
    return m["base"].strip(), args, m["array"] or ""


def narrowing(old: str, new: str) -> str | None:
    """Why values the old code writes as ``old`` may not fit ``new`` (None: the same type, or a wider one)."""
    if normalize(old) == normalize(new):
        return None
    (ob, oa, oarr), (nb, na, narr) = _parse(old), _parse(new)
    if oarr != narr:
        return "a different type"
    if ob in _STRINGS and nb in _STRINGS:
        olen = oa[0] if oa and ob != "text" else float("inf")
        nlen = na[0] if na and nb != "text" else (1 if nb == "character" else float("inf"))
        if nlen < olen:
            return "shorter" if olen != float("inf") else "a length limit"
        return None
    if ob in _INTEGERS and nb in _INTEGERS:
        return "a smaller integer" if _INTEGERS[nb] < _INTEGERS[ob] else None
    if ob in _INTEGERS and nb == "numeric":
        return "fewer digits" if na and na[0] - (na[1] if len(na) > 1 else 0) < _INT_DIGITS[ob] else None
    if ob in _INTEGERS and nb in _FLOATS:
        return None
    if ob == "numeric" and nb == "numeric":
        if not oa:
            return "a precision limit" if na else None
        if not na:
            return None
        op, os_ = oa[0], oa[1] if len(oa) > 1 else 0
        np_, ns = na[0], na[1] if len(na) > 1 else 0
        if ns < os_:
            return "fewer decimal places"
        return "fewer digits" if np_ - ns < op - os_ else None
    if ob in _FLOATS and nb in _FLOATS:
        return "less precision" if _FLOATS[nb] < _FLOATS[ob] else None
    if ob in ("numeric", *_FLOATS) and nb in _INTEGERS:
        return "an integer (fractions are lost)"
    return "a different type"


# -- the findings ------------------------------------------------------------------

def _has_table(snap: Snapshot, table: str) -> bool:
    return f"table {table}" in snap.objects


def _columns_of(snap: Snapshot, table: str) -> dict[str, dict]:
    prefix = f"column {table}."
    return {k[len(prefix):]: v for k, v in snap.objects.items() if k.startswith(prefix)}


def _tables(snap: Snapshot) -> list[str]:
    return [k[len("table "):] for k in snap.names("table")]


def _fills_itself(attrs: dict) -> bool:
    return bool(attrs.get("default") or attrs.get("identity") or attrs.get("generated"))


def findings_at(old: OldCode, before: Snapshot, after: Snapshot) -> list[Finding]:
    """The findings of the old code's tables on ``after`` (``before``: the schema it runs on today)."""
    found: list[Finding] = []
    for table in old.tables:
        key = table.key
        if f"view {key}" in after.objects and not _has_table(after, key):
            continue  # replaced by a view of the same name (an expand/contract step): its columns are the view's
        if not _has_table(after, key):
            if _has_table(before, key):
                found.append(_dropped_table(table, before, after))
            continue
        now = _columns_of(after, key)
        was = _columns_of(before, key)
        renamed: set[str] = set()  # new columns named as a dropped one's likely new name: one finding, not two
        for col in table.columns.values():
            if col.name not in now:
                if col.name in was or not was:
                    finding, targets = _dropped_column(table, col, was, now)
                    found.append(finding)
                    renamed.update(targets)
                continue
            old_type = was[col.name]["type"] if col.name in was else normalize(col.type)
            why = narrowing(old_type, now[col.name]["type"])
            if why:
                found.append(_narrowed(table, col, old_type, now[col.name]["type"], why))
            attrs = now[col.name]
            if (col.nullable and not col.default and not attrs.get("nullable", True) and not _fills_itself(attrs)
                    and was.get(col.name, {}).get("nullable", True)):
                found.append(_set_not_null(table, col))
        for name, attrs in now.items():
            if name in table.columns or name in was or name in renamed:
                continue
            if not attrs.get("nullable", True) and not _fills_itself(attrs):
                found.append(_new_not_null(table, name, attrs))
    return found


def compare(old: OldCode, steps: SchemaSteps) -> list[Finding]:
    """The findings on the final schema, each with the first pending revision where it appears."""
    final = findings_at(old, steps.before, steps.after)
    first: dict[tuple, tuple[str | None, str | None]] = {}
    for step in steps.pending:
        for f in findings_at(old, steps.before, step.snapshot):
            first.setdefault(f.key, (step.revision, step.file))
    for f in final:
        f.revision, f.file = first.get(f.key, (None, None))
    return final


# -- each kind: its message and its expand/contract sequence ----------------------

def _finding(kind: str, model: str, table: str, column: str | None, message: str, safer: str) -> Finding:
    return Finding(COMPAT, ERROR, kind, message, safer, table=table, column=column, model=model)


def _dropped_table(table: Table, before: Snapshot, after: Snapshot) -> Finding:
    cols = set(_columns_of(before, table.key))
    added = [t for t in _tables(after) if not _has_table(before, t) and cols <= set(_columns_of(after, t))]
    also = f"; the new schema has table {', '.join(added)} with the same columns" if added else ""
    return _finding(
        DROPPED, table.model, table.key, None,
        f"table {table.key}, which the running code maps ({table.model}), is dropped or renamed{also}",
        SAFER["compat-drop-table"].format(model=table.model, table=table.key),
    )


def _dropped_column(table: Table, col: Column, was: dict, now: dict) -> tuple[Finding, list[str]]:
    old_type = was.get(col.name, {}).get("type") or normalize(col.type)
    same = [n for n, a in now.items() if n not in was and n not in table.columns and a.get("type") == old_type]
    also = f"; the new schema has {', '.join(f'{table.key}.{n}' for n in same)} of the same type" if same else ""
    return _finding(
        DROPPED, table.who(col), table.key, col.name,
        f"{table.who(col)}: column {table.key}.{col.name}, which the running code maps, is dropped or "
        f"renamed{also}; its SELECTs and INSERTs naming it fail",
        SAFER["compat-drop-column"].format(model=table.who(col), table=table.key, column=col.name),
    ), same


def _narrowed(table: Table, col: Column, old_type: str, new_type: str, why: str) -> Finding:
    return _finding(
        NARROWED, table.who(col), table.key, col.name,
        f"{table.who(col)}: column {table.key}.{col.name} changes from {old_type} to {new_type} ({why}): "
        "values the running code writes may no longer fit",
        SAFER["compat-narrowed"].format(type=new_type, table=table.key, column=col.name),
    )


def _set_not_null(table: Table, col: Column) -> Finding:
    return _finding(
        NOT_NULL, table.who(col), table.key, col.name,
        f"{table.who(col)}: column {table.key}.{col.name} becomes NOT NULL without a default, but the running "
        "code maps it as nullable and may insert NULL",
        SAFER["compat-set-not-null"].format(model=table.who(col), column=col.name),
    )


def _new_not_null(table: Table, name: str, attrs: dict) -> Finding:
    return _finding(
        NOT_NULL, f"{table.model}", table.key, name,
        f"{table.model}: new column {table.key}.{name} ({attrs.get('type')}) is NOT NULL without a default, and "
        f"the running code does not map it: its INSERTs into {table.key} fail",
        SAFER["compat-new-not-null"].format(table=table.key, column=name),
    )
