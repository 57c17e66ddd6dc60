"""The npm tools the contract tests drive (package.json at the checkout's root, installed by
`npm ci`): run from node_modules/.bin, skipped with the reason where they are not installed,
failed instead when BTEC_TEST_REQUIRE_NPM is set (CI runs npm ci and sets it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.env import ROOT

REQUIRE_ENV = "BTEC_TEST_REQUIRE_NPM"
BIN = ROOT / "node_modules" / ".bin"
# No update notices, no telemetry, no colours: the tools' output is read by the tests.
QUIET = {
    "REDOCLY_TELEMETRY": "off",
    "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
    "NO_UPDATE_NOTIFIER": "1",
    "NO_COLOR": "1",
    "FORCE_COLOR": "0",
}


def npm_tool(name: str) -> Path:
    """node_modules/.bin/`name`, with node on the PATH to run it."""
    found = BIN / name
    why = (
        "node is not installed (Node.js 20 or later)"
        if shutil.which("node") is None
        else f"{name} is not installed (run `npm ci` in {ROOT})"
        if not found.exists()
        else ""
    )
    if why:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(why)
        pytest.skip(why)
    return found


def run_tool(
    name: str, *args: str, cwd: Path = ROOT, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run an npm tool to the end: its exit code and output, whatever they are."""
    return subprocess.run(
        [str(npm_tool(name)), *args], cwd=cwd, env={**os.environ, **QUIET},
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
