"""A run while it runs: a progress bar on a terminal (elapsed of the planned time, requests/s,
p95 and failures so far, VUs), one JSON line per interval on stdout with --json, nothing
otherwise; and the loop that feeds it until k6 ends, where Ctrl-C (or SIGTERM) stops the load
instead of btecctl."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

from btecctl.loadtest.k6 import K6Run, Outcome
from btecctl.output import emit_json, err_console


class Live:
    """Where the ticks go: a rich bar on stderr when it is a terminal, JSON lines with
    --json, nowhere otherwise. The ticks are kept for the summary's series."""

    def __init__(self, title: str, total: float, as_json: bool) -> None:
        self.as_json = as_json
        self.title, self.total = title, total
        self.series: list[dict[str, Any]] = []
        self._bar: Progress | None = None
        if not as_json and err_console.is_terminal:
            self._bar = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                TextColumn("{task.fields[figures]}"), console=err_console, transient=True,
            )  # fmt: skip
            self._task = self._bar.add_task(title, total=total, figures="starting k6…")

    def __enter__(self) -> Live:
        if self._bar is not None:
            self._bar.start()
        elif not self.as_json:  # a log, not a terminal: say once what runs
            err_console.print(f"{self.title}: {self.total:g} s of load…", highlight=False)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, tick: dict[str, Any]) -> None:
        self.series.append(tick)
        if self.as_json:
            emit_json({"event": "progress", **tick})
        elif self._bar is not None:
            p95 = "-" if tick["p95_ms"] is None else f"{tick['p95_ms']:.1f} ms"
            figures = (f"{tick['rps']:,.0f} req/s  p95 {p95}  failed {tick['failed_total']:,}"
                       f"  VUs {tick['vus']}")  # fmt: skip
            self._bar.update(self._task, completed=tick["elapsed_s"], figures=figures)

    def say(self, message: str) -> None:
        if self.as_json:
            emit_json({"event": "note", "message": message})
        else:
            err_console.print(message, highlight=False)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt in the main thread, even where btecctl was
    started with SIGINT ignored (a background job of a script, a test runner's worker); the
    previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread: nothing to set from another
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def drive(k6: K6Run, live: Live, every: float) -> Outcome:
    """Tick `live` every `every` seconds until k6 ends. A first Ctrl-C stops the load (k6
    still judges what it measured and writes its summary), a second kills k6."""
    started = last = time.monotonic()
    while True:
        try:
            while k6.running():
                k6.join(max(0.0, last + every - time.monotonic()))
                now = time.monotonic()
                if now - last >= every or not k6.running():
                    live.update(k6.stream.tick(now - last).as_dict(now - started))
                    last = now
            return k6.finish()
        except KeyboardInterrupt:
            live.say("interrupted: stopping the load (Ctrl-C again kills k6)…")
            k6.interrupt()
