"""Rate-limit policies: `LIMIT/SECONDS[:open|closed]` specs, parsed without touching Redis.

Settings validate specs at start-up, so this module stays free of the Redis client.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

Failure = Literal["open", "closed"]


@dataclass(frozen=True)
class Policy:
    """`limit` requests per `window` seconds per principal, bursts up to `limit`."""

    name: str
    limit: int
    window: float
    failure: Failure = "open"

    @functools.cached_property
    def interval_ms(self) -> float:
        return self.window * 1000 / self.limit

    @functools.cached_property
    def policy_header(self) -> str:
        return f'"{self.name}";q={self.limit};w={_seconds(self.window)}'

    @classmethod
    def parse(cls, name: str, spec: str, failure: Failure = "open") -> Policy:
        """`30/60` (30 per 60 s), optionally `:open` or `:closed`."""
        rate, _, mode = spec.strip().partition(":")
        limit, _, window = rate.partition("/")
        try:
            mode = mode or failure
            policy = cls(name, int(limit), float(window), mode)  # type: ignore[arg-type]
        except ValueError:
            raise ValueError(
                f"{name}: expected LIMIT/SECONDS[:open|closed], got {spec!r}"
            ) from None
        if policy.limit < 1 or policy.window <= 0 or policy.failure not in ("open", "closed"):
            raise ValueError(f"{name}: expected LIMIT/SECONDS[:open|closed], got {spec!r}")
        return policy


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
