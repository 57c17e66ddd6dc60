"""Short, safe renderings of errors for logs, job records, health output and the CLI."""

from __future__ import annotations


def describe(exc: BaseException, limit: int = 200) -> str:
    """`Type: first line of the message`, cut to `limit`: no traceback, and messages that run
    on (or carry data further down) are cut short."""
    lines = str(exc).strip().splitlines()
    text = lines[0][:limit] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
