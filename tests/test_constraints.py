"""The pins in constraints.txt cover every dependency of pyproject.toml and satisfy its ranges,
so the README's install commands are reproducible and a stale lock fails here, not later."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        match = re.match(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        if match:
            found[canonicalize_name(match[1])] = match[2]
    return found


def requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        listed += extra
    # An extra naming btec's own extras (dev = btec[embedded,s3] + ...) pins nothing itself.
    return [r for r in map(Requirement, listed) if canonicalize_name(r.name) != "btec"]


def test_every_dependency_is_pinned_within_its_range() -> None:
    pinned = pins()
    wrong = []
    for req in requirements():
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = pinned.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            wrong.append(f"{req} (pinned: {version})")
    assert wrong == [], "regenerate constraints.txt as the README says"
