"""What dbops compares between the models and the database: autogenerate, plus what it leaves out.

One comparison, used by every caller: ``inv sync`` (the revision it writes),
``inv status`` and ``sync --check-only`` (the drift they report) and
``inv test-rollback``'s models check.  Each of them runs autogenerate through
:func:`run_autogenerate`, which, on the migration context the project's own
env.py configured, turns on:

- PostgreSQL enum types (this module's ``dbops.compare`` plugin): a type the
  models name and the database lacks is created before the column that uses
  it (and dropped after it in the downgrade); new labels are
  ``ALTER TYPE … ADD VALUE`` in an autocommit block (no table rewrite);
  removed or renamed labels are the written sequence (type renamed aside, the
  new type, ``ALTER COLUMN … TYPE … USING``, the old type dropped), marked
  for review in the file; a type only dropped columns used is dropped after them;
- named CHECK constraints added, dropped and changed (both expressions as the
  server writes them);
- server defaults (``compare_server_default``, unless env.py passes its own
  callable; equal texts are equal, so a ``nextval('seq'::regclass)`` default is
  never evaluated twice to compare it) and, with them, identity and sequence
  options; column comments and types Alembic compares already.  Which
  sequences columns own (a SERIAL's default is left out) is read in one query;
- views, functions, triggers … that the project declares with ``alembic_utils``
  (``register_entities`` in env.py; the ``dbops[views]`` extra): its
  comparator is Alembic's global one, which every run includes.

Scoping: the comparators are registered once, at import: on Alembic 1.18+ as a
plugin, which Alembic uses only in a context whose ``autogenerate_plugins``
names it; on older releases in its global list.  Either way each returns at
once unless :func:`prepare` marked the context.  A plain ``alembic revision --autogenerate`` in the same
process is not changed.  The renderers are registered for this module's own
operation classes, which no one else produces.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import sqlalchemy as sa
from alembic.autogenerate.render import renderers
from alembic.operations import ops
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.naming import conv

#: this module's Alembic plugin
PLUGIN = "dbops.compare"
#: the plugins every dbops comparison adds to what env.py asked for (Alembic's default: its own, all)
PLUGINS = ("alembic.autogenerate.*", PLUGIN)
#: the option :func:`prepare` sets: the comparators run only in a context that has it
_FLAG = "dbops_compare"
#: what a comparator returns to let the next one run (Alembic 1.18+'s PriorityDispatchResult.CONTINUE;
#: older releases ignore the value)
_CONTINUE = None
#: the word that marks a written sequence for review in a generated file
REVIEW = "dbops: REVIEW"

log = logging.getLogger(__name__)

_PREPARER = postgresql.dialect().identifier_preparer
#: a column default taking a sequence's next value, as the server writes it
_NEXTVAL = re.compile(r"nextval\('(.+?)'::regclass\)")
#: the cast Alembic drops from the database's side only
_NEXTVAL_CAST = re.compile(r"(nextval\('(?:[^']|'')+')::regclass\)")
#: every sequence a column owns: the name as a default shows it, the sequence's and the column's names
_OWNED_SEQUENCES = (
    "SELECT CAST(CAST(c.oid AS regclass) AS text), c.relname, a.attname FROM pg_class c "
    "JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass "
    "AND d.refclassid = 'pg_class'::regclass "
    "JOIN pg_class t ON t.oid = d.refobjid "
    "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid "
    "WHERE c.relkind = 'S'"
)
#: a default that is one label of its enum type: ``'draft'::post_status``
_LABEL_DEFAULT = re.compile(r"^'((?:[^']|'')*)'::")


# -- the options ---------------------------------------------------------------
def prepare(context) -> None:
    """Turn dbops' comparison on in a migration context env.py configured (before autogenerate runs).

    env.py's own choices stay: its plugin list is extended, not replaced, and a
    ``compare_server_default`` callable is kept (``False``, Alembic's default, is turned on).
    """
    opts = context.opts
    plugins = list(opts.get("autogenerate_plugins") or PLUGINS[:1])  # env.py's own list, or Alembic's default
    opts["autogenerate_plugins"] = [*plugins, *(p for p in PLUGINS[1:] if p not in plugins)]
    opts[_FLAG] = True
    # the context read it when env.py configured it: its copy is what autogenerate consults
    if not context._user_compare_server_default:  # private: MigrationContext keeps no public setter
        opts["compare_server_default"] = context._user_compare_server_default = True  # private, as above
    if context.dialect.name == "postgresql" and context.connection is not None:
        _same_default_text(context)
        _owned_sequences_at_once(context)


def _same_default_text(context) -> None:
    """This context's impl takes server defaults whose texts are equal as the same before it compares them.

    Alembic drops ``::regclass`` from the database's ``nextval('seq'::regclass)`` only, then asks the
    server whether both values are equal, which a sequence never is (``nextval() = nextval()``): a model
    written as the database shows the default would differ forever.  Anything else is Alembic's comparison.
    """
    impl = context.impl
    compare = impl.compare_server_default
    if getattr(compare, "_dbops_text_first", False):
        return

    def compare_server_default(inspector_column, metadata_column, rendered_metadata_default,
                               rendered_inspector_default):
        if rendered_metadata_default is not None and rendered_inspector_default is not None:
            strip = _NEXTVAL_CAST.sub
            if strip(r"\1)", rendered_inspector_default) == strip(r"\1)", rendered_metadata_default):
                return False
        return compare(inspector_column, metadata_column, rendered_metadata_default, rendered_inspector_default)

    compare_server_default._dbops_text_first = True
    impl.compare_server_default = compare_server_default


def _owned_sequences_at_once(context) -> None:
    """Alembic's PostgreSQL reflection asks, for each integer column defaulting to ``nextval('seq')``, which
    column owns that sequence (one query per column: a SERIAL's default is then left out).  This context's
    impl answers from one query of every owned sequence, read at the first such column, by the name the
    server writes in the default (``oid::regclass::text``, as ``nextval('…'::regclass)`` shows it); a name
    not among them is asked as Alembic asks.  Only this context's impl is changed.
    """
    impl = context.impl
    ask = impl.autogen_column_reflect
    if getattr(ask, "_dbops_batched", False):
        return
    owned: dict[str, tuple[str, str]] | None = None

    def autogen_column_reflect(inspector, table, column_info):
        nonlocal owned
        default = column_info.get("default")
        match = _NEXTVAL.match(default) if isinstance(default, str) else None
        if match is None:
            return ask(inspector, table, column_info)
        if owned is None:
            owned = {name: (seq, col) for name, seq, col in context.connection.execute(sa.text(_OWNED_SEQUENCES))}
        found = owned.get(match.group(1))
        if found is None:
            return ask(inspector, table, column_info)
        if found[1] == column_info["name"] and isinstance(column_info["type"], (sa.INTEGER, sa.BIGINT)):
            del column_info["default"]  # a SERIAL: what Alembic's own check does
        return None

    autogen_column_reflect._dbops_batched = True
    impl.autogen_column_reflect = autogen_column_reflect


def run_autogenerate(revision_context, rev, context) -> None:
    """``RevisionContext.run_autogenerate`` with dbops' comparison: the one call every caller makes."""
    prepare(context)
    try:
        revision_context.run_autogenerate(rev, context)
    finally:
        _forget_entities()


def _forget_entities() -> None:
    """alembic_utils keeps what env.py registers for the life of the process, adding to it on every run:
    an entity the project no longer declares (or another project's) would still be compared next time."""
    module = sys.modules.get("alembic_utils.replaceable_entity")  # only when env.py imported it
    if module is not None:
        module.registry.clear()


def describe(diff) -> str | None:
    """One line for a diff of this comparison (enum types, alembic_utils entities); None for Alembic's own."""
    if not isinstance(diff, tuple) or not diff:
        return None
    kind = diff[0]
    if kind == "add_enum":
        return f"create enum type {diff[1]} ({', '.join(diff[2])})"
    if kind == "remove_enum":
        return f"drop enum type {diff[1]}"
    if kind in ("add_enum_values", "modify_enum_values"):
        moved = f" ({'; '.join(diff[4])})" if len(diff) > 4 and diff[4] else ""
        return (f"enum type {diff[1]} labels: models [{', '.join(diff[3])}] != database [{', '.join(diff[2])}]"
                + moved)
    if kind in ("create_entity", "drop_entity", "replace_or_revert_entity"):
        verb = {"create_entity": "create", "drop_entity": "drop", "replace_or_revert_entity": "replace"}[kind]
        return f"{verb} {diff[1]}"
    return None


def words(diff) -> str | None:
    """A few words for a revision message (``add value archived to post_status``); None for Alembic's own."""
    if not isinstance(diff, tuple) or not diff:
        return None
    kind = diff[0]
    if kind == "add_enum":
        return f"create type {diff[1]}"
    if kind == "remove_enum":
        return f"drop type {diff[1]}"
    if kind == "add_enum_values":
        return f"add {', '.join(x for x in diff[3] if x not in diff[2])} to {diff[1]}"
    if kind == "modify_enum_values":
        return f"change {diff[1]} labels"
    text = describe(diff)  # alembic_utils: "create PGView: public.post_titles" -> "create view public.post_titles"
    if text is None:
        return None
    verb, _, identity = text.partition(" ")
    kind_name, _, name = identity.partition(": ")
    return f"{verb} {kind_name.removeprefix('PG').lower()} {name}".strip()


# -- SQL pieces -------------------------------------------------------------------
def _name(name: str, schema: str | None) -> str:
    quoted = _PREPARER.quote(name)
    return f"{_PREPARER.quote_schema(schema)}.{quoted}" if schema else quoted


def _literal(label: str) -> str:
    return "'" + label.replace("'", "''") + "'"


@dataclass(frozen=True)
class EnumColumn:
    """A column of the database whose type is the enum; its default before the change (as the database
    writes it) and after it (the models' own, when this revision changes it)."""

    schema: str | None
    table: str
    column: str
    default: str | None = None
    after: str | None = None

    @property
    def table_sql(self) -> str:
        return _name(self.table, self.schema)

    def reversed(self) -> EnumColumn:
        return replace(self, default=self.after, after=self.default)


def _default_label(default: str | None) -> str | None:
    """The label a default such as ``'draft'::post_status`` names; None for any other expression."""
    found = _LABEL_DEFAULT.match(default or "")
    return found.group(1).replace("''", "'") if found else None


# -- the operations -------------------------------------------------------------------
@dataclass
class CreateEnumOp(ops.MigrateOperation):
    """``CREATE TYPE … AS ENUM``: before the first column that uses it."""

    name: str
    schema: str | None
    labels: tuple[str, ...]

    def sql(self) -> list[str]:
        return [f"CREATE TYPE {_name(self.name, self.schema)} AS ENUM ({', '.join(map(_literal, self.labels))})"]

    def reverse(self):
        return DropEnumOp(self.name, self.schema, self.labels)

    def to_diff_tuple(self):
        return ("add_enum", _name(self.name, self.schema), self.labels)


@dataclass
class DropEnumOp(ops.MigrateOperation):
    """``DROP TYPE``: after the last column that used it."""

    name: str
    schema: str | None
    labels: tuple[str, ...]

    def sql(self) -> list[str]:
        return [f"DROP TYPE {_name(self.name, self.schema)}"]

    def reverse(self):
        return CreateEnumOp(self.name, self.schema, self.labels)

    def to_diff_tuple(self):
        return ("remove_enum", _name(self.name, self.schema))


@dataclass
class AddEnumValuesOp(ops.MigrateOperation):
    """New labels: ``ALTER TYPE … ADD VALUE`` each, in place, outside a transaction (no rewrite)."""

    name: str
    schema: str | None
    old: tuple[str, ...]
    new: tuple[str, ...]
    columns: tuple[EnumColumn, ...] = field(default=())

    def sql(self) -> list[str]:
        statements, have = [], list(self.old)
        for index, label in enumerate(self.new):
            if label in have:
                continue
            later = [x for x in self.new[index + 1:] if x in have]
            where = f" BEFORE {_literal(later[0])}" if later else (f" AFTER {_literal(have[-1])}" if have else "")
            statements.append(f"ALTER TYPE {_name(self.name, self.schema)} ADD VALUE IF NOT EXISTS "
                              f"{_literal(label)}{where}")
            have.insert(have.index(later[0]) if later else len(have), label)
        return statements

    def reverse(self):
        return RecreateEnumOp(self.name, self.schema, self.new, self.old, tuple(c.reversed() for c in self.columns))

    def to_diff_tuple(self):
        return ("add_enum_values", _name(self.name, self.schema), self.old, self.new)


@dataclass
class RecreateEnumOp(ops.MigrateOperation):
    """Labels removed or renamed: PostgreSQL cannot drop a label, so the type is built again.

    The type is renamed aside, the new one created under its name, every column
    moved to it (``USING col::text::type``: a row holding a removed label stops
    the migration, nothing is lost), its default set again, the old type dropped.
    Each column is rewritten, so the file is marked for review.
    """

    name: str
    schema: str | None
    old: tuple[str, ...]
    new: tuple[str, ...]
    columns: tuple[EnumColumn, ...] = field(default=())

    def sql(self) -> list[str]:
        full, aside = _name(self.name, self.schema), _name(f"{self.name}_old", self.schema)
        out = [f"ALTER TYPE {full} RENAME TO {_PREPARER.quote(self.name + '_old')}",
               f"CREATE TYPE {full} AS ENUM ({', '.join(map(_literal, self.new))})"]
        for col in self.columns:
            column = _PREPARER.quote(col.column)
            if col.default:
                out.append(f"ALTER TABLE {col.table_sql} ALTER COLUMN {column} DROP DEFAULT")
            out.append(f"ALTER TABLE {col.table_sql} ALTER COLUMN {column} TYPE {full} "
                       f"USING {column}::text::{full}")
            if col.after and _default_label(col.after) in (None, *self.new):
                out.append(f"ALTER TABLE {col.table_sql} ALTER COLUMN {column} SET DEFAULT {col.after}")
        out.append(f"DROP TYPE {aside}")
        return out

    def reverse(self):
        return RecreateEnumOp(self.name, self.schema, self.new, self.old, tuple(c.reversed() for c in self.columns))

    def to_diff_tuple(self):
        moved = tuple(f"{c.table}.{c.column} default {c.default} -> {c.after}" for c in self.columns
                      if c.after != c.default)
        return ("modify_enum_values", _name(self.name, self.schema), self.old, self.new, moved)

    def review_lines(self) -> list[str]:
        removed = [x for x in self.old if x not in self.new]
        added = [x for x in self.new if x not in self.old]
        tables = ", ".join(dict.fromkeys(f"{c.table}.{c.column}" for c in self.columns)) or "none"
        lines = [f"# {REVIEW}: enum type {self.name} loses label(s) {', '.join(removed) or '-'}"
                 + (f" and gains {', '.join(added)}" if added else "") + ".",
                 "# PostgreSQL cannot drop a label: the type is built again and each column that uses it is",
                 f"# rewritten (an ACCESS EXCLUSIVE lock for the length of the rewrite): {tables}.",
                 "# A row holding a removed label stops this migration (nothing is lost): update those rows first,",
                 "# e.g. op.execute(\"UPDATE <table> SET <column> = '<kept label>' WHERE <column> = '<removed>'\").",
                 "# A renamed label keeps its rows with ALTER TYPE … RENAME VALUE 'old' TO 'new' instead (no rewrite)."]
        for col in self.columns:
            if col.after and _default_label(col.after) not in (None, *self.new):
                lines.append(f"# {REVIEW}: the default of {col.table}.{col.column}, {col.after}, names a removed "
                             "label: it is dropped (set server_default in the model)")
        return lines


def _render_statements(statements: Iterable[str]) -> str:
    return "\n".join(f"op.execute({s!r})" for s in statements)


@renderers.dispatch_for(CreateEnumOp)
def _render_create(_autogen_context, op: CreateEnumOp) -> str:
    return _render_statements(op.sql())


@renderers.dispatch_for(DropEnumOp)
def _render_drop(_autogen_context, op: DropEnumOp) -> str:
    return _render_statements(op.sql())


@renderers.dispatch_for(AddEnumValuesOp)
def _render_add_values(_autogen_context, op: AddEnumValuesOp) -> str:
    body = "\n".join(f"    op.execute({s!r})" for s in op.sql())
    return ("# ALTER TYPE … ADD VALUE: in place, no table rewrite; outside a transaction, so the new label\n"
            "# is usable by the revisions after this one\n"
            f"with op.get_context().autocommit_block():\n{body}")


@renderers.dispatch_for(RecreateEnumOp)
def _render_recreate(_autogen_context, op: RecreateEnumOp) -> str:
    return "\n".join(op.review_lines()) + "\n" + _render_statements(op.sql())


# -- the comparators --------------------------------------------------------------
_ENUMS = sa.text(
    "SELECT t.oid, n.nspname, t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) "
    "FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid "
    "GROUP BY t.oid, n.nspname, t.typname"
)
_USERS = sa.text(
    "SELECT a.atttypid, n.nspname, c.relname, a.attname, pg_get_expr(d.adbin, d.adrelid) "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') "
    "AND a.atttypid IN (SELECT enumtypid FROM pg_enum) ORDER BY n.nspname, c.relname, a.attnum"
)


@dataclass
class _Enums:
    """The enum types of one schema: in the models (with the tables using them) and in the database."""

    models: dict[str, tuple[str, ...]] = field(default_factory=dict)
    model_tables: dict[str, set[tuple[str | None, str]]] = field(default_factory=dict)
    model_columns: set[tuple[str | None, str, str]] = field(default_factory=set)
    database: dict[str, tuple[str, ...]] = field(default_factory=dict)
    users: dict[str, list[EnumColumn]] = field(default_factory=dict)


def _model_enums(autogen_context, schema: str | None, default: str | None) -> _Enums:
    found = _Enums()
    for table in autogen_context.sorted_tables:
        table_schema = table.schema if table.schema != default else None
        if not autogen_context.run_object_filters(table, table.name, "table", False, None):
            continue
        for column in table.columns:
            kind = column.type
            if not isinstance(kind, sa.Enum) or not kind.native_enum or not kind.name:
                continue
            enum_schema = kind.schema or table.schema
            if (enum_schema if enum_schema != default else None) != schema:
                continue
            found.models.setdefault(kind.name, tuple(kind.enums))
            found.model_tables.setdefault(kind.name, set()).add((table_schema, table.name))
            found.model_columns.add((table_schema, table.name, column.name))
    return found


def _database_enums(autogen_context, found: _Enums, schema: str | None, default: str | None) -> None:
    conn = autogen_context.connection
    names: dict[int, str] = {}
    for oid, nsp, name, labels in conn.execute(_ENUMS):
        if (nsp if nsp != default else None) == schema:
            found.database[name] = tuple(labels)
            names[oid] = name
    for oid, nsp, table, column, default_sql in conn.execute(_USERS):
        if oid in names:
            found.users.setdefault(names[oid], []).append(
                EnumColumn(nsp if nsp != default else None, table, column, default_sql, default_sql))


def _on(autogen_context) -> bool:
    """Whether this is a dbops comparison (:func:`prepare` ran) on PostgreSQL with a connection."""
    return bool(autogen_context.opts.get(_FLAG)) and autogen_context.connection is not None \
        and autogen_context.dialect.name == "postgresql"


def _compare_enums_first(autogen_context, upgrade_ops, schemas):
    """Before the tables: types to create, labels to add, types to build again."""
    if _on(autogen_context):
        _compare_enums(autogen_context, upgrade_ops, schemas, first=True)
    return _CONTINUE


def _compare_enums_last(autogen_context, upgrade_ops, schemas):
    """After the tables: types no model uses any more, whose last columns this revision drops."""
    if _on(autogen_context):
        _compare_enums(autogen_context, upgrade_ops, schemas, first=False)
    return _CONTINUE


def _compare_enums(autogen_context, upgrade_ops, schemas, *, first: bool) -> None:
    default = autogen_context.dialect.default_schema_name
    inspector = autogen_context.inspector
    front = 0  # types come before every other operation (older Alembic runs this after the tables)
    for schema in sorted(schemas, key=lambda s: s or ""):
        found = _model_enums(autogen_context, schema, default)
        _database_enums(autogen_context, found, schema, default)
        existing = set(inspector.get_table_names(schema=schema))
        for name, labels in sorted(found.models.items()):
            if not autogen_context.run_name_filters(name, "type", {"schema_name": schema}):
                continue
            columns = tuple(found.users.get(name, ()))
            have = found.database.get(name)
            if first and have is None:
                # a new table's CREATE TABLE creates its type (SQLAlchemy's event); a column added needs it first
                if all(t in existing for s, t in found.model_tables[name]):
                    upgrade_ops.ops.insert(front, CreateEnumOp(name, schema, labels))
                    front += 1
            elif first and have != labels:
                kept = [x for x in labels if x in have]
                if kept == list(have):  # only additions, the old order kept
                    upgrade_ops.ops.insert(front, AddEnumValuesOp(name, schema, have, labels, columns))
                    front += 1
                else:
                    upgrade_ops.ops.insert(front, RecreateEnumOp(name, schema, have, labels, columns))
                    front += 1
        if first:
            continue
        for name, labels in sorted(found.database.items()):
            if name in found.models or not autogen_context.run_name_filters(name, "type", {"schema_name": schema}):
                continue
            users = found.users.get(name, [])
            # ours to drop: every column that uses it is a column the models dropped from a table they keep
            if users and all(c.table in existing and (c.schema, c.table) in _kept_tables(autogen_context, default)
                             and (c.schema, c.table, c.column) not in found.model_columns for c in users):
                upgrade_ops.ops.append(DropEnumOp(name, schema, labels))
        _defaults_into_recreates(upgrade_ops, default)


def _defaults_into_recreates(upgrade_ops, default_schema: str | None) -> None:
    """A rebuilt type's columns take their new default inside the rebuild, not in an alter_column after it.

    The default names a label: set after the rebuild (upgrade) it may name a new label; undone before the
    rebuild (downgrade, in reverse order) it would name a label the type has not got back yet.
    """
    for recreate in [o for o in upgrade_ops.ops if isinstance(o, RecreateEnumOp)]:
        columns = []
        for col in recreate.columns:
            for table_ops in [o for o in upgrade_ops.ops if isinstance(o, ops.ModifyTableOps)]:
                schema = table_ops.schema if table_ops.schema != default_schema else None
                if (schema, table_ops.table_name) != (col.schema, col.table):
                    continue
                for alter in [o for o in table_ops.ops if isinstance(o, ops.AlterColumnOp)]:
                    if alter.column_name == col.column and alter.modify_server_default is not False:
                        col = replace(col, after=_default_sql(alter.modify_server_default))
                        alter.modify_server_default = False
                        if not alter.has_changes():
                            table_ops.ops.remove(alter)
                if not table_ops.ops:
                    upgrade_ops.ops.remove(table_ops)
            columns.append(col)
        recreate.columns = tuple(columns)


def _default_sql(server_default) -> str | None:
    """The SQL of a model's ``server_default`` (a string is a literal, as SQLAlchemy writes it)."""
    if server_default is None:
        return None
    arg = getattr(server_default, "arg", server_default)
    if isinstance(arg, str):
        return _literal(arg)
    return str(arg.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def _kept_tables(autogen_context, default: str | None) -> set[tuple[str | None, str]]:
    return {(t.schema if t.schema != default else None, t.name) for t in autogen_context.sorted_tables}


class AddCheckOp(ops.CreateCheckConstraintOp):
    """``create_check_constraint``, rendered here (Alembic before 1.18 renders none)."""

    def reverse(self):
        return DropCheckOp.from_constraint(self.to_constraint())


class DropCheckOp(ops.DropConstraintOp):
    """``drop_constraint`` of a CHECK constraint, whose downgrade is an :class:`AddCheckOp`."""

    def reverse(self):
        return AddCheckOp.from_constraint(self.to_constraint())


@renderers.dispatch_for(AddCheckOp)
def _render_add_check(autogen_context, op: AddCheckOp) -> str:
    from alembic.autogenerate import render  # private helpers: Alembic's own way to write names and SQL

    args = [repr(render._render_gen_name(autogen_context, op.constraint_name)),  # private, as above
            repr(render._ident(op.table_name)),  # private, as above
            render._render_potential_expr(op.to_constraint().sqltext, autogen_context,  # private, as above
                                          wrap_in_element=False)]
    if op.schema:
        args.append(f"schema={render._ident(op.schema)!r}")  # private, as above
    return f"{render._alembic_autogenerate_prefix(autogen_context)}create_check_constraint({', '.join(args)})"


def _compare_checks(autogen_context, modify_table_ops, schema, tname, conn_table, metadata_table):
    """Named CHECK constraints added, dropped and changed on a table both sides have.

    A changed one is compared as the server writes both (``pg_get_constraintdef``): the models'
    expression is added to an empty temporary copy of the table inside a savepoint that is rolled back.
    One the database has and the models do not name is dropped only when the model's table has no
    unnamed CHECK constraint (the server names those itself: they cannot be told apart).  The
    database's constraints and the models' expressions as the server writes them are read for every
    table of the comparison at its first table (:class:`_RunChecks`: three round trips, not five per table).
    """
    if not _on(autogen_context) or conn_table is None or metadata_table is None:
        return _CONTINUE
    run = _RunChecks.of(autogen_context)
    named, unnamed = _named_checks(metadata_table, autogen_context.dialect)
    have = run.have(tname, schema)

    def dropped(name: str) -> DropCheckOp:  # the database's name as it is (conv): no naming convention
        return DropCheckOp.from_constraint(sa.CheckConstraint(
            sa.text(_strip_not_valid(have[name]).removeprefix("CHECK ")), name=conv(name), table=conn_table))

    if not unnamed:
        for name in sorted(set(have) - set(named)):
            modify_table_ops.ops.append(dropped(name))
    for name in sorted(set(named) - set(have)):
        if autogen_context.run_object_filters(named[name], name, "check_constraint", False, None):
            modify_table_ops.ops.append(AddCheckOp.from_constraint(named[name]))
    common = sorted(set(named) & set(have))
    if not common:
        return _CONTINUE
    wanted = run.wanted(tname, schema, {name: named[name] for name in common})
    if wanted is None:  # an expression the server refuses: the revision will say so
        return _CONTINUE
    for name in common:
        if _strip_not_valid(wanted.get(name)) != _strip_not_valid(have[name]):
            modify_table_ops.ops.append(dropped(name))
            modify_table_ops.ops.append(AddCheckOp.from_constraint(named[name]))
    return _CONTINUE


def _named_checks(table: sa.Table, dialect) -> tuple[dict[str, sa.CheckConstraint], int]:
    """A model table's named CHECK constraints by their final name, and how many have no name."""
    from alembic.util import sqla_compat  # private helpers: the name a naming convention gives a constraint

    named, unnamed = {}, 0
    for ck in (c for c in table.constraints if isinstance(c, sa.CheckConstraint)):
        if sqla_compat._constraint_is_named(ck, dialect):  # private: Alembic's own test for this
            named[str(sqla_compat._get_constraint_final_name(ck, dialect))] = ck  # private: the convention's name
        else:
            unnamed += 1
    return named, unnamed


_CHECKS_OF = (
    "SELECT conrelid, conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'c' "
    "AND conrelid = ANY(CAST(:oids AS oid[])) ORDER BY conrelid, conname"
)
_PROBE = "dbops_check_probe"


class _RunChecks:
    """One comparison's CHECK constraints, read for all its tables at the first: the database's
    (``pg_get_constraintdef``) and the models' as the server writes them (each table's named
    expressions on an empty temporary copy of it, all in one savepoint rolled back).  A table the
    batch does not cover (or a batch the server refuses) is read on its own, as before."""

    def __init__(self, autogen_context):
        self.ctx = autogen_context
        self.conn = autogen_context.connection
        default = autogen_context.dialect.default_schema_name
        #: the comparison's model tables by the name the database resolves (``_name``)
        self.tables = {_name(t.name, t.schema if t.schema != default else None): t
                       for t in autogen_context.sorted_tables}
        self._oids: dict[str, int] | None = None
        self._have: dict[int, dict[str, str]] = {}
        self._wanted: dict[str, dict[str, str]] | None = None

    @classmethod
    def of(cls, autogen_context) -> _RunChecks:
        run = getattr(autogen_context, "_dbops_checks", None)
        if run is None or run.conn is not autogen_context.connection:
            run = cls(autogen_context)
            autogen_context._dbops_checks = run  # this comparison's, gone with its context
        return run

    def _load(self) -> None:
        names = list(self.tables)
        rows = self.conn.execute(sa.text(
            "SELECT n, CAST(to_regclass(n) AS oid) FROM unnest(CAST(:names AS text[])) AS n"),
            {"names": names}).all() if names else []
        self._oids = {name: oid for name, oid in rows if oid is not None}
        for oid, name, text in self.conn.execute(sa.text(_CHECKS_OF), {"oids": list(self._oids.values())}):
            self._have.setdefault(oid, {})[name] = text

    def have(self, tname: str, schema: str | None) -> dict[str, str]:
        """The table's CHECK constraints in the database (name: definition), through the name filters."""
        if self._oids is None:
            self._load()
        assert self._oids is not None
        key = _name(tname, schema)
        oid = self._oids.get(key)
        if oid is None:  # not one of the comparison's tables as read at the start: read it alone
            rows = self.conn.execute(sa.text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'c' AND conrelid = "
                "CAST(:t AS regclass)"), {"t": key}).all()
        else:
            rows = self._have.get(oid, {}).items()
        return {name: text for name, text in rows
                if self.ctx.run_name_filters(name, "check_constraint", {"table_name": tname, "schema_name": schema})}

    def wanted(self, tname: str, schema: str | None, checks: dict[str, sa.CheckConstraint]) -> dict[str, str] | None:
        """The models' ``checks`` as the server writes them on the table's copy; None: the server refused one."""
        key = _name(tname, schema)
        if self._wanted is None:
            self._wanted = self._probe_all()
        if key not in self._wanted:  # not in the batch (read alone at the start): probed alone, as before
            self._wanted[key] = self._probe({key: checks}).get(key)
        return self._wanted[key]

    def _probe_all(self) -> dict[str, dict[str, str] | None]:
        """Every comparison table's named checks the database also has, probed at once (None: refused)."""
        dialect = self.ctx.dialect
        batch = {}
        for key, table in self.tables.items():
            oid = (self._oids or {}).get(key)
            if oid is None or oid not in self._have:
                continue
            named, _unnamed = _named_checks(table, dialect)
            common = {name: ck for name, ck in named.items() if name in self._have[oid]}
            if common:
                batch[key] = common
        return self._probe(batch) if batch else {}

    def _probe(self, batch: dict[str, dict[str, sa.CheckConstraint]]) -> dict[str, dict[str, str] | None]:
        """``batch`` (table name: named checks) on empty temporary copies, one statement, in a savepoint;
        a table whose expression the server refuses maps to None."""
        compiler = self.ctx.dialect.ddl_compiler(self.ctx.dialect, None).sql_compiler
        # a driver with format-style placeholders gets % written as %%; these statements run without
        # parameters, where the server must see the expression's own % (``LIKE 'a%'``)
        doubled = compiler.process(sa.text("%")) == "%%"
        statements, probes = [], {}
        for i, (key, checks) in enumerate(batch.items()):
            probe = f"{_PROBE}_{i}"
            probes[probe] = key
            statements.append(f"CREATE TEMPORARY TABLE {probe} (LIKE {key})")
            for name, ck in checks.items():
                text = compiler.process(ck.sqltext, include_table=False, literal_binds=True)
                text = text.replace("%%", "%") if doubled else text
                statements.append(f"ALTER TABLE {probe} ADD CONSTRAINT {_PREPARER.quote(name)} CHECK ({text})")
        names = ", ".join(f"'{probe}'" for probe in probes)
        statements.append(
            "SELECT r.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "JOIN pg_class r ON r.oid = c.conrelid WHERE c.contype = 'c' AND r.relnamespace = pg_my_temp_schema() "
            f"AND r.relname = ANY(ARRAY[{names}])")
        savepoint = self.conn.begin_nested()
        try:
            def run(sql: str):  # no parameters: % is not a placeholder in these statements
                return self.conn.exec_driver_sql(sql, execution_options={"no_parameters": True})

            if self.ctx.dialect.driver == "psycopg2":  # one round trip: the statements as one simple query
                rows = run(";\n".join(statements)).all()
            else:  # a driver that prepares each statement (asyncpg): one at a time, still one savepoint
                for statement in statements[:-1]:
                    run(statement)
                rows = run(statements[-1]).all()
        except sa.exc.DBAPIError as exc:
            savepoint.rollback()
            savepoint = None
            if len(batch) > 1:  # one table's expression refused: each table alone, as before
                out: dict[str, dict[str, str] | None] = {}
                for key, checks in batch.items():
                    out.update(self._probe({key: checks}))
                return out
            log.info("CHECK constraints of %s not compared: %s", next(iter(batch)), exc)
            return dict.fromkeys(batch)
        finally:
            if savepoint is not None:
                savepoint.rollback()
        out: dict[str, dict[str, str] | None] = {key: {} for key in batch}
        for relname, name, text in rows:
            if relname in probes:
                out[probes[relname]][name] = text
        return out


def _strip_not_valid(definition: str | None) -> str | None:
    return definition.removesuffix(" NOT VALID") if definition else definition


def _register() -> None:
    """Once per process: Alembic 1.18+'s plugin (used only where a context names it), else its global
    comparators of older releases (each function returns at once outside dbops' runs: :func:`_on`)."""
    try:
        from alembic.runtime import plugins  # Alembic 1.18+
    except ImportError:
        from alembic.autogenerate.compare import comparators  # Alembic 1.12-1.17: a list per target

        # the default qualifier: a dialect's own list would replace Alembic's (``_on`` checks the dialect)
        comparators.dispatch_for("schema")(_compare_enums_first)
        comparators.dispatch_for("schema")(_compare_enums_last)
        comparators.dispatch_for("table")(_compare_checks)
        return
    from alembic.util import DispatchPriority

    if PLUGIN in plugins._all_plugins:  # private: Alembic keeps no public lookup
        return
    plugin = plugins.Plugin(PLUGIN)
    for fn, target, priority in ((_compare_enums_first, "schema", DispatchPriority.FIRST),
                                 (_compare_enums_last, "schema", DispatchPriority.LAST),
                                 (_compare_checks, "table", DispatchPriority.LAST)):
        plugin.add_autogenerate_comparator(fn, target, qualifier="postgresql", priority=priority)


_register()
