"""Pure parsers of setting values: rate-limit policies, log levels per logger, the clamd
address and JWT signing keys.

Settings validate these at start-up; they live here, free of the packages that use them
(Redis, logging, clamd, PyJWT), so that `settings` imports none of those packages.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

MIN_SECRET = 32  # characters of a JWT signing key

Failure = Literal["open", "closed"]


@dataclass(frozen=True)
class Policy:
    """`limit` requests per `window` seconds per principal, bursts up to `limit`."""

    name: str
    limit: int
    window: float
    failure: Failure = "open"

    @functools.cached_property
    def interval_ms(self) -> float:
        return self.window * 1000 / self.limit

    @functools.cached_property
    def policy_header(self) -> str:
        return f'"{self.name}";q={self.limit};w={_seconds(self.window)}'

    @classmethod
    def parse(cls, name: str, spec: str, failure: Failure = "open") -> Policy:
        """`30/60` (30 per 60 s), optionally `:open` or `:closed`."""
        rate, _, mode = spec.strip().partition(":")
        limit, _, window = rate.partition("/")
        try:
            mode = mode or failure
            policy = cls(name, int(limit), float(window), mode)  # type: ignore[arg-type]
        except ValueError:
            raise ValueError(
                f"{name}: expected LIMIT/SECONDS[:open|closed], got {spec!r}"
            ) from None
        if policy.limit < 1 or policy.window <= 0 or policy.failure not in ("open", "closed"):
            raise ValueError(f"{name}: expected LIMIT/SECONDS[:open|closed], got {spec!r}")
        return policy


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def parse_levels(spec: str) -> dict[str, int]:
    """`name=LEVEL,name2=LEVEL` as {logger: level}; ValueError naming what is wrong."""
    levels: dict[str, int] = {}
    for item in filter(None, (v.strip() for v in spec.split(","))):
        name, sep, level = item.partition("=")
        number = logging.getLevelName(level.strip().upper())
        if not sep or not name.strip() or not isinstance(number, int):
            raise ValueError(f"{item!r}: expected logger=DEBUG|INFO|WARNING|ERROR")
        levels[name.strip()] = number
    return levels


def parse_clamd_url(url: str) -> tuple[str, str | int]:
    """`unix:///run/clamav/clamd.ctl` or `tcp://127.0.0.1:3310`: ('unix', path) or
    ('tcp:HOST', port)."""
    parts = urlsplit(url)
    if parts.scheme == "unix" and parts.path:
        return "unix", parts.path
    if parts.scheme == "tcp" and parts.hostname and parts.port:
        return f"tcp:{parts.hostname}", parts.port
    raise ValueError("expected unix:///path/to/clamd.sock or tcp://host:port")


def parse_jwt_keys(spec: str) -> dict[str, bytes]:
    """`kid=secret,kid2=secret2` in order; ValueError naming what is wrong (never a secret)."""
    keys: dict[str, bytes] = {}
    for item in filter(None, (v.strip() for v in spec.split(","))):
        kid, sep, secret = item.partition("=")
        kid = kid.strip()
        if not sep or not kid:
            raise ValueError("expected kid=secret pairs, comma-separated")
        if len(secret) < MIN_SECRET:
            raise ValueError(f"the key {kid!r} is shorter than {MIN_SECRET} characters")
        if kid in keys:
            raise ValueError(f"the key id {kid!r} appears twice")
        keys[kid] = secret.encode()
    if not keys:
        raise ValueError("no keys given")
    return keys
