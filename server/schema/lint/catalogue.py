"""The lint's public vocabulary: a finding, and each rule's name, summary and why."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One problem in one migration file."""

    file: str
    line: int
    rule: str
    message: str
    why: str

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


RULES: dict[str, str] = {
    "syntax-error": "The file is not valid PostgreSQL SQL (or not UTF-8).",
    "missing-rollback": "A forward migration has no matching .rollback.sql file.",
    "orphan-rollback": "A .rollback.sql file has no forward migration.",
    "multiple-heads": "Migration history is not a single line: several heads, or a shared prefix.",
    "unknown-dependency": "A `-- depends:` header names a migration that does not exist.",
    "index-not-concurrent": "CREATE INDEX on an existing table without CONCURRENTLY.",
    "concurrently-in-transaction": "A CONCURRENTLY statement in a transactional migration.",
    "not-null-without-default": "ADD COLUMN … NOT NULL without a DEFAULT on an existing table.",
    "column-type-change": "ALTER COLUMN … TYPE on an existing table.",
    "column-rename": "RENAME COLUMN on an existing table.",
    "table-rename": "ALTER TABLE … RENAME TO on an existing table.",
    "column-drop": "DROP COLUMN on an existing table.",
    "constraint-not-valid": "CHECK or FOREIGN KEY added to an existing table without NOT VALID.",
    "constraint-needs-index": "UNIQUE or PRIMARY KEY added to an existing table, not USING INDEX.",
    "set-not-null": "ALTER COLUMN … SET NOT NULL on an existing table.",
    "missing-lock-timeout": "A heavy lock is taken before any SET lock_timeout in the file.",
    "bad-opt-out": "A `-- lint: allow` comment with an unknown rule or without a reason.",
}

WHY: dict[str, str] = {
    "syntax-error": "PostgreSQL would reject this file in the middle of a deploy; fix the SQL "
    "(the line is where the parser gave up).",
    "missing-rollback": "Without a rollback file `btecctl db rollback` cannot undo this "
    "migration during an incident; add NNNN.name.rollback.sql, or opt out with a reason if the "
    "change truly cannot be undone.",
    "orphan-rollback": "A rollback file without its forward migration is never run and usually "
    "means a rename went wrong; rename it to match its migration or delete it.",
    "multiple-heads": "Two branches each added a migration, so the order between them is "
    "undefined and can differ between environments; make one depend on the other (or renumber "
    "it) so history is a single line.",
    "unknown-dependency": "yoyo refuses to load a migration whose dependency does not exist, so "
    "every migrate would fail; name the other migration's file without `.sql`, separating ids "
    "with spaces (yoyo does not split on commas).",
    "index-not-concurrent": "CREATE INDEX takes a SHARE lock that blocks every write to the "
    "table until the index is built; use CREATE INDEX CONCURRENTLY in a migration marked "
    "`-- transactional: false`.",
    "concurrently-in-transaction": "CONCURRENTLY statements cannot run inside a transaction "
    "block, and yoyo wraps every migration in one unless its header says "
    "`-- transactional: false`; add that header, and keep such a migration to statements that "
    "are safe to re-run (IF NOT EXISTS / IF EXISTS).",
    "not-null-without-default": "Adding a NOT NULL column without a DEFAULT fails on any table "
    "that already has rows; give it a constant DEFAULT (instant since PostgreSQL 11), or add it "
    "nullable, backfill, then enforce NOT NULL.",
    "column-type-change": "Changing a column's type usually rewrites the table and its indexes "
    "under an ACCESS EXCLUSIVE lock that blocks reads and writes; add a new column, backfill it "
    "in batches and switch the application over instead.",
    "column-rename": "Instances still running the previous release query the old name and fail "
    "from the moment this commits; add the new column, write both, backfill, and drop the old "
    "one in a later release.",
    "table-rename": "Instances still running the previous release query the old table name and "
    "fail from the moment this commits; rename in steps (for example leave a view under the old "
    "name) and drop the old name in a later release.",
    "column-drop": "Instances still running the previous release may read or write this column "
    "and fail once it is gone; stop using it in one release, then drop it in a later migration.",
    "constraint-not-valid": "Adding a CHECK or FOREIGN KEY scans the whole table while holding a "
    "lock that blocks writes; add it with NOT VALID (instant), then ALTER TABLE … VALIDATE "
    "CONSTRAINT, which lets reads and writes continue.",
    "constraint-needs-index": "A UNIQUE or PRIMARY KEY constraint builds its index under an "
    "ACCESS EXCLUSIVE lock; first CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … "
    "UNIQUE/PRIMARY KEY USING INDEX, which is instant.",
    "set-not-null": "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock; add "
    "CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT, then SET NOT NULL (which then "
    "skips the scan) and drop the check.",
    "missing-lock-timeout": "A statement waiting for a heavy lock queues every later query on "
    "the table behind it, so one long transaction turns the migration into an outage; start the "
    "file with SET lock_timeout = '5s' so it fails fast and can be retried.",
    "bad-opt-out": "An opt-out must name a known rule and say why it is safe, as "
    "`-- lint: allow <rule-id> because <reason>`; until then it suppresses nothing.",
}


def finding(file: str, line: int, rule: str, message: str) -> Finding:
    return Finding(file=file, line=line, rule=rule, message=message, why=WHY[rule])
