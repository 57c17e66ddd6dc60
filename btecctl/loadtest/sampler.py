"""The server's own figures over the run: its /metrics read every interval in a thread of its
own while k6 loads it, for the report's plots of CPU, memory, the database pool and the job
queue, and for a soak's trend (an RSS that climbs while the load is flat).

One read a second is one small request among thousands, and it is not in k6's counts; a
server whose /metrics refuses the run (no BTEC_METRICS_TOKEN for a --url) is simply not
sampled, and the summary says why.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

Reading = dict[str, Any]


def point(before: Reading, after: Reading, elapsed: float) -> dict[str, Any]:
    """What happened between two readings of /metrics, as one sample."""

    def grew(key: str) -> float:
        return float(after.get(key, 0.0)) - float(before.get(key, 0.0))

    seconds = max(float(after["at"]) - float(before["at"]), 1e-9)
    acquires = grew("db_pool_acquires")
    size, idle = after.get("db_pool_size"), after.get("db_pool_idle")
    rss = after.get("rss_bytes")
    return {
        "elapsed_s": round(elapsed, 1),
        "cpu_percent": round(grew("cpu_seconds") / seconds * 100, 1),
        "rss_mib": None if rss is None else round(float(rss) / 2**20, 1),
        "open_fds": after.get("open_fds"),
        "pool_size": size,
        "pool_in_use": None if size is None or idle is None else size - idle,
        "pool_wait_ms": round(grew("db_pool_acquire_seconds") / acquires * 1000, 3)
        if acquires
        else 0.0,
        "pool_timeouts": grew("db_pool_acquire_timeouts"),
        "queue_depth": after.get("jobs_queued"),
        "in_progress": after.get("requests_in_progress"),
    }


class Sampler:
    """`read()` every `every` seconds until the block ends; `samples` holds the points."""

    def __init__(self, read: Callable[[], Reading], every: float) -> None:
        self.read, self.every = read, every
        self.samples: list[dict[str, Any]] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        started = time.monotonic()
        before = self.read()
        while not self._stop.wait(self.every):
            after = self.read()
            if "error" in after or "error" in before:
                self.error = str(after.get("error") or before.get("error"))
                before = after
                continue
            self.samples.append(point(before, after, time.monotonic() - started))
            before = after
