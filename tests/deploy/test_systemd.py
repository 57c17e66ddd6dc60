"""The shipped systemd units (deploy/systemd/) and the production environment file
(deploy/btec.env): `systemd-analyze verify` passes on each unit, installed as the runbooks say
but pointing at this checkout, with no warning; every service is hardened and stops within a
timeout above btec's own drain; and the environment file lists every setting, refuses to start
while a CHANGE-ME is left, and starts once they are filled in."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from btecctl.reference import env_file
from server.config.assets import PROJECT_ROOT
from server.config.settings import Settings

UNITS = sorted((PROJECT_ROOT / "deploy" / "systemd").iterdir())
SERVICES = [u for u in UNITS if u.suffix == ".service"]
ENV_FILE = PROJECT_ROOT / "deploy" / "btec.env"
BTECCTL = "/opt/btec/bin/btecctl"


def _installed(tmp_path: Path, units: list[Path]) -> list[Path]:
    """The units as installed, but running this checkout's btecctl with its env file."""
    here = str(Path(sys.executable).parent / "btecctl")
    copies = []
    for unit in units:
        text = unit.read_text().replace(BTECCTL, here)
        text = text.replace("/etc/btec/env", str(ENV_FILE))
        text = text.replace("WorkingDirectory=/var/lib/btec", f"WorkingDirectory={PROJECT_ROOT}")
        copy = tmp_path / unit.name
        copy.write_text(text)
        copies.append(copy)
    return copies


def _verify(units: list[Path]) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (the key checks below still run)")
    return subprocess.run([tool, "verify", *map(str, units)], capture_output=True, text=True,
                          timeout=120, check=False, cwd=units[0].parent)  # fmt: skip


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    assert {u.name for u in UNITS} == {"btec-api@.service", "btec-worker.service",
                                       "btec-backup.service", "btec-backup.timer"}  # fmt: skip
    done = _verify(_installed(tmp_path, UNITS))
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # a warning (a misspelt key) fails too


def test_a_misspelt_key_fails_the_check(tmp_path: Path) -> None:
    [unit] = _installed(tmp_path, [PROJECT_ROOT / "deploy" / "systemd" / "btec-api@.service"])
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    assert "Unknown key 'ProtectSytem'" in _verify([unit]).stderr


def _service(unit: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys keep their case
    parser.read_string(unit.read_text())
    return parser["Service"]


@pytest.mark.parametrize("unit", SERVICES, ids=lambda u: u.name)
def test_every_service_is_hardened(unit: Path) -> None:
    service = _service(unit)
    assert service["User"] == "btec"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == "/var/lib/btec"
    assert service["CapabilityBoundingSet"] == ""
    assert service["EnvironmentFile"] == "/etc/btec/env"
    assert service["ExecStart"].startswith(BTECCTL + " ")


def test_the_stop_timeouts_are_above_the_drains() -> None:
    defaults = Settings.model_fields
    api = float(
        _service(PROJECT_ROOT / "deploy" / "systemd" / "btec-api@.service")["TimeoutStopSec"]
    )
    worker = float(_service(PROJECT_ROOT / "deploy" / "systemd" / "btec-worker.service")[
        "TimeoutStopSec"])  # fmt: skip
    assert api > defaults["drain_seconds"].default + defaults["shutdown_timeout"].default
    assert worker > defaults["worker_drain_seconds"].default


def test_the_env_file_is_current_and_lists_every_setting() -> None:
    assert ENV_FILE.read_text() == env_file()  # `btecctl dev docs` writes it
    text = ENV_FILE.read_text()
    for name, field in Settings.model_fields.items():
        alias = getattr(field.validation_alias, "choices", None)
        variable = str(alias[0]) if alias else f"BTEC_{name.upper()}"
        assert f"{variable}=" in text, variable


def _values(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines()
                if line and not line.startswith("#"))  # fmt: skip


def test_the_env_file_refuses_to_start_until_it_is_filled_in() -> None:
    values = _values(ENV_FILE.read_text())
    with pytest.raises(ValueError, match="secret_key"):
        _settings(values)
    values["BTEC_SECRET_KEY"] = "kT3v0Qm9ZrX2bW8yHc5NpL1sJd7FgA4uEo6iRt0qVx-_"
    assert _settings(values).env == "production"


def _settings(values: dict[str, str]) -> Settings:
    return Settings(_env_file=None, **{k.removeprefix("BTEC_").lower(): v
                                       for k, v in values.items()})  # fmt: skip
