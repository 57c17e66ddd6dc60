"""A migration's statements as PostgreSQL's own parser reads them (pglast): located and named."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from pglast import ast, parse_sql, scan
from pglast.enums import AlterTableType, ConstrType, ObjectType
from pglast.parser import ParseError

from server.schema.lint.catalogue import Finding, finding


@dataclass(frozen=True)
class Statement:
    """One statement: its syntax tree, the offset of its first token, and that token's line."""

    node: ast.Node
    start: int
    line: int


def line_at(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def parse(file: str, text: str | None) -> list[Statement] | Finding:
    """The file's statements, or its syntax-error finding."""
    if text is None:
        return finding(file, 1, "syntax-error", f"{file} is not valid UTF-8")
    try:
        raws = parse_sql(text)
    except ParseError as err:
        return finding(file, _error_line(text, err), "syntax-error", str(err.args[0]))
    return [_statement(text, raw.stmt, raw.stmt_location) for raw in raws if raw.stmt]


def _error_line(text: str, err: ParseError) -> int:
    """The line pglast blames: it reports a 0-based character index, or None at end of input."""
    index = err.args[1] if len(err.args) > 1 else None
    if isinstance(index, int):
        return line_at(text, index)
    return line_at(text, len(text.rstrip()))


def _statement(text: str, node: ast.Node, location: int | None) -> Statement:
    index = location or 0
    while index < len(text) and text[index].isspace():
        index += 1
    return Statement(node, index, line_at(text, index))


# -- which part of a statement -------------------------------------------------------------


def top_level_commas(text: str) -> list[int]:
    """Offsets of the commas outside parentheses: those between an ALTER TABLE's commands."""
    depth, commas = 0, []
    for token in scan(text):
        if token.name == "ASCII_40":
            depth += 1
        elif token.name == "ASCII_41":
            depth -= 1
        elif token.name == "ASCII_44" and depth == 0:
            commas.append(token.start)
    return commas


def part_at(statement: Statement, offset: int, commas: list[int]) -> ast.Node:
    """The ALTER TABLE command that `offset` falls in, or the statement itself."""
    node = statement.node
    if not isinstance(node, ast.AlterTableStmt) or not node.cmds:
        return node
    index = bisect_left(commas, offset) - bisect_left(commas, statement.start)
    command: ast.Node = node.cmds[min(index, len(node.cmds) - 1)]
    return command


# -- names ---------------------------------------------------------------------------------


def relation_of(node: ast.Node) -> ast.RangeVar | None:
    relation = getattr(node, "relation", None)
    return relation if isinstance(relation, ast.RangeVar) else None


def table_key(relation: ast.RangeVar) -> tuple[str, str]:
    return (relation.schemaname or "public", relation.relname or "")


def table_name(relation: ast.RangeVar | None) -> str:
    if relation is None:
        return "?"
    return ".".join(p for p in (relation.schemaname, relation.relname) if p)


_CONSTRAINTS: dict[ConstrType | None, str] = {
    ConstrType.CONSTR_CHECK: "CHECK",
    ConstrType.CONSTR_FOREIGN: "FOREIGN KEY",
    ConstrType.CONSTR_UNIQUE: "UNIQUE",
    ConstrType.CONSTR_PRIMARY: "PRIMARY KEY",
    ConstrType.CONSTR_EXCLUSION: "EXCLUDE",
}
_COMMANDS: dict[AlterTableType | None, str] = {
    AlterTableType.AT_AddColumn: "ADD COLUMN {}",
    AlterTableType.AT_DropColumn: "DROP COLUMN {}",
    AlterTableType.AT_AlterColumnType: "ALTER COLUMN {} TYPE",
    AlterTableType.AT_SetNotNull: "ALTER COLUMN {} SET NOT NULL",
    AlterTableType.AT_ValidateConstraint: "VALIDATE CONSTRAINT on {}",
}


def describe(node: ast.Node, part: ast.Node) -> str:
    """What a finding is about, as `DROP COLUMN users.age`: the statement, or one command."""
    table = table_name(relation_of(node))
    if isinstance(part, ast.AlterTableCmd):
        return _describe_command(part, table)
    if isinstance(part, ast.RenameStmt) and part.renameType == ObjectType.OBJECT_COLUMN:
        return f"RENAME COLUMN {table}.{part.subname} TO {part.newname}"
    if isinstance(part, ast.RenameStmt):
        return f"RENAME TABLE {table} TO {part.newname}"
    if isinstance(part, ast.IndexStmt):
        kind = "CREATE UNIQUE INDEX" if part.unique else "CREATE INDEX"
        return f"{kind} {part.idxname or '(unnamed)'} on {table}"
    return f"{type(part).__name__} on {table}"


def _describe_command(command: ast.AlterTableCmd, table: str) -> str:
    if isinstance(command.def_, ast.Constraint):
        return f"ADD {describe_constraint(command.def_)} on {table}"
    column = command.name
    if column is None and isinstance(command.def_, ast.ColumnDef):
        column = command.def_.colname
    where = f"{table}.{column}" if column else table
    return _COMMANDS.get(command.subtype, "ALTER TABLE {}").format(where)


def describe_constraint(constraint: ast.Constraint) -> str:
    kind = _CONSTRAINTS.get(constraint.contype, "constraint")
    return f"CONSTRAINT {constraint.conname} {kind}" if constraint.conname else kind
