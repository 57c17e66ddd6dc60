"""The child processes of a run (k6, btecctl's own server): their environment, and the
signal that ends them when btecctl ends, however it ends."""

from __future__ import annotations

import os

from server.platform.children import die_with_parent

__all__ = ["child_env", "die_with_parent"]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: btecctl's own without btec's settings, k6's option
    variables (`K6_VUS` would change the load) or Sentry's DSN, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BTEC_", "K6_")) and k != "SENTRY_DSN"}  # fmt: skip
    env.update(extra)
    return env
