"""Health checks: run concurrently with per-check timeouts, cached, single-flight.

The document follows the IETF draft "Health Check Response Format for HTTP APIs".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from server.domain.text import describe
from server.observability.probes import Check, Observation, Status

HEALTH: web.AppKey[HealthService] = web.AppKey("health")

_RANK: dict[str, int] = {"pass": 0, "warn": 1, "fail": 2}  # nosec B105 # health statuses, not a password


@dataclass(frozen=True)
class CheckResult:
    key: str
    component_type: str
    critical: bool
    status: Status
    observed_value: float | int | str | None
    observed_unit: str | None
    time: str
    output: str | None = None

    def as_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "componentType": self.component_type,
            "observedValue": self.observed_value,
            "observedUnit": self.observed_unit,
            "status": self.status,
            "time": self.time,
        }
        if self.output:
            entry["output"] = self.output
        return entry


@dataclass(frozen=True)
class Report:
    status: Status
    ready: bool
    results: tuple[CheckResult, ...]
    checked_at: float = field(default_factory=time.monotonic)

    def document(
        self, *, version: str, release: str, service_id: str, environment: str, uptime: float,
        notes: list[str],
    ) -> dict[str, Any]:  # fmt: skip
        checks: dict[str, list[dict[str, Any]]] = {}
        for r in self.results:
            checks.setdefault(r.key, []).append(r.as_dict())
        doc: dict[str, Any] = {
            "status": self.status,
            "version": version.split(".")[0],
            "releaseId": release,
            "serviceId": service_id,
            "description": "btec API",
            # Not in the IETF draft: which deployment answers, so that tools such as
            # `btecctl perf run --url` can refuse production.
            "environment": environment,
            "uptime": round(uptime, 3),
            "checks": checks,
        }
        if notes:
            doc["notes"] = notes
        return doc


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def aggregate(results: Sequence[CheckResult]) -> tuple[Status, bool]:
    """Overall status and readiness: a failing optional check only warns."""
    worst = 0
    ready = True
    for r in results:
        rank = _RANK[r.status]
        if not r.critical:
            rank = min(rank, _RANK["warn"])
        elif r.status == "fail":
            ready = False
        worst = max(worst, rank)
    status: Status = ("pass", "warn", "fail")[worst]
    return status, ready


class HealthService:
    """Runs the checks at most once per `cache_seconds`, however many callers ask."""

    def __init__(
        self,
        checks: Sequence[Check],
        *,
        timeout: float,
        cache_seconds: float,
        on_result: Callable[[CheckResult], None] | None = None,
    ) -> None:
        self.checks = list(checks)
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._on_result = on_result
        self._cached: Report | None = None
        self._inflight: asyncio.Future[Report] | None = None

    def add(self, check: Check) -> None:
        self.checks.append(check)

    async def report(self, *, fresh: bool = False) -> Report:
        cached = self._cached
        if (
            not fresh
            and cached is not None
            and time.monotonic() - cached.checked_at < self.cache_seconds
        ):
            return cached
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._run_all())
            self._inflight.add_done_callback(self._finished)
        return await asyncio.shield(self._inflight)

    def _finished(self, fut: asyncio.Future[Report]) -> None:
        self._inflight = None
        if not fut.cancelled() and fut.exception() is None:
            self._cached = fut.result()

    async def _run_all(self) -> Report:
        results = await asyncio.gather(*(self._run_one(c) for c in self.checks))
        status, ready = aggregate(results)
        return Report(status=status, ready=ready, results=tuple(results))

    async def _run_one(self, check: Check) -> CheckResult:
        try:
            async with asyncio.timeout(self.timeout):
                obs = await check.probe()
        except TimeoutError:
            obs = Observation(None, status="fail", output=f"timed out after {self.timeout:g} s")
        except Exception as exc:  # a check must never break the health document
            obs = Observation(None, status="fail", output=describe(exc))
        status: Status = obs.status
        if not check.critical and status == "fail":
            status = "warn"
        result = CheckResult(
            key=check.key,
            component_type=check.component_type,
            critical=check.critical,
            status=status,
            observed_value=obs.value,
            observed_unit=obs.unit,
            time=_now(),
            output=obs.output,
        )
        if self._on_result is not None:
            self._on_result(result)
        return result
