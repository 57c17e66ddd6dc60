"""Known vulnerabilities of the installed distributions, from OSV advisories on disk: what
`btecctl security deps --advisories` reads where no advisory service can be reached.

Input: a JSON file holding one OSV advisory or a list of them, or a directory whose `*.json`
files (at any depth, as OSV's PyPI export and github/advisory-database lay them out) each hold
one advisory or a list. Whatever cannot be read as that raises a plain ValueError naming the
file and what is wrong, which btecctl reports as bad input (exit 2).

Matching is written by hand: pip-audit only asks services (PyPI's JSON API, OSV's API) and
cannot read a local OSV file, and no well-kept library does this matching, which is the OSV
schema's own evaluation rule (https://ossf.github.io/osv-schema/#evaluation) in a dozen
lines. For the PyPI ecosystem: names
compared as PEP 503 normalises them and versions as PEP 440 orders them (both by `packaging`),
an `affected` entry matching by its `versions` list or by any ECOSYSTEM range (events
`introduced`, `fixed`, `last_affected`; GIT and SEMVER ranges are not PyPI's and are ignored).
Withdrawn advisories match nothing. Editable installs (the project itself) are working copies,
not releases: they are not audited here, as the default audit leaves them out too.
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ECOSYSTEM = "PyPI"
EVENTS = ("introduced", "fixed", "last_affected", "limit")
JSON_TYPES: dict[type, str] = {str: "string", dict: "JSON object", list: "list"}


@dataclass(frozen=True)
class Finding:
    """One advisory that names one installed package at its installed version."""

    name: str
    version: str
    id: str
    aliases: tuple[str, ...] = ()
    fixed_versions: tuple[str, ...] = ()
    summary: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "id": self.id,
                "aliases": list(self.aliases), "fixed_versions": list(self.fixed_versions),
                "summary": self.summary}  # fmt: skip


@dataclass(frozen=True)
class Audit:
    """What one audit found: where the advisories came from, how many packages it checked,
    the findings, and the packages it could not check (name, why)."""

    source: str
    packages: int
    vulnerable: list[Finding]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"ok": not self.vulnerable, "source": self.source, "packages": self.packages,
                "vulnerable": [f.as_json() for f in self.vulnerable],
                "skipped": [{"name": n, "reason": r} for n, r in self.skipped]}  # fmt: skip


def installed() -> dict[str, tuple[str, str]]:
    """The installed distributions, by PEP 503 name: (name, version). Where two on the path
    share a name, the first wins, as it is the one imported; editable installs are left out."""
    found: dict[str, tuple[str, str]] = {}
    for dist in importlib.metadata.distributions():
        if dist.name and not _editable(dist):
            found.setdefault(canonicalize_name(dist.name), (dist.name, dist.version))
    return found


def _editable(dist: importlib.metadata.Distribution) -> bool:
    try:
        said = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    return isinstance(said, dict) and bool((said.get("dir_info") or {}).get("editable"))


def audit(path: Path, tick: Callable[[str], None] = lambda _: None) -> Audit:
    """The installed distributions checked against the advisories at `path`; `tick` is
    called with each file read."""
    packages = installed()
    found: dict[tuple[str, str], Finding] = {}
    for advisory in load(path, tick):
        for finding in _findings(advisory, packages):
            found.setdefault((canonicalize_name(finding.name), finding.id), finding)
    return Audit(f"file:{path}", len(packages), sorted(found.values(), key=_order))


def _order(f: Finding) -> tuple[str, str]:
    return canonicalize_name(f.name), f.id


# Reading ----------------------------------------------------------------------------------


def load(path: Path, tick: Callable[[str], None] = lambda _: None) -> list[dict[str, Any]]:
    """Every advisory at `path` (a file or a directory), its shape checked as it is read."""
    if path.is_dir():
        files = sorted(path.rglob("*.json"))
        if not files:
            raise ValueError(f"advisories directory {path}: no *.json files in it")
    elif path.exists():
        files = [path]
    else:
        raise ValueError(f"advisories file {path}: no such file or directory")
    advisories = []
    for file in files:
        advisories += _read(file)
        tick(file.name)
    return advisories


def _read(file: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(file.read_bytes())
    except OSError as exc:
        raise ValueError(f"advisories file {file}: cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise ValueError(f"advisories file {file}: not JSON ({exc})") from None
    advisories = data if isinstance(data, list) else [data]
    for number, advisory in enumerate(advisories, 1):
        _check(advisory, f"advisories file {file}, advisory {number}")
    return advisories


def _check(advisory: Any, where: str) -> None:
    """Raise ValueError unless `advisory` has the OSV fields matching reads, of their types."""
    if not isinstance(advisory, dict):
        raise ValueError(f"{where}: not an OSV advisory (a JSON object with an id)")
    ident = advisory.get("id")
    if not isinstance(ident, str) or not ident:
        raise ValueError(f"{where}: no id (a string)")
    where = f"{where} ({ident})"
    _expect(advisory, "aliases", list, where, item=str)
    _expect(advisory, "summary", str, where)
    _expect(advisory, "details", str, where)
    for entry in _expect(advisory, "affected", list, where, item=dict):
        package = _expect(entry, "package", dict, f"{where}: affected")
        pypi = package.get("ecosystem") == ECOSYSTEM
        if pypi and not isinstance(package.get("name"), str):
            raise ValueError(f"{where}: affected.package.name is not a string")
        _expect(entry, "versions", list, f"{where}: affected", item=str)
        for ranged in _expect(entry, "ranges", list, f"{where}: affected", item=dict):
            _check_range(ranged, f"{where}: affected.ranges", pypi)


def _check_range(ranged: dict[str, Any], where: str, pypi: bool) -> None:
    if not isinstance(ranged.get("type"), str):
        raise ValueError(f"{where}: a range without a type")
    for event in _expect(ranged, "events", list, where, item=dict):
        if len(event) != 1 or next(iter(event)) not in EVENTS:
            raise ValueError(f"{where}: an event is not one of {', '.join(EVENTS)}: {event}")
        [(kind, at)] = event.items()
        if not isinstance(at, str):
            raise ValueError(f"{where}: {kind} is not a string: {at!r}")
        if pypi and ranged["type"] == "ECOSYSTEM" and kind != "limit" and at != "0":
            try:
                Version(at)
            except InvalidVersion:
                raise ValueError(f"{where}: {kind} {at!r} is not a PEP 440 version") from None


def _expect(obj: dict[str, Any], key: str, kind: type, where: str, item: type | None = None) -> Any:
    """obj[key] if it is a `kind` (of `item`s); an empty one if it is absent."""
    value: Any = obj.get(key)
    if value is None:
        return kind()
    wrong = not isinstance(value, kind)
    if not wrong and item is not None:
        wrong = not all(isinstance(v, item) for v in value)
    if wrong:
        wanted = f"a list of {JSON_TYPES[item]}s" if item else f"a {JSON_TYPES[kind]}"
        raise ValueError(f"{where}: {key} is not {wanted}")
    return value


# Matching ---------------------------------------------------------------------------------


def _findings(advisory: dict[str, Any], packages: dict[str, tuple[str, str]]) -> Iterator[Finding]:
    if advisory.get("withdrawn"):
        return
    for entry in advisory.get("affected") or ():
        package = entry.get("package") or {}
        if package.get("ecosystem") != ECOSYSTEM:
            continue
        name, version = packages.get(canonicalize_name(package["name"]), ("", ""))
        if name and _affects(entry, version):
            yield Finding(name, version, advisory["id"], tuple(advisory.get("aliases") or ()),
                          _fixed(entry), _summary(advisory))  # fmt: skip


def _affects(entry: dict[str, Any], version: str) -> bool:
    """Whether `version` is in the entry's `versions` or in one of its ECOSYSTEM ranges."""
    try:
        parsed = Version(version)
    except InvalidVersion:  # a legacy version: only an exact listing can name it
        return version in (entry.get("versions") or ())
    if any(_same(parsed, listed) for listed in entry.get("versions") or ()):
        return True
    ranges = entry.get("ranges") or ()
    return any(_in_range(parsed, r["events"]) for r in ranges if r["type"] == "ECOSYSTEM")


