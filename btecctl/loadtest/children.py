"""The child processes of a run (k6, btecctl's own server): their environment, and the
signal that ends them when btecctl ends, however it ends."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    """SIGTERM to this child when its parent ends (Linux's parent-death signal; elsewhere a
    no-op): a killed btecctl leaves neither load nor server running."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: btecctl's own without btec's settings, k6's option
    variables (`K6_VUS` would change the load) or Sentry's DSN, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BTEC_", "K6_")) and k != "SENTRY_DSN"}  # fmt: skip
    env.update(extra)
    return env
