"""Lock-safety lint for the yoyo SQL migrations: findings, rules and opt-outs.

SQL is parsed and lexed by pglast (PostgreSQL's own parser) and headers are read by yoyo's own
reader; the rules and the opt-out comments are written here because no library lints yoyo files.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pglast import ast, parse_sql, scan
from pglast.enums import AlterTableType, ConstrType, ObjectType, VariableSetKind
from pglast.parser import ParseError
from yoyo.migrations import read_sql_migration


@dataclass(frozen=True)
class Finding:
    """One problem in one migration file."""

    file: str
    line: int
    rule: str
    message: str
    why: str

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


RULES: dict[str, str] = {
    "syntax-error": "The file is not valid PostgreSQL SQL (or not UTF-8).",
    "missing-rollback": "A forward migration has no matching .rollback.sql file.",
    "orphan-rollback": "A .rollback.sql file has no forward migration.",
    "multiple-heads": "Migration history is not a single line: several heads, or a shared prefix.",
    "unknown-dependency": "A `-- depends:` header names a migration that does not exist.",
    "index-not-concurrent": "CREATE INDEX on an existing table without CONCURRENTLY.",
    "concurrently-in-transaction": "A CONCURRENTLY statement in a transactional migration.",
    "not-null-without-default": "ADD COLUMN … NOT NULL without a DEFAULT on an existing table.",
    "column-type-change": "ALTER COLUMN … TYPE on an existing table.",
    "column-rename": "RENAME COLUMN on an existing table.",
    "table-rename": "ALTER TABLE … RENAME TO on an existing table.",
    "column-drop": "DROP COLUMN on an existing table.",
    "constraint-not-valid": "CHECK or FOREIGN KEY added to an existing table without NOT VALID.",
    "constraint-needs-index": "UNIQUE or PRIMARY KEY added to an existing table, not USING INDEX.",
    "set-not-null": "ALTER COLUMN … SET NOT NULL on an existing table.",
    "missing-lock-timeout": "A heavy lock is taken before any SET lock_timeout in the file.",
    "bad-opt-out": "A `-- lint: allow` comment with an unknown rule or without a reason.",
}

_WHY: dict[str, str] = {
    "syntax-error": "PostgreSQL would reject this file in the middle of a deploy; fix the SQL "
    "(the line is where the parser gave up).",
    "missing-rollback": "Without a rollback file `btecctl db rollback` cannot undo this "
    "migration during an incident; add NNNN.name.rollback.sql, or opt out with a reason if the "
    "change truly cannot be undone.",
    "orphan-rollback": "A rollback file without its forward migration is never run and usually "
    "means a rename went wrong; rename it to match its migration or delete it.",
    "multiple-heads": "Two branches each added a migration, so the order between them is "
    "undefined and can differ between environments; make one depend on the other (or renumber "
    "it) so history is a single line.",
    "unknown-dependency": "yoyo refuses to load a migration whose dependency does not exist, so "
    "every migrate would fail; name the other migration's file without `.sql`, separating ids "
    "with spaces (yoyo does not split on commas).",
    "index-not-concurrent": "CREATE INDEX takes a SHARE lock that blocks every write to the "
    "table until the index is built; use CREATE INDEX CONCURRENTLY in a migration marked "
    "`-- transactional: false`.",
    "concurrently-in-transaction": "CONCURRENTLY statements cannot run inside a transaction "
    "block, and yoyo wraps every migration in one unless its header says "
    "`-- transactional: false`; add that header, and keep such a migration to statements that "
    "are safe to re-run (IF NOT EXISTS / IF EXISTS).",
    "not-null-without-default": "Adding a NOT NULL column without a DEFAULT fails on any table "
    "that already has rows; give it a constant DEFAULT (instant since PostgreSQL 11), or add it "
    "nullable, backfill, then enforce NOT NULL.",
    "column-type-change": "Changing a column's type usually rewrites the table and its indexes "
    "under an ACCESS EXCLUSIVE lock that blocks reads and writes; add a new column, backfill it "
    "in batches and switch the application over instead.",
    "column-rename": "Instances still running the previous release query the old name and fail "
    "from the moment this commits; add the new column, write both, backfill, and drop the old "
    "one in a later release.",
    "table-rename": "Instances still running the previous release query the old table name and "
    "fail from the moment this commits; rename in steps (for example leave a view under the old "
    "name) and drop the old name in a later release.",
    "column-drop": "Instances still running the previous release may read or write this column "
    "and fail once it is gone; stop using it in one release, then drop it in a later migration.",
    "constraint-not-valid": "Adding a CHECK or FOREIGN KEY scans the whole table while holding a "
    "lock that blocks writes; add it with NOT VALID (instant), then ALTER TABLE … VALIDATE "
    "CONSTRAINT, which lets reads and writes continue.",
    "constraint-needs-index": "A UNIQUE or PRIMARY KEY constraint builds its index under an "
    "ACCESS EXCLUSIVE lock; first CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … "
    "UNIQUE/PRIMARY KEY USING INDEX, which is instant.",
    "set-not-null": "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock; add "
    "CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, then SET NOT NULL (which then "
    "skips the scan) and drop the check.",
    "missing-lock-timeout": "A statement waiting for a heavy lock queues every later query on "
    "the table behind it, so one long transaction turns the migration into an outage; start the "
    "file with SET lock_timeout = '5s' so it fails fast and can be retried.",
    "bad-opt-out": "An opt-out must name a known rule and say why it is safe, as "
    "`-- lint: allow <rule-id> because <reason>`; until then it suppresses nothing.",
}

_UNSUPPRESSIBLE = frozenset({"syntax-error", "bad-opt-out"})
_MIN_REASON = 10
_ROLLBACK_SUFFIX = ".rollback.sql"
_PREFIX = re.compile(r"^(\d+)\.")
_DEPENDS_HEADER = re.compile(r"^\s*--\s*depends\s*:(.*)$")
_LINT_COMMENT = re.compile(r"^--\s*lint:(.*)$", re.IGNORECASE | re.DOTALL)
_OPT_OUT = re.compile(r"^\s*allow\s+([\w-]+)(?:\s+because\b(.*))?$", re.IGNORECASE | re.DOTALL)
_ZERO = re.compile(r"^\s*0+(\.0*)?\s*[a-z]*\s*$", re.IGNORECASE)
_OFF = frozenset({"false", "off", "no", "0"})


# -- files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """One .sql file of the directory, with yoyo's reading of its headers."""

    name: str
    text: str | None
    directives: dict[str, str]

    @property
    def id(self) -> str:
        return self.name.removesuffix(".sql")

    @property
    def is_rollback(self) -> bool:
        return self.name.endswith(_ROLLBACK_SUFFIX)

    @property
    def in_history(self) -> bool:
        """A forward migration, not a post-apply hook (yoyo runs those after every apply)."""
        return not self.is_rollback and not self.name.startswith("post-apply")

    @property
    def depends(self) -> list[str]:
        return self.directives.get("depends", "").split()

    @property
    def transactional(self) -> bool:
        return self.directives.get("transactional", "true").lower() != "false"


