"""SQL, one module per area; every function takes the connection, so callers own transactions."""

from __future__ import annotations

from typing import Any

from asyncpg.pool import PoolConnectionProxy

Conn = PoolConnectionProxy | Any  # a pooled or a plain asyncpg connection
