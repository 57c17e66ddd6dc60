"""Our statement checks, walked over pglast's syntax tree: those squawk lacks or reads apart.

Why each is ours is in the package docstring (server/schema/lint/__init__.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType, VariableSetKind

from server.schema.lint.catalogue import Finding, finding
from server.schema.lint.statements import (
    Statement,
    describe,
    relation_of,
    table_key,
    table_name,
)

_ZERO = re.compile(r"^\s*0+(\.0*)?\s*[a-z]*\s*$", re.IGNORECASE)
_OFF = frozenset({"false", "off", "no", "0"})
# A column constraint that gives every existing row a value (or says NOT NULL itself).
_FILLED = {
    ConstrType.CONSTR_NOTNULL,
    ConstrType.CONSTR_DEFAULT,
    ConstrType.CONSTR_IDENTITY,
    ConstrType.CONSTR_GENERATED,
}


@dataclass
class Walk:
    """What one forward file has done so far, statement by statement."""

    file: str
    transactional: bool
    line: int = 1
    new_tables: set[tuple[str, str]] = field(default_factory=set)
    on_new_table: list[bool] = field(default_factory=list)
    lock_timeout: bool = False
    first_heavy: tuple[int, str] | None = None
    findings: list[Finding] = field(default_factory=list)

    def add(self, rule: str, message: str) -> None:
        self.findings.append(finding(self.file, self.line, rule, message))

    def heavy(self, what: str) -> None:
        if not self.lock_timeout and self.first_heavy is None:
            self.first_heavy = (self.line, what)

    def is_new(self, relation: ast.RangeVar | None) -> bool:
        return relation is not None and table_key(relation) in self.new_tables


def _option_on(option: Any) -> bool:
    """Whether a DefElem option such as FULL or CONCURRENTLY is switched on."""
    arg = getattr(option, "arg", None)
    if isinstance(arg, ast.Integer):
        return arg.ival != 0
    if isinstance(arg, ast.String):
        return (arg.sval or "").lower() not in _OFF
    return True


def _has_option(options: Iterable[Any] | None, name: str) -> bool:
    return any(getattr(o, "defname", None) == name and _option_on(o) for o in options or ())


def _on_set(stmt: ast.VariableSetStmt, walk: Walk) -> None:
    if stmt.name != "lock_timeout" or stmt.kind != VariableSetKind.VAR_SET_VALUE:
        return
    # SET LOCAL outside a transaction block does nothing, and a zero timeout waits forever.
    if (stmt.is_local and not walk.transactional) or _is_zero(stmt.args):
        return
    walk.lock_timeout = True


def _is_zero(args: tuple[Any, ...] | None) -> bool:
    value = getattr(args[0], "val", None) if args else None
    if isinstance(value, ast.Integer):
        return value.ival == 0
    return isinstance(value, ast.String) and bool(_ZERO.match(value.sval or ""))


def _on_create_table(stmt: ast.CreateStmt, walk: Walk) -> None:
    if stmt.relation is not None:
        walk.new_tables.add(table_key(stmt.relation))


def _on_create_table_as(stmt: ast.CreateTableAsStmt, walk: Walk) -> None:
    if stmt.into is not None and stmt.into.rel is not None:
        walk.new_tables.add(table_key(stmt.into.rel))


def _concurrently(walk: Walk, what: str) -> None:
    if walk.transactional:
        walk.add("concurrently-in-transaction", f"{what} in a transactional migration")


def _on_index(stmt: ast.IndexStmt, walk: Walk) -> None:
    if stmt.concurrent:
        _concurrently(walk, describe(stmt, stmt).replace(" INDEX", " INDEX CONCURRENTLY", 1))
    elif not walk.is_new(stmt.relation):
        walk.heavy(describe(stmt, stmt))


def _on_drop(stmt: ast.DropStmt, walk: Walk) -> None:
    names = ", ".join(".".join(str(p.sval) for p in obj) for obj in stmt.objects or ())
    if stmt.removeType == ObjectType.OBJECT_INDEX and stmt.concurrent:
        _concurrently(walk, f"DROP INDEX CONCURRENTLY {names}")
    elif stmt.removeType == ObjectType.OBJECT_INDEX:
        walk.heavy(f"DROP INDEX {names}")
    elif stmt.removeType == ObjectType.OBJECT_TABLE:
        walk.heavy(f"DROP TABLE {names}")


def _on_truncate(stmt: ast.TruncateStmt, walk: Walk) -> None:
    walk.heavy("TRUNCATE " + ", ".join(table_name(r) for r in stmt.relations or ()))


def _on_vacuum(stmt: ast.VacuumStmt, walk: Walk) -> None:
    if stmt.is_vacuumcmd and _has_option(stmt.options, "full"):
        tables = ", ".join(table_name(r.relation) for r in stmt.rels or ())
        walk.heavy(f"VACUUM FULL {tables}".rstrip())


def _on_cluster(stmt: ast.ClusterStmt, walk: Walk) -> None:
    walk.heavy(f"CLUSTER {table_name(stmt.relation) if stmt.relation else ''}".rstrip())


def _on_reindex(stmt: ast.ReindexStmt, walk: Walk) -> None:
    target = table_name(stmt.relation) if stmt.relation else (stmt.name or "")
    if _has_option(stmt.params, "concurrently"):
        _concurrently(walk, f"REINDEX CONCURRENTLY {target}")
    else:
        walk.heavy(f"REINDEX {target}")


_HEAVY_RENAMES = (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_TABCONSTRAINT)


def _on_rename(stmt: ast.RenameStmt, walk: Walk) -> None:
    relation = stmt.relation
    if relation is not None and walk.is_new(relation):
        if stmt.renameType == ObjectType.OBJECT_TABLE:
            walk.new_tables.add((table_key(relation)[0], stmt.newname or ""))
        return
    table_column = stmt.renameType == ObjectType.OBJECT_COLUMN
    if stmt.renameType in _HEAVY_RENAMES or (
        table_column and stmt.relationType == ObjectType.OBJECT_TABLE
    ):
        walk.heavy(f"ALTER TABLE {table_name(relation)} RENAME")


def _on_alter(stmt: ast.AlterTableStmt, walk: Walk) -> None:
    if stmt.objtype != ObjectType.OBJECT_TABLE or walk.is_new(stmt.relation):
        return
    for command in stmt.cmds or ():
        _inline_constraints(stmt, command, walk)
        if command.subtype == AlterTableType.AT_SetNotNull:
            walk.add("set-not-null", describe(stmt, command))
    walk.heavy(f"ALTER TABLE {table_name(stmt.relation)}")


def _inline_constraints(stmt: ast.AlterTableStmt, command: ast.AlterTableCmd, walk: Walk) -> None:
    """ADD COLUMN ... CHECK, and ... PRIMARY KEY (NOT NULL, said or not): squawk sees neither."""
    column = command.def_
    if command.subtype != AlterTableType.AT_AddColumn or not isinstance(column, ast.ColumnDef):
        return
    kinds = {c.contype for c in column.constraints or () if isinstance(c, ast.Constraint)}
    if ConstrType.CONSTR_CHECK in kinds:
        walk.add("constraint-not-valid", describe(stmt, command) + " CHECK")
    if ConstrType.CONSTR_PRIMARY in kinds and not column.is_not_null and not kinds & _FILLED:
        walk.add("not-null-without-default", describe(stmt, command) + " PRIMARY KEY")


_HANDLERS: dict[type[ast.Node], Callable[[Any, Walk], None]] = {
    ast.VariableSetStmt: _on_set,
    ast.CreateStmt: _on_create_table,
    ast.CreateTableAsStmt: _on_create_table_as,
    ast.IndexStmt: _on_index,
    ast.DropStmt: _on_drop,
    ast.TruncateStmt: _on_truncate,
    ast.VacuumStmt: _on_vacuum,
    ast.ClusterStmt: _on_cluster,
    ast.ReindexStmt: _on_reindex,
    ast.RenameStmt: _on_rename,
    ast.AlterTableStmt: _on_alter,
}


def walk(file: str, transactional: bool, statements: list[Statement]) -> Walk:
    """Our own findings for a forward file, and which statements touch a table it created."""
    state = Walk(file=file, transactional=transactional)
    for statement in statements:
        state.line = statement.line
        state.on_new_table.append(state.is_new(relation_of(statement.node)))
        handler = _HANDLERS.get(type(statement.node))
        if handler is not None:
            handler(statement.node, state)
    if state.first_heavy is not None:
        line, what = state.first_heavy
        message = f"{what} takes a heavy lock with no SET lock_timeout before it"
        state.findings.append(finding(file, line, "missing-lock-timeout", message))
    return state
