"""Representative rows for any schema, from its catalogs: used by `btecctl db migrate-test`.

Written by hand because no library seeds an arbitrary PostgreSQL schema from its catalogs
while respecting NOT NULL, foreign keys and enum-like CHECK constraints; faker-style libraries
only make values, and the catalog reading is the work here.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from server.platform.pgnames import YOYO_TABLES

COLUMNS_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), t.typtype::text,
       a.attnotnull, (d.adbin IS NOT NULL OR a.attidentity <> '' OR a.attgenerated <> ''),
       a.attgenerated <> '', a.atttypid
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped AND NOT (c.relname = ANY(%(yoyo)s))
ORDER BY c.relname, a.attnum
"""

FOREIGN_KEYS_SQL = """
SELECT c.relname, a.attname, rc.relname, ra.attname
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_class rc ON rc.oid = con.confrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN LATERAL unnest(con.conkey, con.confkey) AS k(attnum, fattnum) ON true
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
JOIN pg_attribute ra ON ra.attrelid = con.confrelid AND ra.attnum = k.fattnum
WHERE n.nspname = current_schema() AND con.contype = 'f'
"""

CHECKS_SQL = """
SELECT c.relname, pg_get_constraintdef(con.oid)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND con.contype = 'c'
"""

_LITERAL = re.compile(r"'((?:[^']|'')*)'::")


@dataclass
class Column:
    name: str
    type: str
    kind: str  # pg_type.typtype: b base, e enum, d domain, ...
    not_null: bool
    has_default: bool
    generated: bool
    type_oid: int
    choices: list[str] | None = None
    references: tuple[str, str] | None = None
    low: int | None = None  # from CHECK (col >= low) / BETWEEN
    high: int | None = None
    pattern: bool = False  # a CHECK matches it against a regex: keep values plain ASCII
    length: int | None = None  # from CHECK (length(col) = N): a digest, a fixed-size code
    later: bool = False  # from CHECK (col > other): one step past the other column's value


def _base_value(col: Column, i: int) -> Any:
    t = col.type
    if col.choices:
        return col.choices[i % len(col.choices)]
    if t in ("smallint", "integer", "bigint") or t.startswith("numeric"):
        low = col.low if col.low is not None else (1 if col.high is not None else None)
        if low is None:
            return i
        span = (col.high - low + 1) if col.high is not None else i
        return low + (i - 1) % max(span, 1)
    if t in ("real", "double precision"):
        if col.high is not None:  # within [low, high]: a score, a ratio
            low = col.low or 0
            return low + (col.high - low) * (i % 10) / 10
        return i + 0.5
    if t == "boolean":
        return i % 2 == 0
    if t.startswith(("timestamp", "date")):
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=i)
    if t in ("json", "jsonb"):
        return json.dumps({"n": i, "note": f"sample {i} ✓"})
    if t == "uuid":
        return uuid.UUID(int=i)
    if t == "bytea":
        raw = f"sample {i}".encode()
        return raw.ljust(col.length, b"\x00")[: col.length] if col.length else raw
    if t.startswith(("text", "character", "citext")):
        limit = re.search(r"\((\d+)\)", t)
        value = f"{col.name}{i}" if col.pattern else f"{col.name}-{i}-é"
        if col.length:
            value = value.ljust(col.length, "x")[: col.length]
        return value[: int(limit.group(1))] if limit else value
    return None


def _bounds(col: Column, definition: str) -> None:
    """Integer bounds and regex checks on `col` in a CHECK's definition."""
    name = re.escape(col.name)
    number = r"\(?(-?\d+)\)?(?:::[a-z ]+)?"  # 5, or (5)::double precision
    if low := re.search(rf"\({name} >= {number}\)", definition):
        col.low = int(low.group(1))
    if high := re.search(rf"\({name} <= {number}\)", definition):
        col.high = int(high.group(1))
    if re.search(rf"\({name} ~\*? ", definition):
        col.pattern = True
    if exact := re.search(rf"\((?:octet_)?length\({name}\) = (\d+)\)", definition):
        col.length = int(exact.group(1))
    if re.search(rf"\({name} > \w+\)|\(\w+ < {name}\)", definition):
        col.later = True


