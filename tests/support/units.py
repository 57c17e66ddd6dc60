"""The unit catalogue as tests load it: CSV text, written to a file for `btecctl units import`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.config.settings import Settings
from tests.support.env import cli_env

HEADER = "code,title,level,credits\n"
CATALOGUE = HEADER + (
    "K/615/1544,Programming,3,60\n"
    "A/601/7283,Business Environment,3,60\n"
    "D/615/1500,Café Operations,2,30\n"
    "M/502/5592,Maths for Engineering Technicians,3,60\n"
    "T/618/0401,Percent % Discounts_and_More,1,10\n"
)


def write(tmp_path: Path, text: str, name: str = "units.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


async def seed(acli: Callable[..., Any], settings: Settings, tmp_path: Path, text: str) -> None:
    """Import `text` with btecctl, from an async test."""
    result = await acli("units", "import", write(tmp_path, text, f"{time.monotonic_ns()}.csv"),
                        "--json", env=cli_env(settings))  # fmt: skip
    assert result.exit_code == 0, result.output
