"""squawk (the `squawk-cli` wheel) run on one migration, its findings told in our rule names."""

from __future__ import annotations

import json
import os
import shutil
import subprocess  # nosec B404 # runs only the squawk binary, as an argv list without a shell
import sys
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pglast import ast
from pglast.enums import ConstrType

from server.schema.lint.catalogue import Finding, finding
from server.schema.lint.optouts import without_squawk_directives
from server.schema.lint.statements import Statement, describe, part_at, top_level_commas

PACKAGE = "squawk-cli"
# The oldest server we run on: the machine's PostgreSQL 15 (the embedded one is 16).
PG_VERSION = "15"
_TIMEOUT_S = 60

# squawk's rule name -> ours. Several of squawk's may say one of ours.
RULE_MAP: dict[str, str] = {
    "require-concurrent-index-creation": "index-not-concurrent",
    "adding-required-field": "not-null-without-default",
    "changing-column-type": "column-type-change",
    "renaming-column": "column-rename",
    "renaming-table": "table-rename",
    "ban-drop-column": "column-drop",
    "constraint-missing-not-valid": "constraint-not-valid",
    "adding-foreign-key-constraint": "constraint-not-valid",
    "disallowed-unique-constraint": "constraint-needs-index",
    "adding-serial-primary-key-field": "constraint-needs-index",
}

# Every other rule of squawk 2.70, switched off by name so that a run says what it checks.
# squawk refuses an unknown name, so a squawk without one of these fails loudly here.
UNUSED_RULES = (
    "adding-not-nullable-field",  # set-not-null is ours: see locks.py
    "require-concurrent-index-deletion",
    "adding-field-with-default",
    "ban-drop-database",
    "prefer-bigint-over-int",
    "prefer-bigint-over-smallint",
    "prefer-identity",
    "prefer-repack",
    "prefer-robust-stmts",
    "prefer-text-field",
    "prefer-timestamp-tz",
    "ban-char-field",
    "ban-drop-table",
    "ban-drop-not-null",
    "transaction-nesting",
    "ban-concurrent-index-creation-in-transaction",
    "ban-create-domain-with-constraint",
    "ban-alter-domain-with-add-constraint",
    "ban-truncate-cascade",
    "require-timeout-settings",
    "ban-uncommitted-transaction",
    "require-enum-value-ordering",
    "require-table-schema",
    "identifier-too-long",
    "require-concurrent-partition-detach",
    "require-concurrent-reindex",
    "require-lock-timeout",
    "require-statement-timeout",
    "ban-drop-view",
    "ban-drop-function",
    "ban-drop-type",
    "ban-drop-schema",
    "ban-drop-sequence",
    "ban-drop-domain",
    "ban-drop-constraint",
    "ban-drop-generated-expression",
    "renaming-object",
    "ban-set-schema",
    "ban-alter-identity",
    "ban-drop-extension",
    "ban-alter-generated-expression",
    "ban-drop-index",
    "ban-set-default",
    "ban-disable-trigger",
    "ban-replica-identity",
    "ban-drop-policy",
    "ban-revoke",
    "ban-replace-view-function",
    "ban-alter-policy-condition",
    "ban-alter-policy-roles",
    "ban-create-policy",
    "ban-alter-function-options",
    "ban-alter-view-options",
    "ban-alter-role-options",
    "ban-alter-database-options",
    "ban-alter-row-level-security",
    "ban-new-write-restriction",
    "ban-add-enum-value",
    "ban-add-composite-attribute",
    "ban-add-column",
    "ban-detach-inheritance",
    "ban-alter-sequence-values",
    "ban-alter-system-options",
    "ban-alter-extension",
)
_NOT_VALID_KINDS = frozenset({ConstrType.CONSTR_CHECK, ConstrType.CONSTR_FOREIGN})


class SquawkError(RuntimeError):
    """squawk is not installed, or did not answer as its JSON reporter does."""


@dataclass(frozen=True)
class Violation:
    """One squawk finding: squawk's rule name and the character offset where it points."""

    rule: str
    offset: int


