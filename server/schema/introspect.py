"""Schema snapshots from the PostgreSQL catalogs, and what differs between two of them."""

from __future__ import annotations

from typing import Any

import psycopg

from server.platform.pgnames import YOYO_TABLES

Snapshot = dict[str, dict[str, Any]]

_NAMESPACE = "n.nspname = current_schema()"
_NOT_YOYO = "NOT (c.relname = ANY(%(yoyo)s))"

# One query per kind of object: key -> description. Keys name the object; descriptions are
# what must be equal for two schemas to be the same.
QUERIES: dict[str, str] = {
    "table": f"""
        SELECT c.relname, c.relkind::text || ' ' || c.relpersistence::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_NAMESPACE} AND c.relkind IN ('r', 'p', 'f') AND {_NOT_YOYO}""",  # nosec B608 # only the constant predicates above
    "column": f"""
        SELECT c.relname || '.' || a.attname,
               concat_ws(' | ', format_type(a.atttypid, a.atttypmod),
                         CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END,
                         'default ' || pg_get_expr(d.adbin, d.adrelid),
                         NULLIF('identity ' || a.attidentity::text, 'identity '),
                         NULLIF('generated ' || a.attgenerated::text, 'generated '),
                         'position ' || row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum))
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE {_NAMESPACE} AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
          AND a.attnum > 0 AND NOT a.attisdropped AND {_NOT_YOYO}""",  # nosec B608 # only the constant predicates above
    "constraint": f"""
        SELECT c.relname || '.' || con.conname,
               con.contype::text || ' ' || pg_get_constraintdef(con.oid)
               || CASE WHEN con.convalidated THEN '' ELSE ' (not validated)' END
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_NAMESPACE} AND {_NOT_YOYO}""",  # nosec B608 # only the constant predicates above
    "index": f"""
        SELECT i.relname, pg_get_indexdef(i.oid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class c ON c.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = i.relnamespace
        WHERE {_NAMESPACE} AND {_NOT_YOYO}""",  # nosec B608 # only the constant predicates above
    "sequence": f"""
        SELECT c.relname,
               concat_ws(' ', s.seqtypid::regtype::text, s.seqstart, s.seqincrement,
                         s.seqmin, s.seqmax, s.seqcycle)
        FROM pg_sequence s
        JOIN pg_class c ON c.oid = s.seqrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_NAMESPACE} AND NOT c.relname LIKE ANY(%(yoyo_like)s)""",  # nosec B608 # only the constant predicates above
    "view": f"""
        SELECT c.relname, c.relkind::text || ' ' || pg_get_viewdef(c.oid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_NAMESPACE} AND c.relkind IN ('v', 'm')""",  # nosec B608 # only the constant predicates above
    "trigger": f"""
        SELECT c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_NAMESPACE} AND NOT t.tgisinternal""",  # nosec B608 # only the constant predicates above
    "enum": f"""
        SELECT t.typname, string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
        FROM pg_type t
        JOIN pg_enum e ON e.enumtypid = t.oid
        JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE {_NAMESPACE}
        GROUP BY t.typname""",  # nosec B608 # only the constant predicates above
    "function": f"""
        SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               md5(pg_get_functiondef(p.oid))
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {_NAMESPACE} AND p.prokind IN ('f', 'p')""",  # nosec B608 # only the constant predicates above
    "extension": """
        SELECT extname, extversion FROM pg_extension WHERE extname <> 'plpgsql'""",
}


def snapshot(conn: psycopg.Connection[Any]) -> Snapshot:
    """Every schema object of the current schema (yoyo's own tables left out)."""
    params = {
        "yoyo": list(YOYO_TABLES),
        "yoyo_like": [f"{t}%" for t in YOYO_TABLES],
    }
    result: Snapshot = {}
    for kind, sql in QUERIES.items():
        rows = conn.execute(sql, params if "%(" in sql else None).fetchall()
        result[kind] = {str(k): v for k, v in rows}
    return result


def differences(before: Snapshot, after: Snapshot) -> list[str]:
    """Human-readable differences, one per object, e.g. `index x: left behind`."""
    found: list[str] = []
    for kind in QUERIES:
        old, new = before.get(kind, {}), after.get(kind, {})
        for key in sorted(set(old) | set(new)):
            if key not in new:
                found.append(f"{kind} {key}: missing (was: {old[key]})")
            elif key not in old:
                found.append(f"{kind} {key}: left behind ({new[key]})")
            elif old[key] != new[key]:
                found.append(f"{kind} {key}: changed from {old[key]!r} to {new[key]!r}")
    return found


def tables(snap: Snapshot) -> list[str]:
    return sorted(snap.get("table", {}))


def columns(snap: Snapshot, table: str) -> list[str]:
    """The table's columns in their position order."""
    prefix = table + "."
    found = [
        (int(desc.rsplit("position ", 1)[1]), key[len(prefix) :])
        for key, desc in snap.get("column", {}).items()
        if key.startswith(prefix)
    ]
    return [name for _, name in sorted(found)]
