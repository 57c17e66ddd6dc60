"""What `btecctl security check` reports, and its checks of the loaded settings: pure
functions of a `Settings` and the effective secret values, with no I/O (the checks against a
running server are btecctl/security_check.py's).

Each finding has a stable `id` (scripts and docs key on it), a severity and a one-line message
and fix. No message ever holds a secret's value: only the names of the variables.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from server.config.parsers import STRONG_BITS, estimated_bits, parse_jwt_keys
from server.config.settings import Settings

Severity = Literal["error", "warning", "info"]
RANK: dict[Severity, int] = {"error": 0, "warning": 1, "info": 2}
WEAK_BITS = 128  # below it a token is an error; below STRONG_BITS a warning
MAKE_ONE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
# The operator tokens whose strength is checked, by variable (their Settings field, lowered).
TOKENS = ("BTEC_OPS_TOKEN", "BTEC_METRICS_TOKEN", "BTEC_HEALTH_TOKEN", "BTEC_JOBS_UI_PASSWORD")
# The shortest prefix a trusted proxy network may have: wider ones take in most of the internet.
NARROWEST = {4: 8, 6: 32}
# Left out of a development or test run, where btec makes its own secrets (per data dir) and
# runs embedded servers; and shown there as info instead of a warning.
PRODUCTION_ONLY = ("secrets.ops_token_unset", "secrets.metrics_token_unset",
                   "secrets.health_token_unset", "docs.ui_enabled", "scan.disabled")  # fmt: skip
DOWNGRADED = ("tls.public_url_http", "exposure.docs_ui", "cors.origins_insecure")


@dataclass(frozen=True)
class Finding:
    """One thing the check found: its stable id, how bad it is, what and how to fix it."""

    id: str
    severity: Severity
    message: str
    fix: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


Secrets = Mapping[str, str]  # the effective value of each secret that has one, by variable
Check = Callable[[Settings, Secrets], Iterator[Finding]]


def secret_values(settings: Settings, effective: Mapping[str, str | None]) -> dict[str, str]:
    """Every secret that has a value, by the variable that names it: `effective` (the tokens
    as the server sees them: configured, or the data dir's own), each key of BTEC_JWT_KEYS and
    the jobs UI's password."""
    found = {name: value for name, value in effective.items() if value}
    if settings.jobs_ui_password is not None:
        found["BTEC_JOBS_UI_PASSWORD"] = settings.jobs_ui_password.get_secret_value()
    if settings.jwt_keys is not None:
        for kid, key in parse_jwt_keys(settings.jwt_keys.get_secret_value()).items():
            found[f"BTEC_JWT_KEYS (key {kid!r})"] = key.decode()
    return found


def settings_findings(settings: Settings, secrets: Secrets) -> list[Finding]:
    """What the settings get wrong, worst first."""
    found = [finding for check in CHECKS for finding in check(settings, secrets)]
    return sorted(found, key=lambda f: RANK[f.severity])


def _production(settings: Settings) -> bool:
    return settings.env == "production"


def _environment(settings: Settings, secrets: Secrets) -> Iterator[Finding]:
    if _production(settings):
        return
    yield Finding(
        "settings.not_production", "info",
        f"BTEC_ENV is {settings.env}, not production: secrets are made per data dir and "
        f"PostgreSQL and Redis run embedded; skipped: {', '.join(PRODUCTION_ONLY)}; "
        f"info instead of a warning: {', '.join(DOWNGRADED)}",
        "set BTEC_ENV=production on a deployment (with BTEC_DATABASE_URL, BTEC_REDIS_URL and "
        "BTEC_SECRET_KEY), and run this check with the deployment's settings",
    )  # fmt: skip


def _unset_tokens(settings: Settings, secrets: Secrets) -> Iterator[Finding]:
    if not _production(settings):
        return
    if "BTEC_OPS_TOKEN" not in secrets:
        yield Finding(
            "secrets.ops_token_unset", "warning",
            "BTEC_OPS_TOKEN is unset: /api/v1/ops (the test message, job states) is closed to "
            "everyone",
            f"set BTEC_OPS_TOKEN to a random token ({MAKE_ONE}) if operators need /api/v1/ops",
        )  # fmt: skip
    if "BTEC_METRICS_TOKEN" not in secrets:
        yield Finding(
            "secrets.metrics_token_unset", "warning",
            "BTEC_METRICS_TOKEN is unset: /metrics is closed to everyone, so Prometheus cannot "
            "scrape btec",
            f"set BTEC_METRICS_TOKEN to a random token ({MAKE_ONE}) and give it to Prometheus "
            "as its bearer token",
        )  # fmt: skip
    if "BTEC_HEALTH_TOKEN" not in secrets:
        yield Finding(
            "secrets.health_token_unset", "info",
            "BTEC_HEALTH_TOKEN is unset: /api/v1/health shows its checks only to holders of "
            "BTEC_OPS_TOKEN",
            "set BTEC_HEALTH_TOKEN for monitors that need the checks' details without the ops "
            "token's powers",
        )  # fmt: skip


def _weak(settings: Settings, secrets: Secrets) -> Iterator[Finding]:
    for name in TOKENS:
        value = secrets.get(name)
        if value is None:
            continue
        bits = estimated_bits(value)
        if bits >= STRONG_BITS:
            continue
        yield Finding(
            "secrets.token_weak", "error" if bits < WEAK_BITS else "warning",
            f"{name} has about {bits:.0f} bits of entropy, fewer than "
            f"{WEAK_BITS if bits < WEAK_BITS else STRONG_BITS}: it can be guessed",
            f"set {name} to a random value of {STRONG_BITS} bits: {MAKE_ONE}",
        )  # fmt: skip


def _reused(settings: Settings, secrets: Secrets) -> Iterator[Finding]:
    holders: dict[str, list[str]] = {}
    for name, value in secrets.items():
        holders.setdefault(value, []).append(name)
    for names in holders.values():
        if len(names) < 2:
            continue
        said = " and ".join([", ".join(names[:-1]), names[-1]])
        yield Finding(
            "secrets.reused", "error",
            f"{said} have the same value: whoever holds one has the powers of all (a metrics "
            "token equal to the ops token hands ops access to whatever scrapes /metrics)",
            f"give each of {', '.join(names)} its own random value ({MAKE_ONE}), and rotate "
            "the ones others may have seen",
        )  # fmt: skip


def _tls(settings: Settings, secrets: Secrets) -> Iterator[Finding]:
    if settings.https:
        return
    said = "unset (the listening address)" if settings.public_url is None else "http://"
    yield Finding(
        "tls.public_url_http", "warning" if _production(settings) else "info",
        f"BTEC_PUBLIC_URL is {said}, not https: btec sends no HSTS, and tokens and "
        "passwords cross the network in clear unless a proxy terminates TLS",
        "terminate TLS at the reverse proxy and set BTEC_PUBLIC_URL to the https:// URL "
        "clients use (btec then sends HSTS)",
    )  # fmt: skip


def _proxies(settings: Settings, secrets: Secrets) -> Iterator[Finding]:
    wide = [str(net) for net in settings.trusted_networks if too_wide(net)]
    if not wide:
        return
    yield Finding(
        "proxies.trusted_too_wide", "error",
        f"BTEC_TRUSTED_PROXIES includes {', '.join(wide)}: any client can forge "
        "X-Forwarded-For and so escape the per-address rate limits and sign-in throttling",
        "list only the reverse proxies' own addresses in BTEC_TRUSTED_PROXIES (such as "
        "10.0.0.5/32)",
    )  # fmt: skip


def too_wide(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """Whether a trusted proxy network takes in far more than proxies (shorter than /8, /32)."""
    return network.prefixlen < NARROWEST[network.version]


def _docs(settings: Settings, secrets: Secrets) -> Iterator[Finding]:
    if _production(settings) and settings.docs_ui_served:
        yield Finding(
            "docs.ui_enabled", "warning",
            "BTEC_DOCS_UI=true: Swagger UI is served at /api/docs in production",
            "unset BTEC_DOCS_UI (off in production); clients are still generated from "
            "/api/docs/openapi.json",
        )  # fmt: skip


def _scan(settings: Settings, secrets: Secrets) -> Iterator[Finding]:
    if _production(settings) and settings.scan_disabled:
        yield Finding(
            "scan.disabled", "warning",
            "BTEC_SCAN_DISABLED=true: uploads are never scanned for viruses and are served as "
            "they are",
            "run clamd, set BTEC_CLAMD_URL (unix:///run/clamav/clamd.ctl or tcp://HOST:3310) "
            "and unset BTEC_SCAN_DISABLED",
        )  # fmt: skip


def _smtp(settings: Settings, secrets: Secrets) -> Iterator[Finding]:
    if settings.smtp_url is None:
        return
    parts = urlsplit(settings.smtp_url.get_secret_value())
    starttls = parse_qs(parts.query).get("starttls", ["opportunistic"])[-1]  # as the mailer
    if parts.scheme == "smtp" and parts.username and parts.password and starttls == "off":
        yield Finding(
            "smtp.cleartext", "warning",
            "BTEC_SMTP_URL signs in to the SMTP server with starttls=off: its password and "
            "every message cross the network in clear",
            "set starttls=required in BTEC_SMTP_URL, or use smtps:// (TLS from the first byte)",
        )  # fmt: skip


def _cors(settings: Settings, secrets: Secrets) -> Iterator[Finding]:
    origins = settings.cors_allowed_origins
    if settings.cors_origins is None and origins:
        yield Finding(
            "cors.dev_defaults", "info",
            "BTEC_CORS_ORIGINS is unset: browsers on the dev servers' origins "
            f"({', '.join(origins)}) may call the API; none may in production",
            "set BTEC_CORS_ORIGINS to the front end's own origin (such as "
            "https://app.college.example), or to nothing to allow none",
        )  # fmt: skip
    clear = [o for o in origins if urlsplit(o).scheme == "http" and not _loopback(o)]
    if clear:
        yield Finding(
            "cors.origins_insecure", "warning" if _production(settings) else "info",
            f"BTEC_CORS_ORIGINS allows {', '.join(clear)} over http://: whoever is on the path "
            "to that front end can change its code, and so read and send what its users may",
            "serve the front end over https and list its https:// origin",
        )  # fmt: skip
    local = [o for o in origins if _loopback(o)]
    if _production(settings) and local:
        yield Finding(
            "cors.loopback_origin", "warning",
            f"BTEC_CORS_ORIGINS allows {', '.join(local)} in production: any page a user's own "
            "machine serves there (a dev server, another program) may call the API",
            "list only the deployed front end's origin in BTEC_CORS_ORIGINS",
        )  # fmt: skip


def _loopback(origin: str) -> bool:
    host = urlsplit(origin).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


CHECKS: tuple[Check, ...] = (_environment, _unset_tokens, _weak, _reused, _tls, _proxies, _docs,
                             _scan, _smtp, _cors)  # fmt: skip
