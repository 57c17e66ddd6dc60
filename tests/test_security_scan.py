"""The static security scan: bandit finds nothing unreviewed in server/ and btecctl/, and every
`# nosec` there names the test ids it silences and says why, in a form bandit parses right."""

from __future__ import annotations

import json
import re
import sys
import tokenize
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BANDIT = Path(sys.executable).parent / "bandit"
TARGETS = ("server", "btecctl")
# What bandit takes for a nosec comment (bandit.core.manager.NOSEC_COMMENT starts the same way).
NOSEC = re.compile(r"#\s*nosec")
# Ours: `# nosec B603 # why` or `# nosec B603, B607 # why`. bandit reads test ids up to the next
# `#`, so the reason comes after one: before it, each word would be looked up as a test name
# (a warning per word, and a word that names a test would silence that test too).
REVIEWED = re.compile(
    r"#\s*nosec:?\s+(?P<ids>B\d{3}(?:\s*,\s*B\d{3})*)\s*#\s*(?P<reason>[^#]*?)\s*(?:#|$)"
)
MIN_REASON_WORDS = 3
FINDING = 'import subprocess\n\nsubprocess.call("x", shell=True)\n'


def run_bandit(*targets: str | Path) -> tuple[dict[str, Any], str]:
    """bandit's JSON report on `targets` under this project's configuration, and its stderr."""
    import subprocess

    done = subprocess.run(
        [BANDIT, "-c", "pyproject.toml", "-r", *map(str, targets), "-f", "json", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: findings; anything else: bandit failed
    return json.loads(done.stdout), done.stderr


@cache
def known_test_ids() -> frozenset[str]:
    """The ids of bandit's tests (plugins and blacklisted calls and imports)."""
    with warnings.catch_warnings():  # bandit passes stevedore a deprecated argument
        warnings.simplefilter("ignore", DeprecationWarning)
        from bandit.core.extension_loader import MANAGER
    return frozenset(MANAGER.plugins_by_id) | frozenset(MANAGER.blacklist_by_id)


def unreviewed_nosecs(path: Path) -> list[str]:
    """Each nosec comment of `path` that does not name known bandit test ids and give a reason."""
    bad = []
    with path.open("rb") as f:
        tokens = list(tokenize.tokenize(f.readline))
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        found = NOSEC.search(token.string)
        if found is None:
            continue
        reviewed = REVIEWED.match(token.string, found.start())
        ids = re.split(r"\s*,\s*", reviewed["ids"]) if reviewed else []
        if (
            reviewed is None
            or len(reviewed["reason"].split()) < MIN_REASON_WORDS
            or not set(ids) <= known_test_ids()
        ):
            bad.append(f"{path}:{token.start[0]}: {token.string}")
    return bad


def sources() -> list[Path]:
    return sorted(p for target in TARGETS for p in (ROOT / target).rglob("*.py"))


def describe(results: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{r['filename']}:{r['line_number']}: {r['test_id']} {r['issue_text']}" for r in results
    )


def test_bandit_finds_nothing_unreviewed() -> None:
    report, stderr = run_bandit(*TARGETS)
    assert report["errors"] == []
    assert report["results"] == [], (
        "fix each finding, or mark its line `# nosec BXXX # why`:\n" + describe(report["results"])
    )
    # A reason bandit read as test ids: the `#` before the reason is missing.
    assert "Test in comment" not in stderr, stderr


def test_every_nosec_names_its_tests_and_why() -> None:
    bad = [line for path in sources() for line in unreviewed_nosecs(path)]
    assert bad == [], "write `# nosec BXXX # why` (a known test id, then a reason):\n" + "\n".join(
        bad
    )


def test_bandit_reports_a_known_finding_and_honours_our_nosec_form(tmp_path: Path) -> None:
    (tmp_path / "shell.py").write_text(FINDING)
    report, _ = run_bandit(tmp_path)
    assert {r["test_id"] for r in report["results"]} == {"B404", "B602", "B607"}

    # Our form silences exactly the ids it names: B607 (the partial path "x") still shows.
    reviewed = FINDING.replace(
        "import subprocess", "import subprocess  # nosec B404 # needed by this test"
    ).replace("shell=True)", "shell=True)  # nosec B602 # a fixed command, for this test")
    (tmp_path / "shell.py").write_text(reviewed)
    report, stderr = run_bandit(tmp_path)
    assert [r["test_id"] for r in report["results"]] == ["B607"], describe(report["results"])
    assert "Test in comment" not in stderr, stderr
    assert unreviewed_nosecs(tmp_path / "shell.py") == []


@pytest.mark.parametrize(
    "comment",
    [
        "# nosec",
        "#nosec",
        "# nosec B602",
        "# nosec B602 #",
        "# nosec B602: the reason read as test names",
        "# nosec B602 - the reason read as test names",
        "# nosec: subprocess_popen_with_shell_equals_true # a name, not an id",
        "# nosec B999 # no bandit test has this id",
        "# nosec B602 # short",
        "# noqa: S602  # nosec",
    ],
)
def test_the_reason_checker_catches_a_nosec_without_id_or_reason(
    tmp_path: Path, comment: str
) -> None:
    module = tmp_path / "marked.py"
    module.write_text(f'import subprocess\n\nsubprocess.call("x", shell=True)  {comment}\n')
    assert len(unreviewed_nosecs(module)) == 1


def test_the_reason_checker_reads_comments_only(tmp_path: Path) -> None:
    module = tmp_path / "text.py"
    module.write_text('NOTE = "# nosec"  # nosec B105 # a string, not a password, for this test\n')
    assert unreviewed_nosecs(module) == []
