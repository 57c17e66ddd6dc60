"""The secrets an install uses when its settings name none: in production, none at all (what
needs one is refused, and `btecctl security check` says so); in development and test, a
random one made for the data dir on first use and kept in `<data dir>/secrets/<name>`, mode
0600 in a 0700 directory. So no secret is a constant in the source: a development server's
tokens cannot be forged by reading btec's code, and every btecctl command run with the same
data dir finds the same values.

Written whole to a draft and linked into place, so processes starting together agree on one
value: the first link wins, and the others read it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from server.config.settings import Settings

# The settings that fall back to a made secret outside production.
LOCAL = ("secret_key", "ops_token", "metrics_token", "health_token")
BYTES = 32  # 256 bits


def secret(settings: Settings, name: str) -> SecretStr | None:
    """The value of the secret setting `name` (one of LOCAL): as configured; else, outside
    production, the data dir's own; else None."""
    if name not in LOCAL:
        raise ValueError(f"{name} is not a secret btec can make for itself")
    configured: SecretStr | None = getattr(settings, name)
    if configured is not None or settings.env == "production":
        return configured
    return SecretStr(_kept(settings.data_dir / "secrets" / name))


def path_of(settings: Settings, name: str) -> Path:
    """Where the data dir keeps the secret `name` it made."""
    return settings.data_dir / "secrets" / name


def _kept(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(BYTES) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # the first process to link wins
            os.link(draft, path)  # whole or not at all
    finally:
        draft.unlink()
    return path.read_text().strip()