def _load(path: Path) -> _Source:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return _Source(path.name, None, {})
    directives: dict[str, str] = read_sql_migration(str(path))[0]
    return _Source(path.name, text, dict(directives))


def _sources(directory: Path) -> list[_Source]:
    paths = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix == ".sql")
    return [_load(p) for p in paths]


def _finding(file: str, line: int, rule: str, message: str) -> Finding:
    return Finding(file=file, line=line, rule=rule, message=message, why=_WHY[rule])


def _line_at(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


# -- pairing and history -------------------------------------------------------------------


def _pairing_findings(sources: list[_Source]) -> Iterator[Finding]:
    names = {s.name for s in sources}
    for s in sources:
        if s.is_rollback and s.name.removesuffix(_ROLLBACK_SUFFIX) + ".sql" not in names:
            yield _finding(s.name, 1, "orphan-rollback", f"{s.name} has no forward migration")
        elif s.in_history and f"{s.id}.rollback.sql" not in names:
            yield _finding(s.name, 1, "missing-rollback", f"{s.name} has no {s.id}.rollback.sql")


def _history_findings(sources: list[_Source]) -> list[Finding]:
    history = [s for s in sources if s.in_history]
    if not any(s.depends for s in history):
        return list(_prefix_findings(history))
    return [*_unknown_dependencies(history), *_head_findings(history)]


def _prefix_findings(history: list[_Source]) -> Iterator[Finding]:
    groups: dict[str, list[str]] = {}
    for s in history:
        match = _PREFIX.match(s.name)
        if match:
            groups.setdefault(match.group(1), []).append(s.name)
    for prefix, names in groups.items():
        if len(names) > 1:
            message = f"{', '.join(names)} share the prefix {prefix}: two heads of history"
            yield _finding(names[-1], 1, "multiple-heads", message)


def _unknown_dependencies(history: list[_Source]) -> Iterator[Finding]:
    known = {s.id for s in history}
    for s in history:
        for dep in s.depends:
            if dep not in known:
                message = f"{s.id} depends on unknown migration {dep!r}"
                yield _finding(
                    s.name, _depends_line(s.text or "", dep), "unknown-dependency", message
                )


def _depends_line(text: str, dep: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        match = _DEPENDS_HEADER.match(line)
        if match and dep in match.group(1).split():
            return number
    return 1


def _head_findings(history: list[_Source]) -> Iterator[Finding]:
    depended_on = {dep for s in history for dep in s.depends}
    heads = [s for s in history if s.id not in depended_on]
    if len(heads) > 1:
        message = f"{len(heads)} heads: {', '.join(h.id for h in heads)}"
        yield _finding(heads[-1].name, 1, "multiple-heads", message)
    elif not heads and history:
        message = "no head: every migration is depended on, so the dependencies form a cycle"
        yield _finding(history[0].name, 1, "multiple-heads", message)


# -- parsing -------------------------------------------------------------------------------


def _parse(source: _Source) -> tuple[ast.RawStmt, ...] | Finding:
    if source.text is None:
        return _finding(source.name, 1, "syntax-error", f"{source.name} is not valid UTF-8")
    try:
        return parse_sql(source.text)
    except ParseError as err:
        return _finding(
            source.name, _error_line(source.text, err), "syntax-error", str(err.args[0])
        )


def _error_line(text: str, err: ParseError) -> int:
    """The line pglast blames: it reports a 0-based character index, or None at end of input."""
    index = err.args[1] if len(err.args) > 1 else None
    if isinstance(index, int):
        return _line_at(text, index)
    return _line_at(text, len(text.rstrip()))


def _statement_line(text: str, raw: ast.RawStmt) -> int:
    """The line where the statement starts; pglast gives character offsets, past comments."""
    index = raw.stmt_location or 0
    while index < len(text) and text[index].isspace():
        index += 1
    return _line_at(text, index)


# -- statement rules -----------------------------------------------------------------------


@dataclass
class _Scan:
    """What one forward file has done so far, statement by statement."""

    file: str
    transactional: bool
    line: int = 1
    new_tables: set[tuple[str, str]] = field(default_factory=set)
    lock_timeout: bool = False
    first_heavy: tuple[int, str] | None = None
    findings: list[Finding] = field(default_factory=list)

    def add(self, rule: str, message: str) -> None:
        self.findings.append(_finding(self.file, self.line, rule, message))

    def heavy(self, what: str) -> None:
        if not self.lock_timeout and self.first_heavy is None:
            self.first_heavy = (self.line, what)

    def is_new(self, relation: ast.RangeVar | None) -> bool:
        return relation is not None and _key(relation) in self.new_tables


def _key(relation: ast.RangeVar) -> tuple[str, str]:
    return (relation.schemaname or "public", relation.relname or "")


def _name(relation: ast.RangeVar | None) -> str:
    if relation is None:
        return "?"
    return ".".join(p for p in (relation.schemaname, relation.relname) if p)


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


def _on_set(stmt: ast.VariableSetStmt, scan_: _Scan) -> None:
    if stmt.name != "lock_timeout" or stmt.kind != VariableSetKind.VAR_SET_VALUE:
        return
    # SET LOCAL outside a transaction block does nothing, and a zero timeout waits forever.
    if (stmt.is_local and not scan_.transactional) or _is_zero(stmt.args):
        return
    scan_.lock_timeout = True


def _is_zero(args: tuple[Any, ...] | None) -> bool:
    value = getattr(args[0], "val", None) if args else None
    if isinstance(value, ast.Integer):
        return value.ival == 0
    return isinstance(value, ast.String) and bool(_ZERO.match(value.sval or ""))


def _on_create_table(stmt: ast.CreateStmt, scan_: _Scan) -> None:
    if stmt.relation is not None:
        scan_.new_tables.add(_key(stmt.relation))


def _on_create_table_as(stmt: ast.CreateTableAsStmt, scan_: _Scan) -> None:
    if stmt.into is not None and stmt.into.rel is not None:
        scan_.new_tables.add(_key(stmt.into.rel))


def _on_index(stmt: ast.IndexStmt, scan_: _Scan) -> None:
    kind = "CREATE UNIQUE INDEX" if stmt.unique else "CREATE INDEX"
    where = f"{stmt.idxname or '(unnamed)'} on {_name(stmt.relation)}"
    if stmt.concurrent:
        _concurrently(scan_, f"{kind} CONCURRENTLY {where}")
    elif not scan_.is_new(stmt.relation):
        scan_.add("index-not-concurrent", f"{kind} {where} without CONCURRENTLY")
        scan_.heavy(f"{kind} {where}")


def _concurrently(scan_: _Scan, what: str) -> None:
    if scan_.transactional:
        scan_.add("concurrently-in-transaction", f"{what} in a transactional migration")


def _on_drop(stmt: ast.DropStmt, scan_: _Scan) -> None:
    names = ", ".join(".".join(str(p.sval) for p in obj) for obj in stmt.objects or ())
    if stmt.removeType == ObjectType.OBJECT_INDEX and stmt.concurrent:
        _concurrently(scan_, f"DROP INDEX CONCURRENTLY {names}")
    elif stmt.removeType == ObjectType.OBJECT_INDEX:
        scan_.heavy(f"DROP INDEX {names}")
    elif stmt.removeType == ObjectType.OBJECT_TABLE:
        scan_.heavy(f"DROP TABLE {names}")


def _on_truncate(stmt: ast.TruncateStmt, scan_: _Scan) -> None:
    scan_.heavy("TRUNCATE " + ", ".join(_name(r) for r in stmt.relations or ()))


def _on_vacuum(stmt: ast.VacuumStmt, scan_: _Scan) -> None:
    if stmt.is_vacuumcmd and _has_option(stmt.options, "full"):
        tables = ", ".join(_name(r.relation) for r in stmt.rels or ())
        scan_.heavy(f"VACUUM FULL {tables}".rstrip())


def _on_cluster(stmt: ast.ClusterStmt, scan_: _Scan) -> None:
    scan_.heavy(f"CLUSTER {_name(stmt.relation) if stmt.relation else ''}".rstrip())


def _on_reindex(stmt: ast.ReindexStmt, scan_: _Scan) -> None:
    target = _name(stmt.relation) if stmt.relation else (stmt.name or "")
    if _has_option(stmt.params, "concurrently"):
        _concurrently(scan_, f"REINDEX CONCURRENTLY {target}")
    else:
        scan_.heavy(f"REINDEX {target}")


def _on_rename(stmt: ast.RenameStmt, scan_: _Scan) -> None:
    table = _name(stmt.relation)
    if scan_.is_new(stmt.relation):
        if stmt.renameType == ObjectType.OBJECT_TABLE and stmt.relation is not None:
            scan_.new_tables.add((stmt.relation.schemaname or "public", stmt.newname or ""))
        return
    if stmt.renameType == ObjectType.OBJECT_TABLE:
        scan_.add("table-rename", f"RENAME TABLE {table} TO {stmt.newname}")
    elif (
        stmt.renameType == ObjectType.OBJECT_COLUMN and stmt.relationType == ObjectType.OBJECT_TABLE
    ):
        scan_.add("column-rename", f"RENAME COLUMN {table}.{stmt.subname} TO {stmt.newname}")
    elif stmt.renameType != ObjectType.OBJECT_TABCONSTRAINT:
        return
    scan_.heavy(f"ALTER TABLE {table} RENAME")


def _on_alter(stmt: ast.AlterTableStmt, scan_: _Scan) -> None:
    if stmt.objtype != ObjectType.OBJECT_TABLE or scan_.is_new(stmt.relation):
        return
    table = _name(stmt.relation)
    for cmd in stmt.cmds or ():
        _alter_command(cmd, table, scan_)
    scan_.heavy(f"ALTER TABLE {table}")


def _alter_command(cmd: ast.AlterTableCmd, table: str, scan_: _Scan) -> None:
    column = f"{table}.{cmd.name}"
    if cmd.subtype == AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
        _add_column(cmd.def_, table, scan_)
    elif cmd.subtype == AlterTableType.AT_AlterColumnType:
        scan_.add("column-type-change", f"ALTER COLUMN {column} TYPE changes its type")
    elif cmd.subtype == AlterTableType.AT_DropColumn:
        scan_.add("column-drop", f"DROP COLUMN {column}")
    elif cmd.subtype == AlterTableType.AT_SetNotNull:
        scan_.add("set-not-null", f"ALTER COLUMN {column} SET NOT NULL")
    elif cmd.subtype == AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
        _add_constraint(cmd.def_, f"ADD CONSTRAINT {cmd.def_.conname or '(unnamed)'}", table, scan_)


def _add_column(column: ast.ColumnDef, table: str, scan_: _Scan) -> None:
    constraints = [c for c in column.constraints or () if isinstance(c, ast.Constraint)]
    kinds = {c.contype for c in constraints}
    not_null = bool(column.is_not_null) or bool(
        kinds & {ConstrType.CONSTR_NOTNULL, ConstrType.CONSTR_PRIMARY}
    )
    filled = kinds & {
        ConstrType.CONSTR_DEFAULT,
        ConstrType.CONSTR_IDENTITY,
        ConstrType.CONSTR_GENERATED,
    }
    where = f"{table}.{column.colname}"
    if not_null and not filled:
        scan_.add("not-null-without-default", f"ADD COLUMN {where} NOT NULL without a DEFAULT")
    for constraint in constraints:
        _add_constraint(constraint, f"ADD COLUMN {column.colname}", table, scan_)


_CONSTRAINT_NAMES = {
    ConstrType.CONSTR_CHECK: "CHECK",
    ConstrType.CONSTR_FOREIGN: "FOREIGN KEY",
    ConstrType.CONSTR_UNIQUE: "UNIQUE",
    ConstrType.CONSTR_PRIMARY: "PRIMARY KEY",
}


def _add_constraint(constraint: ast.Constraint, what: str, table: str, scan_: _Scan) -> None:
    kind = constraint.contype
    label = f"{what} {_CONSTRAINT_NAMES.get(kind, '') if kind else ''} on {table}"
    if kind in (ConstrType.CONSTR_CHECK, ConstrType.CONSTR_FOREIGN):
        if not constraint.skip_validation:
            scan_.add("constraint-not-valid", f"{label} without NOT VALID")
    elif kind in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY) and not constraint.indexname:
        scan_.add("constraint-needs-index", f"{label} builds its index under an exclusive lock")


_HANDLERS: dict[type[ast.Node], Callable[[Any, _Scan], None]] = {
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


def _statement_findings(
    source: _Source, text: str, stmts: tuple[ast.RawStmt, ...]
) -> list[Finding]:
    scan_ = _Scan(file=source.name, transactional=source.transactional)
    for raw in stmts:
        handler = _HANDLERS.get(type(raw.stmt)) if raw.stmt is not None else None
        if handler is not None:
            scan_.line = _statement_line(text, raw)
            handler(raw.stmt, scan_)
    if scan_.first_heavy is not None:
        line, what = scan_.first_heavy
        message = f"{what} takes a heavy lock with no SET lock_timeout before it"
        scan_.findings.append(_finding(source.name, line, "missing-lock-timeout", message))
    return scan_.findings


# -- opt-outs ------------------------------------------------------------------------------


def _comments(text: str) -> Iterator[tuple[int, str]]:
    """Each `--` comment as (line, text), found by PostgreSQL's own lexer."""
    for token in scan(text):
        if token.name == "SQL_COMMENT":
            yield _line_at(text, token.start), text[token.start : token.end + 1]


def _opt_outs(source: _Source, text: str) -> tuple[set[str], list[Finding]]:
    allowed: set[str] = set()
    bad: list[Finding] = []
    for line, comment in _comments(text):
        match = _LINT_COMMENT.match(comment.strip())
        if match is None:
            continue
        rule, problem = _read_opt_out(match.group(1))
        if problem:
            bad.append(_finding(source.name, line, "bad-opt-out", f"{problem}: {comment.strip()}"))
        else:
            allowed.add(rule)
    return allowed, bad


def _read_opt_out(body: str) -> tuple[str, str]:
    """The rule an opt-out allows, and what is wrong with it (empty when it is fine)."""
    match = _OPT_OUT.match(body.strip())
    if match is None:
        return "", "expected `-- lint: allow <rule-id> because <reason>`"
    rule, reason = match.group(1).lower(), (match.group(2) or "").strip()
    if rule not in RULES:
        return rule, f"unknown rule {rule!r}"
    if rule in _UNSUPPRESSIBLE:
        return rule, f"{rule!r} cannot be opted out of"
    if len(reason) < _MIN_REASON:
        return rule, f"no reason given for allowing {rule!r} (`because` and {_MIN_REASON}+ chars)"
    return rule, ""


# -- per file ------------------------------------------------------------------------------


def _file_findings(source: _Source) -> tuple[list[Finding], set[str]]:
    """A file's own findings and the rules it opts out of."""
    parsed = _parse(source)
    if isinstance(parsed, Finding):
        return [parsed], set()
    if source.is_rollback or source.text is None:
        return [], set()
    allowed, bad = _opt_outs(source, source.text)
    return [*_statement_findings(source, source.text, parsed), *bad], allowed


def check_migrations(directory: Path) -> list[Finding]:
    """All findings for the migrations in `directory`, sorted by file then line."""
    sources = _sources(directory)
    findings = [*_pairing_findings(sources), *_history_findings(sources)]
    allowed: dict[str, set[str]] = {}
    for source in sources:
        own, allowed[source.name] = _file_findings(source)
        findings.extend(own)
    kept = [f for f in findings if f.rule not in allowed.get(f.file, set())]
    return sorted(kept, key=lambda f: (f.file, f.line, f.rule, f.message))
