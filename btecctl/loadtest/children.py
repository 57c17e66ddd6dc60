"""The environment of a run's child processes (k6, btecctl's own server); the signal that ends
them with btecctl is server.platform.children's."""

from __future__ import annotations

import os


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: btecctl's own without btec's settings, k6's option
    variables (`K6_VUS` would change the load) or Sentry's DSN, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BTEC_", "K6_")) and k != "SENTRY_DSN"}  # fmt: skip
    env.update(extra)
    return env
