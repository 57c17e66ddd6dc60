"""SQL, one module per area; every function takes the connection, so callers own transactions."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from asyncpg.pool import PoolConnectionProxy

Conn = PoolConnectionProxy | Any  # a pooled or a plain asyncpg connection
# How services reach the database: `async with db() as conn:` (the caller decides pooled or not).
Connect = Callable[[], contextlib.AbstractAsyncContextManager[Any]]
