"""What tests need of the machine and of btecctl's environment: the checkout, ports, Debian
tools, the BTEC_* variables equivalent to a Settings, and the migrations' ids."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

from server.config.settings import Settings
from server.schema.migrations import MIGRATIONS_DIR

ROOT = Path(__file__).resolve().parents[2]  # the checkout: README, docs/, runbooks/

# Every migration's id, in order; tests read them here so a new migration needs no edits.
MIGRATION_IDS = sorted(
    p.name.removesuffix(".sql")
    for p in MIGRATIONS_DIR.glob("*.sql")
    if not p.name.endswith(".rollback.sql")
)


def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port() -> int:
    """A loopback port for a server the test starts."""
    return closed_port()


def required_tool(name: str, package: str, require_env: str) -> str:
    """A Debian tool a test drives (promtool, clamd): skipped with the reason where it is not
    installed, failed instead when `require_env` is set (CI installs them and sets it)."""
    found = shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin")
    if found is None:
        if os.environ.get(require_env):
            pytest.fail(f"{name} is not installed: apt-get install {package}")
        pytest.skip(f"{name} is not installed (apt-get install {package})")
    return found


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """BTEC_* variables equivalent to `settings` for a btecctl run."""
    env = {
        "BTEC_ENV": settings.env,
        "BTEC_DATA_DIR": str(settings.data_dir),
        # The suite's is 0, a catcher of the process's own: on a fixed port, a worker of one
        # test would hand its mail to a catcher of another test running beside it.
        "BTEC_MAIL_CATCHER_PORT": str(settings.mail_catcher_port),
    }
    if settings.database_url is not None:
        env["BTEC_DATABASE_URL"] = settings.database_url.get_secret_value()
    if settings.redis_url is not None:
        env["BTEC_REDIS_URL"] = settings.redis_url.get_secret_value()
    env.update(extra)
    return env


def database(settings: Settings) -> str:
    """The settings' database URL, for a test's own psycopg connection."""
    assert settings.database_url is not None
    return settings.database_url.get_secret_value()
