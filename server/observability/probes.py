"""What a health check is: a named probe and what it observed. Each package offers probes of
its own resources; services.health runs them and makes the health document."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

Status = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Observation:
    """What one check saw. A check raises to report failure."""

    value: float | int | str | None
    unit: str | None = None
    status: Status = "pass"
    output: str | None = None


@dataclass(frozen=True)
class Check:
    """One named check. `critical` checks decide readiness; others can only warn."""

    key: str
    component_type: str
    probe: Callable[[], Awaitable[Observation]]
    critical: bool = True


async def timed(probe: Callable[[], Awaitable[object]]) -> float:
    """Milliseconds `probe` took."""
    started = time.perf_counter()
    await probe()
    return round((time.perf_counter() - started) * 1000, 3)


def threshold(value: float, warn_at: float) -> Status:
    return "warn" if value >= warn_at else "pass"
