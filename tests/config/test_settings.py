"""Settings: typed, frozen, validated with messages that name the variable."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from server.config.parsers import estimated_bits
from server.config.settings import Settings, SettingsError, load_settings
from server.platform import localsecrets

PROD = {
    "BTEC_ENV": "production",
    "BTEC_SECRET_KEY": "kT3v0Qm9ZrX2bW8yHc5NpL1sJd7FgA4uEo6iRt0qVx-_",
    "BTEC_DATABASE_URL": "postgresql://btec:pw@db:5432/btec",
    "BTEC_REDIS_URL": "redis://cache:6379/0",
    "BTEC_CLAMD_URL": "tcp://clamav:3310",
}


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    monkeypatch.setenv("BTEC_ENV_FILE", "")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load(monkeypatch)
    assert s.env == "development"
    assert s.embedded_postgres
    assert s.embedded_redis
    assert s.port == 8080


def test_settings_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load(monkeypatch)
    with pytest.raises(ValidationError):
        s.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BTEC_PORT", "eighty", "BTEC_PORT"),
        ("BTEC_PORT", "70000", "BTEC_PORT"),
        ("BTEC_ENV", "staging", "BTEC_ENV"),
        ("BTEC_DB_POOL_MAX_SIZE", "0", "BTEC_DB_POOL_MAX_SIZE"),
        ("BTEC_DB_POOL_ACQUIRE_TIMEOUT", "-1", "BTEC_DB_POOL_ACQUIRE_TIMEOUT"),
        ("BTEC_SECRET_KEY", "short", "BTEC_SECRET_KEY"),
        ("BTEC_DATABASE_URL", "mysql://x@y/z", "BTEC_DATABASE_URL"),
        ("BTEC_REDIS_URL", "memcached://x", "BTEC_REDIS_URL"),
        ("BTEC_DATABASE_URL", "postgresql://x@127.0.0.1:99999/db", "BTEC_DATABASE_URL"),
        ("BTEC_DATABASE_URL", "postgresql://x@h1:5432,h2:0/db", "BTEC_DATABASE_URL"),
        ("BTEC_REDIS_URL", "redis://127.0.0.1:port/0", "BTEC_REDIS_URL"),
        ("BTEC_PUBLIC_URL", "btec.example", "BTEC_PUBLIC_URL"),
        ("BTEC_LOG_LEVEL", "LOUD", "BTEC_LOG_LEVEL"),
        ("BTEC_METRICS_ENABLED", "perhaps", "BTEC_METRICS_ENABLED"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError) as err:
        load(monkeypatch, **{name: value})
    assert message in str(err.value)


def test_urls_with_good_ports_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load(monkeypatch, BTEC_DATABASE_URL="postgresql://u:p@h1:5432,[::1]:5433/db",
             BTEC_REDIS_URL="unix:///run/redis.sock")  # fmt: skip
    assert s.database_url is not None
    assert s.redis_url is not None


def test_the_jobs_ui_password_keeps_its_old_name(monkeypatch: pytest.MonkeyPatch) -> None:
    old = load(monkeypatch, BTEC_TASKS_UI_PASSWORD="from-before")
    assert old.jobs_ui_password is not None
    assert old.jobs_ui_password.get_secret_value() == "from-before"
    new = load(monkeypatch, BTEC_JOBS_UI_PASSWORD="the-new-name")
    assert new.jobs_ui_password is not None
    assert new.jobs_ui_password.get_secret_value() == "the-new-name"


def test_pool_bounds_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match="BTEC_DB_POOL_MIN_SIZE"):
        load(monkeypatch, BTEC_DB_POOL_MIN_SIZE="20", BTEC_DB_POOL_MAX_SIZE="5")


def test_errors_never_echo_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as err:
        load(monkeypatch, BTEC_DATABASE_URL="mysql://u:topsecretpw@h/d", BTEC_SECRET_KEY="tiny-pw")
    assert "topsecretpw" not in str(err.value)
    assert "tiny-pw" not in str(err.value)


def test_production_refuses_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as err:
        load(monkeypatch, BTEC_ENV="production")
    text = str(err.value)
    for name in ("BTEC_SECRET_KEY", "BTEC_DATABASE_URL", "BTEC_REDIS_URL"):
        assert name in text


def test_production_accepts_real_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load(monkeypatch, **PROD)
    assert not s.embedded_postgres
    assert "pw" not in repr(s)  # secrets stay masked in reprs and logs


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BTEC_SECRET_KEY", "a" * 32),  # the audit's example: 0 bits
        ("BTEC_SECRET_KEY", "a" * 200),  # long, and still one character
        ("BTEC_SECRET_KEY", "correct-horse-battery-staple-012"),  # a phrase: 192 bits
        ("BTEC_SECRET_KEY", "0123456789abcdef" * 3),  # hex, but 48 x 4 = 192 bits
        ("BTEC_JWT_KEYS", "k1=" + "ab" * 32),  # each signing key is judged
    ],
)
def test_production_refuses_weak_signing_keys(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    with pytest.raises(SettingsError) as err:
        load(monkeypatch, **{**PROD, name: value})
    assert name in str(err.value)
    assert "fewer than 256" in str(err.value)
    assert value not in str(err.value)


@pytest.mark.parametrize(
    "key",
    [  # made by secrets.token_hex(32), token_urlsafe(32) and token_urlsafe(64)
        "df7d0edea43ba9b630651f8642b5a231d87ef96bac845f34bec1a73461179e71",
        "93mtQM70sqkMUIOgABSZAYGUGvonx6RsWOgTIWVQSHM",
        "6Hf0FTDkcL77qZaB7-yijFEmz7aOBVJSUA-xlt4zYbZj4HDRsIWVr7VVbDQ7tWeWXu-YpmIOoxxTPPJ_KNVisg",
    ],
)
def test_production_accepts_random_keys(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    assert load(monkeypatch, **{**PROD, "BTEC_SECRET_KEY": key}).secret_key is not None
    jwt = load(monkeypatch, **{**PROD, "BTEC_JWT_KEYS": f"k2={key},k1={secrets.token_hex(32)}"})
    assert jwt.jwt_keys is not None


def test_development_makes_its_own_secrets_per_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No secret is a constant in the source: each data dir makes its own, 0600 in 0700,
    and every later load (another btecctl command, another process) finds the same."""
    first = load(monkeypatch, BTEC_DATA_DIR=str(tmp_path / "a"))
    made = {name: localsecrets.secret(first, name) for name in localsecrets.LOCAL}
    again = load(monkeypatch, BTEC_DATA_DIR=str(tmp_path / "a"))
    assert {name: localsecrets.secret(again, name) for name in localsecrets.LOCAL} == made
    other = load(monkeypatch, BTEC_DATA_DIR=str(tmp_path / "b"))
    for name, value in made.items():
        assert value is not None
        assert estimated_bits(value.get_secret_value()) >= 256
        assert localsecrets.secret(other, name) != value
        path = localsecrets.path_of(first, name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "a" / "secrets").stat().st_mode) == 0o700
    set_one = load(monkeypatch, BTEC_DATA_DIR=str(tmp_path / "a"), BTEC_OPS_TOKEN="o" * 40)
    assert localsecrets.secret(set_one, "ops_token") == SecretStr("o" * 40)


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    code = (
        "import sys; from server.config.settings import load_settings; "
        "from server.platform.localsecrets import secret; "
        "print(secret(load_settings(), 'metrics_token').get_secret_value())"
    )
    env = {**os.environ, "BTEC_ENV_FILE": "", "BTEC_DATA_DIR": str(tmp_path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    values = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert len(values) == 1
    assert values == {(tmp_path / "secrets" / "metrics_token").read_text().strip()}


def test_production_makes_no_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = load(monkeypatch, **PROD, BTEC_DATA_DIR=str(tmp_path))
    for name in ("ops_token", "metrics_token", "health_token"):
        assert localsecrets.secret(s, name) is None
    assert not (tmp_path / "secrets").exists()


def test_production_needs_a_scanner_or_says_it_runs_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without = {k: v for k, v in PROD.items() if k != "BTEC_CLAMD_URL"}
    with pytest.raises(SettingsError) as err:
        load(monkeypatch, **without)
    assert "BTEC_CLAMD_URL" in str(err.value)
    assert "BTEC_SCAN_DISABLED" in str(err.value)
    s = load(monkeypatch, **without, BTEC_SCAN_DISABLED="true")
    assert s.serves_unscanned


@pytest.mark.parametrize("url", ["clamd", "http://clamav:3310", "tcp://clamav", "unix://"])
def test_a_bad_clamd_url_names_the_variable(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    with pytest.raises(SettingsError) as err:
        load(monkeypatch, BTEC_CLAMD_URL=url)
    assert "BTEC_CLAMD_URL" in str(err.value)


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / "btec.env"
    env_file.write_text("BTEC_PORT=9123\nBTEC_SERVICE_ID=btec-test\n")
    monkeypatch.setenv("BTEC_ENV_FILE", str(env_file))
    s = load_settings()
    assert (s.port, s.service_id) == (9123, "btec-test")


def test_cli_reports_bad_configuration(cli: Callable[..., Any]) -> None:
    result = cli("db", "status", env={"BTEC_ENV_FILE": "", "BTEC_PORT": "nope"})
    assert result.exit_code == 4
    assert "BTEC_PORT" in result.output
    assert "Traceback" not in result.output


def test_cli_version(cli: Callable[..., Any]) -> None:
    from server import __version__

    result = cli("--version", env={"BTEC_ENV_FILE": ""})
    assert result.exit_code == 0
    assert result.stdout.strip() == f"btecctl {__version__}"