def find_squawk() -> str:
    """The squawk beside the running interpreter (this venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "squawk"
    if beside.is_file():
        return str(beside)
    found = shutil.which("squawk")
    if found is None:
        raise SquawkError(
            f"squawk is not installed (looked beside {sys.executable} and on PATH): "
            f"install the {PACKAGE} package, e.g. pip install -c constraints.txt -e ."
        )
    return found


def _command(name: str, in_transaction: bool) -> list[str]:
    return [
        find_squawk(),
        "--reporter=json",
        f"--config={os.devnull}",  # empty: no .squawk.toml found above the cwd applies
        f"--pg-version={PG_VERSION}",
        f"--exclude={','.join(UNUSED_RULES)}",
        "--assume-in-transaction" if in_transaction else "--no-assume-in-transaction",
        f"--stdin-filepath={name}",
    ]


def run_squawk(name: str, text: str, *, in_transaction: bool) -> list[Violation]:
    """squawk's findings on `text` that we map; the text goes on stdin, so offsets are ours."""
    stdin = without_squawk_directives(text).encode()
    done = _call(_command(name, in_transaction), stdin, name)
    return [_violation(text, item) for item in _report(name, done) if _mapped(item)]


def _call(command: list[str], stdin: bytes, name: str) -> subprocess.CompletedProcess[bytes]:
    try:
        done = subprocess.run(  # nosec B603 # argv from _command(): find_squawk() and fixed options; SQL goes on stdin
            command, input=stdin, capture_output=True, timeout=_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SquawkError(f"squawk could not run on {name}: {err}") from err
    # 0: nothing found, 1: findings; anything else is squawk failing.
    if done.returncode not in (0, 1):
        raise SquawkError(f"squawk failed on {name} (exit {done.returncode}): {_stderr(done)}")
    return done


def _stderr(done: subprocess.CompletedProcess[bytes]) -> str:
    return done.stderr.decode(errors="replace").strip()


def _report(name: str, done: subprocess.CompletedProcess[bytes]) -> list[dict[str, Any]]:
    try:
        report = json.loads(done.stdout)
    except ValueError as err:
        raise SquawkError(f"squawk gave no JSON report on {name}: {_stderr(done)}") from err
    if not isinstance(report, list):
        raise SquawkError(f"squawk's report on {name} is not a list")
    return report


def _mapped(item: dict[str, Any]) -> bool:
    """Rules we map; its syntax-error (PostgreSQL's parser judges syntax) and any new rule not."""
    return item.get("rule_name") in RULE_MAP


def _violation(text: str, item: dict[str, Any]) -> Violation:
    return Violation(item["rule_name"], _offset(text, item["line"], item["column"]))


def _offset(text: str, line: int, column: int) -> int:
    """squawk's 0-based line and UTF-8 byte column, as a character offset into `text`."""
    lines = text.split("\n")
    line = min(line, len(lines) - 1)
    start = sum(len(previous) + 1 for previous in lines[:line])
    return start + len(lines[line].encode()[:column].decode(errors="ignore"))


# -- into findings -------------------------------------------------------------------------


def squawk_findings(
    file: str,
    text: str,
    statements: list[Statement],
    on_new_table: list[bool],
    *,
    in_transaction: bool,
) -> Iterator[Finding]:
    """squawk's findings as ours, each on the first line of its statement."""
    starts = [s.start for s in statements]
    commas = top_level_commas(text)
    for violation in run_squawk(file, text, in_transaction=in_transaction):
        index = bisect_right(starts, violation.offset) - 1
        if index < 0 or on_new_table[index]:
            continue
        statement = statements[index]
        part = part_at(statement, violation.offset, commas)
        if _squawk_is_right(violation.rule, part):
            message = describe(statement.node, part)
            yield finding(file, statement.line, RULE_MAP[violation.rule], message)


def _squawk_is_right(rule: str, part: ast.Node) -> bool:
    """False where squawk's constraint-missing-not-valid asks for the impossible or too much.

    It fires on UNIQUE, PRIMARY KEY and EXCLUDE constraints too, which PostgreSQL cannot add
    NOT VALID (constraint-needs-index covers the first two), and on a VALIDATE CONSTRAINT in
    the transaction that added the constraint NOT VALID, which our rule allows.
    """
    if rule != "constraint-missing-not-valid":
        return True
    if not isinstance(part, ast.AlterTableCmd) or not isinstance(part.def_, ast.Constraint):
        return False
    return part.def_.contype in _NOT_VALID_KINDS
