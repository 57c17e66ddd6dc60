"""Pure parsers of setting values: rate-limit policies, log levels per logger, the clamd
address and JWT signing keys, and how strong a secret is.

Settings validate these at start-up; they live here, free of the packages that use them
(Redis, logging, clamd, PyJWT), so that `settings` imports none of those packages.
"""

from __future__ import annotations

import functools
import logging
import math
import string
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

MIN_SECRET = 32  # characters of a JWT signing key
HEX = frozenset(string.hexdigits)
URLSAFE = frozenset(string.ascii_letters + string.digits + "-_=+/")

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


STRONG_BITS = 256


def estimated_bits(secret: str) -> float:
    """A generous estimate of a secret's entropy in bits: its length times log2 of the
    alphabet its characters come from (hex, URL-safe base64, printable ASCII, or wider), as
    if each were drawn at random from it; but where far fewer distinct characters appear than
    random draws would show (under half as many), only the ones that appear count. So
    `openssl rand -hex 32` and `secrets.token_urlsafe(32)` reach 256, while 32 x "a" (0 bits)
    or a short phrase repeated do not."""
    if not secret:
        return 0.0
    if all(c in HEX for c in secret):
        alphabet = 16
    elif all(c in URLSAFE for c in secret):
        alphabet = 64
    elif secret.isascii() and secret.isprintable():
        alphabet = 95
    else:
        alphabet = 256
    length, distinct = len(secret), len(set(secret))
    expected = alphabet * (1 - (1 - 1 / alphabet) ** length)
    if distinct < expected / 2:
        alphabet = distinct
    return length * math.log2(alphabet) if alphabet > 1 else 0.0


def weak_secret(secret: str) -> str | None:
    """Why `secret` is too weak to sign with, or None."""
    bits = estimated_bits(secret)
    if bits >= STRONG_BITS:
        return None
    return (
        f"has about {bits:.0f} bits of entropy, fewer than {STRONG_BITS}: make one with "
        "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`"
    )
