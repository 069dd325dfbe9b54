"""Renames, asked, never guessed: autogenerate sees a renamed column (or table) as a drop and an add.

:func:`candidates` finds, among autogenerate's diffs, a table that loses a
column and gains one of a compatible type (and a dropped table beside an
added one with mostly the same columns).  Each is a :class:`Rename`.  The
model may say so itself, for runs nobody can answer (CI, ``sync --auto``):

- a column: ``mapped_column(String(200), info={"renamed_from": "title"})``
  (``Column(..., info={"renamed_from": "title"})`` alike);
- a table: ``__table_args__ = {"info": {"renamed_from": "tags"}}`` (or, beside
  constraints, ``__table_args__ = (Index(...), {"info": {"renamed_from": "tags"}})``;
  ``Table(..., info={"renamed_from": "tags"})`` alike).

:func:`decide` keeps the declared ones and asks about the others through the
UI (``Did you rename posts.title to posts.headline?``); with nobody to ask, or
under ``auto``, it raises :class:`~dbops.errors.RenameUndecided` before
anything is written.  :class:`RenameRewriter` is a ``process_revision_directives``
hook for :meth:`dbops.migrations.Project.autogenerate`: it turns each decided
pair into ``op.alter_column(..., new_column_name=...)`` / ``op.rename_table``
in the upgrade and the reverse in the downgrade.  A declaration that matches
no drop + add (the rename was already applied) does nothing, so it may stay
in the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from alembic.autogenerate import renderers
from alembic.operations import ops
from sqlalchemy.dialects import postgresql

from ..errors import RenameUndecided
from ..ui import SILENT, UI

#: the key of a column's or a table's ``info`` that names what it was called before
RENAMED_FROM = "renamed_from"
#: undeclared tables are offered as a rename when at least this share of their column names match
TABLE_SIMILARITY = 0.5


@dataclass(frozen=True)
class Rename:
    """One drop + add that may be a rename: a column of ``table`` (``old`` → ``new``), or a table (``old`` →
    ``new``; ``table`` is the new name)."""

    kind: str  # "column" | "table"
    table: str
    old: str
    new: str
    schema: str | None = None
    #: the model says so (``info={"renamed_from": old}``)
    declared: bool = False

    @property
    def before(self) -> str:
        return f"{self.table}.{self.old}" if self.kind == "column" else self.old

    @property
    def after(self) -> str:
        return f"{self.table}.{self.new}" if self.kind == "column" else self.new

    @property
    def question(self) -> str:
        return f"Did you rename {self.before} to {self.after}?"

    @property
    def words(self) -> str:
        """For a revision message: ``rename posts.title to posts.headline``."""
        return f"rename {'table ' if self.kind == 'table' else ''}{self.before} to {self.after}"

    def declaration(self) -> str:
        """What to write in the model to answer the question there."""
        if self.kind == "column":
            return f'info={{"{RENAMED_FROM}": "{self.old}"}} on {self.after}\'s mapped_column(...)'
        return f'__table_args__ = {{"info": {{"{RENAMED_FROM}": "{self.old}"}}}} on the model of table {self.new}'

    def to_dict(self) -> dict:
        return {"kind": self.kind, "table": self.table, "old": self.old, "new": self.new, "schema": self.schema,
                "declared": self.declared}


@renderers.dispatch_for(ops.RenameTableOp)
def _render_rename_table(autogen_context, op: ops.RenameTableOp) -> str:
    """Alembic renders no ``rename_table`` of its own (autogenerate never writes one): ``op.rename_table(old,
    new)``, with its schema when there is one."""
    schema = f", schema={op.schema!r}" if op.schema else ""
    return f"op.rename_table({op.table_name!r}, {op.new_table_name!r}{schema})"


def _type_text(column: sa.Column) -> str:
    try:
        return column.type.compile(dialect=postgresql.dialect())
    except Exception:  # a type PostgreSQL's compiler cannot render: compare what it is instead
        return repr(column.type)


def _python_type(column: sa.Column) -> type | None:
    try:
        return column.type.python_type
    except NotImplementedError:
        return None


def compatible(old: sa.Column, new: sa.Column) -> bool:
    """The same type, or types holding the same kind of value (VARCHAR(100) and TEXT): the data can move."""
    if _type_text(old) == _type_text(new):
        return True
    kind = _python_type(old)
    return kind is not None and kind is _python_type(new)


def _flat(diffs: Iterable) -> list:
    return [d for item in diffs for d in (item if isinstance(item, list) else [item])]


def candidates(diffs: Sequence) -> list[Rename]:
    """Each (removed, added) pair of autogenerate's diffs that may be a rename: declared ones first."""
    flat = _flat(diffs)
    found: list[Rename] = []
    added = [d for d in flat if d[0] == "add_column"]
    removed = [d for d in flat if d[0] == "remove_column"]
    for _kind, schema, table, new in added:
        for _k, old_schema, old_table, old in removed:
            if (old_schema, old_table) != (schema, table):
                continue
            declared = new.info.get(RENAMED_FROM) == old.name
            if declared or compatible(old, new):
                found.append(Rename("column", table, old.name, new.name, schema, declared))
    new_tables = [d[1] for d in flat if d[0] == "add_table"]
    old_tables = [d[1] for d in flat if d[0] == "remove_table"]
    for new in new_tables:
        for old in old_tables:
            if old.schema != new.schema:
                continue
            declared = new.info.get(RENAMED_FROM) == old.name
            names_old, names_new = {c.name for c in old.columns}, {c.name for c in new.columns}
            share = len(names_old & names_new) / max(len(names_old | names_new), 1)
            if declared or share >= TABLE_SIMILARITY:
                found.append(Rename("table", new.name, old.name, new.name, new.schema, declared))
    return sorted(found, key=lambda r: not r.declared)