class Seeder:
    """Inserts `rows` rows into every table, parents before children."""

    def __init__(self, conn: psycopg.Connection[Any], rows: int = 20) -> None:
        self.conn = conn
        self.rows = rows
        self.tables = self._read_columns()
        self._read_constraints()

    def _read_columns(self) -> dict[str, list[Column]]:
        tables: dict[str, list[Column]] = {}
        for row in self.conn.execute(COLUMNS_SQL, {"yoyo": list(YOYO_TABLES)}):
            table, *rest = row
            tables.setdefault(table, []).append(Column(*rest))
        return tables

    def _read_constraints(self) -> None:
        by_name = {t: {c.name: c for c in cols} for t, cols in self.tables.items()}
        for table, column, ref_table, ref_column in self.conn.execute(FOREIGN_KEYS_SQL):
            if table in by_name and column in by_name[table]:
                by_name[table][column].references = (ref_table, ref_column)
        for table, definition in self.conn.execute(CHECKS_SQL):
            enum_like = "= ANY (ARRAY[" in definition or " = '" in definition
            literals = (
                [m.replace("''", "'") for m in _LITERAL.findall(definition)] if enum_like else []
            )
            for name, col in by_name.get(table, {}).items():
                if literals and re.search(rf"\b{re.escape(name)}\b", definition):
                    col.choices = literals
                _bounds(col, definition)
        for cols in by_name.values():
            for col in cols.values():
                if col.kind == "e":
                    col.choices = self._enum_labels(col.type_oid)

    def _enum_labels(self, type_oid: int) -> list[str]:
        rows = self.conn.execute(
            "SELECT enumlabel FROM pg_enum WHERE enumtypid = %s ORDER BY enumsortorder",
            (type_oid,),
        )
        return [r[0] for r in rows]

    def order(self) -> list[str]:
        """Tables with every referenced table first (self-references ignored)."""
        done: list[str] = []
        pending = dict(self.tables)
        while pending:
            ready = [
                t
                for t, cols in pending.items()
                if all(
                    c.references is None or c.references[0] in done or c.references[0] == t
                    for c in cols
                )
            ]
            if not ready:  # a reference cycle: insert the rest as they come
                ready = sorted(pending)
            for t in sorted(ready):
                done.append(t)
                pending.pop(t)
        return done

    def seed(self, progress: Callable[[str], None] | None = None) -> dict[str, int]:
        """Insert the rows; return rows inserted per table (tables it could not fill get 0)."""
        inserted: dict[str, int] = {}
        for table in self.order():
            inserted[table] = self._seed_table(table)
            if progress is not None:
                progress(table)
        return inserted

    def _seed_table(self, table: str) -> int:
        cols = [c for c in self.tables[table] if not c.generated]
        chosen = [c for c in cols if not c.has_default or c.references or c.choices]
        parents = {c.name: self._parent_values(c) for c in chosen if c.references}
        # A second reference to the same table starts one row further on: a pair of
        # different rows (a CHECK may require them to differ, or to be in order).
        shift: dict[str, int] = {}
        for c in chosen:
            if c.references is not None:
                shift[c.name] = sum(
                    1 for o in chosen[: chosen.index(c)] if o.references == c.references
                )
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(c.name) for c in chosen),
            sql.SQL(", ").join(sql.Placeholder() * len(chosen)),
        )
        count = 0
        for i in range(1, self.rows + 1):
            values = [self._value(c, i + shift.get(c.name, 0), parents.get(c.name)) for c in chosen]
            if any(v is None and c.not_null for v, c in zip(values, chosen, strict=True)):
                break
            try:
                with self.conn.transaction():
                    self.conn.execute(query, values)
                count += 1
            except psycopg.errors.IntegrityError:
                continue
        return count

    def _parent_values(self, col: Column) -> list[Any]:
        if col.references is None:
            raise RuntimeError(f"{col.name} references no table")
        ref_table, ref_col = col.references
        rows = self.conn.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY 1 LIMIT 1000").format(
                sql.Identifier(ref_col), sql.Identifier(ref_table)
            )
        )
        return [r[0] for r in rows]

    @staticmethod
    def _value(col: Column, i: int, parents: list[Any] | None) -> Any:
        if parents is not None:
            return parents[i % len(parents)] if parents else None
        value = _base_value(col, i)
        if col.later and isinstance(value, dt.datetime):
            return value + dt.timedelta(days=1)
        if col.later and isinstance(value, int) and not isinstance(value, bool):
            return value + 1
        return value
