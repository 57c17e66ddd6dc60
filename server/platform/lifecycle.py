"""Process lifecycle state shared by health checks, the request frame and the shutdown
sequence: whether the server drains (readiness fails, answers close their connections), whether
its listener has closed (a new request on a kept-alive connection is refused, unread), and the
requests in flight, which the shutdown waits for."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web

LIFECYCLE: web.AppKey[Lifecycle] = web.AppKey("lifecycle")


@dataclass
class Lifecycle:
    """When the app started and whether it is draining (readiness fails while draining)."""

    started_monotonic: float = field(default_factory=time.monotonic)
    draining: bool = False
    closed: bool = False  # the listener is closed: requests already in flight finish
    in_flight: int = 0  # requests whose handlers run, bodies still arriving included
    refused: int = 0  # requests refused with shutting_down
    _idle: asyncio.Event | None = None

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self, seconds: float) -> int:
        """Until no request is in flight, at most `seconds`; how many still are."""
        if self.in_flight:
            self._idle = asyncio.Event()
            try:
                async with asyncio.timeout(seconds):
                    await self._idle.wait()
            except TimeoutError:
                pass
        return self.in_flight

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic
