"""The process's own health: event loop lag, disk and memory use."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from pathlib import Path

import psutil

from server.config.settings import Settings
from server.observability.probes import Check, Observation, threshold


class LoopMonitor:
    """Samples event-loop lag: how late a short sleep wakes up."""

    def __init__(self, interval: float = 0.25, window: int = 20) -> None:
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=window)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.samples.append(max(0.0, time.perf_counter() - started - self.interval))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="btec-loop-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def lag_ms(self) -> float:
        return round(max(self.samples, default=0.0) * 1000, 3)


def health_checks(settings: Settings, monitor: LoopMonitor) -> list[Check]:
    """Disk use of the data dir, memory use, and event loop lag, each against its threshold."""
    data_dir = settings.data_dir

    async def disk() -> Observation:
        target = data_dir if data_dir.exists() else Path.cwd()
        used = psutil.disk_usage(str(target)).percent
        return Observation(used, "percent", threshold(used, settings.disk_warn_percent))

    async def memory() -> Observation:
        used = psutil.virtual_memory().percent
        return Observation(used, "percent", threshold(used, settings.memory_warn_percent))

    async def loop_lag() -> Observation:
        lag = monitor.lag_ms
        return Observation(lag, "ms", threshold(lag, settings.eventloop_lag_warn_ms))

    return [
        Check("disk:utilization", "system", disk, critical=False),
        Check("memory:utilization", "system", memory, critical=False),
        Check("eventloop:lag", "system", loop_lag, critical=False),
    ]
