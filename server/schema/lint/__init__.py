"""Lint the yoyo SQL migrations: squawk for lock safety, our code where squawk has no rule.

squawk (the `squawk-cli` wheel, a maintained PostgreSQL migration linter) runs on each forward
migration as a subprocess, with its JSON reporter and an explicit configuration (squawk.py).
Its findings are told in our stable rule names (`squawk.RULE_MAP`), on the first line of their
statement. Our own code is kept only for what squawk lacks or reads differently from yoyo:

- files.py: a rollback file per migration (missing-rollback, orphan-rollback) and one line of
  history (multiple-heads, unknown-dependency, shared prefixes) are facts about yoyo's
  directory and headers, which no SQL linter reads; yoyo itself reads the headers.
- optouts.py: `-- lint: allow <rule> because <reason>` (and bad-opt-out) is our contract, with
  a reason required. squawk's own `squawk-ignore` comments need none: they are bad-opt-outs,
  and blanked before squawk reads the file so that they silence nothing.
- statements.py: syntax errors come from PostgreSQL's own parser (pglast), the one that runs
  the migration, with its message; squawk has a parser of its own, whose syntax errors are
  dropped. The same parse puts squawk's findings on their statement and names their subject.
- locks.py, where squawk falls short:
  - concurrently-in-transaction: squawk's ban-concurrent-index-creation-in-transaction sees
    only CREATE INDEX (not DROP INDEX or REINDEX ... CONCURRENTLY), and not in a file of one
    statement, which yoyo still wraps in a transaction unless `-- transactional: false`.
  - missing-lock-timeout: squawk's require-lock-timeout counts `SET lock_timeout = 0` and
    `SET LOCAL` outside a transaction as a timeout, and flags CONCURRENTLY statements, plain
    VACUUM and tables made in the same file; it reports once, so filtering cannot fix it.
  - ADD COLUMN ... CHECK (constraint-not-valid) and ADD COLUMN ... PRIMARY KEY without a
    DEFAULT (not-null-without-default): no squawk rule sees either.
  - set-not-null: squawk's adding-not-nullable-field stays silent after any VALIDATE
    CONSTRAINT on the table, whatever the constraint checks (an unrelated foreign key
    included), so a scan under ACCESS EXCLUSIVE would go unreported; ours reports every SET
    NOT NULL on an existing table (opt out with a reason where a validated
    CHECK (col IS NOT NULL) makes it cheap).
  - Tables created earlier in the file are exempt from every rule. squawk exempts them in a
    few rules only, and misses CREATE TABLE ... AS and renames: its findings there are dropped.
- squawk.py drops squawk's constraint-missing-not-valid on UNIQUE, PRIMARY KEY and EXCLUDE
  constraints (PostgreSQL cannot add those NOT VALID; constraint-needs-index covers the first
  two) and on VALIDATE CONSTRAINT in the transaction that added it NOT VALID.

Where squawk sees more than our old rules, its answer stands: column-rename also fires on
ALTER VIEW ... RENAME COLUMN, which breaks old clients the same way.
"""

from __future__ import annotations

from pathlib import Path

from server.schema.lint.catalogue import RULES, Finding
from server.schema.lint.files import Source, history_findings, pairing_findings, read_sources
from server.schema.lint.locks import walk
from server.schema.lint.optouts import opt_outs
from server.schema.lint.squawk import SquawkError, find_squawk, squawk_findings
from server.schema.lint.statements import Statement, parse

__all__ = ["RULES", "Finding", "SquawkError", "check_migrations"]


def check_migrations(directory: Path) -> list[Finding]:
    """All findings for the migrations in `directory`, sorted by file then line.

    Raises SquawkError when squawk is missing or fails.
    """
    find_squawk()  # fail early, even on a directory with nothing for squawk to read
    sources = read_sources(directory)
    findings = [*pairing_findings(sources), *history_findings(sources)]
    allowed: dict[str, set[str]] = {}
    for source in sources:
        own, allowed[source.name] = _file_findings(source)
        findings.extend(own)
    # A set: two of squawk's rules can report one of ours on the same command.
    kept = {f for f in findings if f.rule not in allowed.get(f.file, set())}
    return sorted(kept, key=lambda f: (f.file, f.line, f.rule, f.message))


def _file_findings(source: Source) -> tuple[list[Finding], set[str]]:
    """A file's own findings and the rules it opts out of."""
    parsed = parse(source.name, source.text)
    if isinstance(parsed, Finding):
        return [parsed], set()
    if source.is_rollback or source.text is None:
        return [], set()
    allowed, bad = opt_outs(source.name, source.text)
    return [*_statement_findings(source, source.text, parsed), *bad], allowed


def _statement_findings(source: Source, text: str, statements: list[Statement]) -> list[Finding]:
    walked = walk(source.name, source.transactional, statements)
    squawked = squawk_findings(
        source.name, text, statements, walked.on_new_table, in_transaction=source.transactional
    )
    return [*walked.findings, *squawked]