def decide(found: Sequence[Rename], *, auto: bool, ui: UI = SILENT) -> list[Rename]:
    """The renames to write: every declared one, and each undeclared one answered yes.

    Nothing undeclared is ever taken for a drop + add silently: under ``auto``
    (or with nobody to answer: an empty answer) it raises RenameUndecided.
    """
    chosen: list[Rename] = []
    used: set[tuple] = set()

    def free(r: Rename) -> bool:
        return not ({("old", r.kind, r.table if r.kind == "column" else "", r.old),
                     ("new", r.kind, r.table if r.kind == "column" else "", r.new)} & used)

    def take(r: Rename) -> None:
        chosen.append(r)
        used.update({("old", r.kind, r.table if r.kind == "column" else "", r.old),
                     ("new", r.kind, r.table if r.kind == "column" else "", r.new)})

    for r in found:
        if r.declared and free(r):
            take(r)
    open_ = [r for r in found if not r.declared and free(r)]
    if auto and open_:
        raise RenameUndecided(open_)
    for r in open_:
        if not free(r):
            continue
        answer = ui.ask(f"{r.question} (yes: a rename, the data stays; no: drop {r.before} and add {r.after}, "
                        "its data is lost) [yes/no]", default="").strip().lower()
        if answer in ("y", "yes"):
            take(r)
        elif answer not in ("n", "no"):
            raise RenameUndecided([r, *(o for o in open_ if o is not r and free(o))])
    return chosen


def remaining(diffs: Sequence, renames: Sequence[Rename]) -> list:
    """The diffs a rename does not account for (for the revision's message)."""
    gone = set()
    for r in renames:
        if r.kind == "column":
            gone |= {("add_column", r.schema, r.table, r.new), ("remove_column", r.schema, r.table, r.old)}
        else:
            gone |= {("add_table", r.schema, r.new), ("remove_table", r.schema, r.old)}

    def key(d) -> tuple:
        if d[0] in ("add_column", "remove_column"):
            return (d[0], d[1], d[2], d[3].name)
        if d[0] in ("add_table", "remove_table"):
            return (d[0], d[1].schema, d[1].name)
        return ()

    return [d for d in _flat(diffs) if key(d) not in gone]


class RenameRewriter:
    """A ``process_revision_directives`` hook: the decided drop + add pairs become renames, both ways."""

    def __init__(self, renames: Sequence[Rename]):
        self.renames = list(renames)

    def __call__(self, context, revision, directives) -> None:
        for script in directives:
            for up, down in zip(script.upgrade_ops_list, script.downgrade_ops_list, strict=True):
                for r in self.renames:
                    if r.kind == "column":
                        _column(up, r.schema, r.table, r.old, r.new)
                        _column(down, r.schema, r.table, r.new, r.old)
                    else:
                        _table(up, r.schema, r.old, r.new)
                        _table(down, r.schema, r.new, r.old)


def _column(container: ops.OpContainer, schema: str | None, table: str, old: str, new: str) -> None:
    """In ``table``'s ops: ``add new`` + ``drop old`` → ``alter_column(old, new_column_name=new)`` (+ its type and
    NOT NULL when they differ)."""
    for group in container.ops:
        if not isinstance(group, ops.ModifyTableOps) or (group.schema, group.table_name) != (schema, table):
            continue
        add = next((o for o in group.ops if isinstance(o, ops.AddColumnOp) and o.column.name == new), None)
        drop = next((o for o in group.ops if isinstance(o, ops.DropColumnOp) and o.column_name == old), None)
        if add is None or drop is None:
            continue
        was, now = drop.to_column(), add.column
        kw = {}
        if _type_text(was) != _type_text(now):
            kw["modify_type"] = now.type
        if bool(was.nullable) != bool(now.nullable):
            kw["modify_nullable"] = now.nullable
        alter = ops.AlterColumnOp(table, old, schema=schema, existing_type=was.type, existing_nullable=was.nullable,
                                  modify_name=new, **kw)
        at = min(group.ops.index(add), group.ops.index(drop))
        group.ops = [o for o in group.ops if o is not add and o is not drop]
        group.ops.insert(at, alter)


def _table(container: ops.OpContainer, schema: str | None, old: str, new: str) -> None:
    """``create_table(new)`` + ``drop_table(old)`` → ``rename_table(old, new)``, in the place of whichever came
    first; autogenerate's index ops on the old name (dropping its indexes) go just before it, those on the new
    name (creating the model's) just after it."""
    top = container.ops
    create = next((o for o in top if isinstance(o, ops.CreateTableOp) and (o.schema, o.table_name) == (schema, new)),
                  None)
    drop = next((o for o in top if isinstance(o, ops.DropTableOp) and (o.schema, o.table_name) == (schema, old)),
                None)
    if create is None or drop is None:
        return

    def on(name: str) -> list:
        return [g for g in top if isinstance(g, ops.ModifyTableOps) and (g.schema, g.table_name) == (schema, name)]

    before, after = on(old), on(new)
    moved = {id(o) for o in (create, drop, *before, *after)}
    anchor = min(top.index(create), top.index(drop))
    out = [o for o in top[:anchor] if id(o) not in moved]
    out += [*before, ops.RenameTableOp(old, new, schema=schema), *after]
    out += [o for o in top[anchor:] if id(o) not in moved]
    container.ops = out
