"""Child processes that never outlive the process that started them: each runs in a process
group of its own (a terminal's Ctrl-C reaches its parent alone, which decides), gets SIGTERM
when its parent dies however it dies (Linux's parent-death signal), and is stopped with its
whole group when its parent stops early.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess  # nosec B404 # stops processes this one started; runs nothing

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
GRACE_SECONDS = 5.0


def die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    """SIGTERM to this child when its parent ends (Linux's parent-death signal; elsewhere a
    no-op): a killed parent leaves no child running. Set in the child between fork and exec
    (Popen's preexec_fn), by the main thread, which lives as long as the process."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_group(proc: subprocess.Popen[str], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM to the child's process group (it was started with start_new_session), SIGKILL
    to what is left after `grace` seconds; the child is reaped (no zombie)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()
