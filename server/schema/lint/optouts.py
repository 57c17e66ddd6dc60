"""The opt-out comments of a migration: `-- lint: allow <rule> because <reason>`."""

from __future__ import annotations

import re
from collections.abc import Iterator

from pglast import scan

from server.schema.lint.catalogue import RULES, Finding, finding

_UNSUPPRESSIBLE = frozenset({"syntax-error", "bad-opt-out"})
_MIN_REASON = 10
_LINT_COMMENT = re.compile(r"^--\s*lint:(.*)$", re.IGNORECASE | re.DOTALL)
_OPT_OUT = re.compile(r"^\s*allow\s+([\w-]+)(?:\s+because\b(.*))?$", re.IGNORECASE | re.DOTALL)
# squawk obeys its own comments (`squawk-ignore`, `squawk-ignore-file`, ...), which would
# silence a rule with no reason given: they are refused, and blanked before squawk reads them.
SQUAWK_DIRECTIVE = re.compile(r"^(--|/\*)\s*squawk-", re.IGNORECASE)


def comments(text: str) -> Iterator[tuple[int, int]]:
    """Where each comment starts and ends, found by PostgreSQL's own lexer (not in strings)."""
    for token in scan(text):
        if token.name in ("SQL_COMMENT", "C_COMMENT"):
            yield token.start, token.end + 1


def without_squawk_directives(text: str) -> str:
    """`text` with squawk's own comments blanked, keeping every offset and line."""
    for start, end in comments(text):
        if SQUAWK_DIRECTIVE.match(text[start:end]):
            text = text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]
    return text


def opt_outs(file: str, text: str) -> tuple[set[str], list[Finding]]:
    """The rules a file opts out of, and a bad-opt-out finding for each malformed comment."""
    allowed: set[str] = set()
    bad: list[Finding] = []
    for start, end in comments(text):
        line, comment = text.count("\n", 0, start) + 1, text[start:end].strip()
        rule, problem = _read_comment(comment)
        if problem:
            bad.append(finding(file, line, "bad-opt-out", f"{problem}: {comment}"))
        elif rule:
            allowed.add(rule)
    return allowed, bad


def _read_comment(comment: str) -> tuple[str, str]:
    """The rule a comment allows, and what is wrong with it (both empty for other comments)."""
    if SQUAWK_DIRECTIVE.match(comment):
        return "", "squawk's own directives are not honoured, use `-- lint: allow`"
    match = _LINT_COMMENT.match(comment)
    return _read_opt_out(match.group(1)) if match else ("", "")


def _read_opt_out(body: str) -> tuple[str, str]:
    """The rule an opt-out allows, and what is wrong with it (empty when it is fine)."""
    match = _OPT_OUT.match(body.strip())
    if match is None:
        return "", "expected `-- lint: allow <rule-id> because <reason>`"
    rule, reason = match.group(1).lower(), (match.group(2) or "").strip()
    if rule not in RULES:
        return rule, f"unknown rule {rule!r}"
    if rule in _UNSUPPRESSIBLE:
        return rule, f"{rule!r} cannot be opted out of"
    if len(reason) < _MIN_REASON:
        return rule, f"no reason given for allowing {rule!r} (`because` and {_MIN_REASON}+ chars)"
    return rule, ""