def _same(version: Version, listed: str) -> bool:
    try:
        return version == Version(listed)
    except InvalidVersion:
        return False


def _in_range(version: Version, events: list[dict[str, str]]) -> bool:
    """OSV's rule: walk the events in version order; `introduced` at or below the version
    opens, `fixed` at or below it (or `last_affected` below it) closes."""
    affected = False
    for kind, at in sorted(_events(events), key=lambda e: e[1]):
        if kind == "introduced" and version >= at:
            affected = True
        elif (kind == "fixed" and version >= at) or (kind == "last_affected" and version > at):
            affected = False
    return affected


def _events(events: list[dict[str, str]]) -> Iterator[tuple[str, Version]]:
    """(kind, version) of each event; "0", the start of all versions, as the least one."""
    for event in events:
        [(kind, at)] = event.items()
        if kind != "limit":
            yield kind, Version("0.dev0") if at == "0" else Version(at)


def _fixed(entry: dict[str, Any]) -> tuple[str, ...]:
    fixed = {e["fixed"] for r in entry.get("ranges") or () if r["type"] == "ECOSYSTEM"
             for e in r["events"] if "fixed" in e}  # fmt: skip
    return tuple(sorted(fixed, key=Version))


def _summary(advisory: dict[str, Any]) -> str:
    text = advisory.get("summary") or advisory.get("details") or ""
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""
