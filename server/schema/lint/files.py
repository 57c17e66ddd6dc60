"""The migration directory as files: yoyo's headers, rollback pairs and the line of history."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from yoyo.migrations import read_sql_migration

from server.schema.lint.catalogue import Finding, finding

_ROLLBACK_SUFFIX = ".rollback.sql"
_PREFIX = re.compile(r"^(\d+)\.")
_DEPENDS_HEADER = re.compile(r"^\s*--\s*depends\s*:(.*)$")


@dataclass(frozen=True)
class Source:
    """One .sql file of the directory, with yoyo's reading of its headers."""

    name: str
    text: str | None
    directives: dict[str, str]

    @property
    def id(self) -> str:
        return self.name.removesuffix(".sql")

    @property
    def is_rollback(self) -> bool:
        return self.name.endswith(_ROLLBACK_SUFFIX)

    @property
    def in_history(self) -> bool:
        """A forward migration, not a post-apply hook (yoyo runs those after every apply)."""
        return not self.is_rollback and not self.name.startswith("post-apply")

    @property
    def depends(self) -> list[str]:
        return self.directives.get("depends", "").split()

    @property
    def transactional(self) -> bool:
        return self.directives.get("transactional", "true").lower() != "false"


def _load(path: Path) -> Source:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return Source(path.name, None, {})
    directives: dict[str, str] = read_sql_migration(str(path))[0]
    return Source(path.name, text, dict(directives))


def read_sources(directory: Path) -> list[Source]:
    paths = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix == ".sql")
    return [_load(p) for p in paths]


# -- pairing -------------------------------------------------------------------------------


def pairing_findings(sources: list[Source]) -> Iterator[Finding]:
    names = {s.name for s in sources}
    for s in sources:
        if s.is_rollback and s.name.removesuffix(_ROLLBACK_SUFFIX) + ".sql" not in names:
            yield finding(s.name, 1, "orphan-rollback", f"{s.name} has no forward migration")
        elif s.in_history and f"{s.id}.rollback.sql" not in names:
            yield finding(s.name, 1, "missing-rollback", f"{s.name} has no {s.id}.rollback.sql")


# -- history -------------------------------------------------------------------------------


def history_findings(sources: list[Source]) -> list[Finding]:
    history = [s for s in sources if s.in_history]
    if not any(s.depends for s in history):
        return list(_prefix_findings(history))
    return [*_unknown_dependencies(history), *_head_findings(history)]


def _prefix_findings(history: list[Source]) -> Iterator[Finding]:
    groups: dict[str, list[str]] = {}
    for s in history:
        match = _PREFIX.match(s.name)
        if match:
            groups.setdefault(match.group(1), []).append(s.name)
    for prefix, names in groups.items():
        if len(names) > 1:
            message = f"{', '.join(names)} share the prefix {prefix}: two heads of history"
            yield finding(names[-1], 1, "multiple-heads", message)


def _unknown_dependencies(history: list[Source]) -> Iterator[Finding]:
    known = {s.id for s in history}
    for s in history:
        for dep in s.depends:
            if dep not in known:
                message = f"{s.id} depends on unknown migration {dep!r}"
                line = _depends_line(s.text or "", dep)
                yield finding(s.name, line, "unknown-dependency", message)


def _depends_line(text: str, dep: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        match = _DEPENDS_HEADER.match(line)
        if match and dep in match.group(1).split():
            return number
    return 1


def _head_findings(history: list[Source]) -> Iterator[Finding]:
    depended_on = {dep for s in history for dep in s.depends}
    heads = [s for s in history if s.id not in depended_on]
    if len(heads) > 1:
        message = f"{len(heads)} heads: {', '.join(h.id for h in heads)}"
        yield finding(heads[-1].name, 1, "multiple-heads", message)
    elif not heads and history:
        message = "no head: every migration is depended on, so the dependencies form a cycle"
        yield finding(history[0].name, 1, "multiple-heads", message)
