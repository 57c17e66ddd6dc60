"""Names and URLs shared by the database tools, without importing any database library."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit, urlunsplit

# yoyo's bookkeeping tables (yoyo.migrations.default_migration_table and friends).
MIGRATION_TABLE = "_yoyo_migration"
YOYO_TABLES = frozenset({MIGRATION_TABLE, "_yoyo_log", "_yoyo_version", "yoyo_lock"})


def with_database(url: str, database: str) -> str:
    """The same server and credentials, naming another database (percent-encoded, as libpq
    and asyncpg decode it: a name may hold any character)."""
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(database, safe="")))


def database_name(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/")) or "postgres"
