"""Process lifecycle state shared by health checks and the shutdown sequence."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

LIFECYCLE: web.AppKey[Lifecycle] = web.AppKey("lifecycle")


@dataclass
class Lifecycle:
    """When the app started and whether it is draining (readiness fails while draining)."""

    started_monotonic: float = field(default_factory=time.monotonic)
    draining: bool = False

    @property
    def uptime_seconds(self) -> float:
        return time.monotonic() - self.started_monotonic
