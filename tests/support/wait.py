"""Waiting on a condition instead of for a while: poll a probe until what it returns is what
the test waits for, with a deadline and a message that says what never happened.

Written here rather than taken from a retry library (none is a dependency): the tests need
only this loop, and a failure that shows the last value seen.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


def _failure(message: str, timeout: float, last: Any) -> AssertionError:
    what = message or "the condition"
    return AssertionError(f"{what}: not so after {timeout} s (last seen: {last!r})")


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], object] = ...,
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str = ...,
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T],
    until: Callable[[T], object] = ...,
    *,
    timeout: float = ...,
    interval: float = ...,
    message: str = ...,
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    until: Callable[[Any], object] = bool,
    *,
    timeout: float = 20,
    interval: float = 0.05,
    message: str = "",
) -> Any:
    """What `probe` (a function or a coroutine function) returns, once `until` holds for it.
    The probe runs at least once, even with no time to wait; past `timeout` seconds the
    test fails with `message` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise _failure(message, timeout, value)
        await asyncio.sleep(interval)


def eventually_sync(
    probe: Callable[[], T],
    until: Callable[[T], object] = bool,
    *,
    timeout: float = 20,
    interval: float = 0.05,
    message: str = "",
) -> T:
    """`eventually` for code outside an event loop (threads, subprocesses, blocking clients)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() >= deadline:
            raise _failure(message, timeout, value)
        time.sleep(interval)
