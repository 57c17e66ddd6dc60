"""Per-table row counts and content checksums, to prove data survived an operation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from server.platform.pgnames import YOYO_TABLES

TABLES_SQL = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT (c.relname = ANY(%s))
ORDER BY 1
"""


def app_tables(conn: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in conn.execute(TABLES_SQL, (list(YOYO_TABLES),))]


def row_counts(
    conn: psycopg.Connection[Any], tables: Sequence[str] | None = None
) -> dict[str, int]:
    names = app_tables(conn) if tables is None else list(tables)
    counts: dict[str, int] = {}
    for table in names:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        row = conn.execute(query).fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


def checksum(conn: psycopg.Connection[Any], table: str, columns: Sequence[str]) -> tuple[int, str]:
    """Row count and an md5 over the rows' text, in a stable order, for these columns."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    query = sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) "
        "FROM (SELECT ROW({})::text AS r FROM {}) s"
    ).format(cols, sql.Identifier(table))
    row = conn.execute(query).fetchone()
    if row is None:
        raise RuntimeError("SELECT count(*) returned no row")
    return int(row[0]), str(row[1])


def table_columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (sql.Identifier(table).as_string(conn),),
    )
    return [r[0] for r in rows]


def checksums(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, str]]:
    """Count and checksum of every app table over all its columns."""
    return {t: checksum(conn, t, table_columns(conn, t)) for t in app_tables(conn)}
