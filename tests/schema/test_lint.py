"""The migration linter, on small migration directories written per test."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from server.schema.lint import RULES, Finding, check_migrations
from tests.support.env import ROOT

REAL_MIGRATIONS = ROOT / "migrations"
TIMEOUT = "SET lock_timeout = '5s';\n"


def write(directory: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = directory / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return directory


def results(directory: Path) -> list[tuple[str, int, str]]:
    return [(f.file, f.line, f.rule) for f in check_migrations(directory)]


def lint_one(directory: Path, sql: str) -> list[tuple[int, str]]:
    """Findings for one forward migration that has its rollback, as (line, rule)."""
    write(directory, {"0001.m.sql": sql, "0001.m.rollback.sql": "SELECT 1;\n"})
    found = results(directory)
    assert {file for file, _, _ in found} <= {"0001.m.sql"}
    return [(line, rule) for _, line, rule in found]


# -- every statement rule fires on a minimal example ----------------------------------------

FIRING = {
    "create-index": (
        TIMEOUT + "CREATE INDEX users_email ON users (email);",
        [(2, "index-not-concurrent")],
    ),
    "create-unique-index": (
        TIMEOUT + "CREATE UNIQUE INDEX users_email ON users (email);",
        [(2, "index-not-concurrent")],
    ),
    "create-index-concurrently": (
        "CREATE INDEX CONCURRENTLY users_email ON users (email);",
        [(1, "concurrently-in-transaction")],
    ),
    "drop-index-concurrently": (
        "DROP INDEX CONCURRENTLY users_email;",
        [(1, "concurrently-in-transaction")],
    ),
    "reindex-concurrently": (
        "REINDEX TABLE CONCURRENTLY users;",
        [(1, "concurrently-in-transaction")],
    ),
    "not-null": (
        TIMEOUT + "ALTER TABLE users ADD COLUMN age int NOT NULL;",
        [(2, "not-null-without-default")],
    ),
    "type-change": (
        TIMEOUT + "ALTER TABLE users ALTER COLUMN age TYPE bigint;",
        [(2, "column-type-change")],
    ),
    "rename-column": (
        TIMEOUT + "ALTER TABLE users RENAME COLUMN age TO years;",
        [(2, "column-rename")],
    ),
    "rename-table": (TIMEOUT + "ALTER TABLE users RENAME TO people;", [(2, "table-rename")]),
    "drop-column": (TIMEOUT + "ALTER TABLE users DROP COLUMN age;", [(2, "column-drop")]),
    "check": (
        TIMEOUT + "ALTER TABLE users ADD CONSTRAINT age_positive CHECK (age > 0);",
        [(2, "constraint-not-valid")],
    ),
    "foreign-key": (
        TIMEOUT + "ALTER TABLE users ADD CONSTRAINT org_fk FOREIGN KEY (org) REFERENCES orgs (id);",
        [(2, "constraint-not-valid")],
    ),
    "inline-foreign-key": (
        TIMEOUT + "ALTER TABLE users ADD COLUMN org int REFERENCES orgs (id);",
        [(2, "constraint-not-valid")],
    ),
    "unique": (
        TIMEOUT + "ALTER TABLE users ADD CONSTRAINT email_unique UNIQUE (email);",
        [(2, "constraint-needs-index")],
    ),
    "primary-key": (
        TIMEOUT + "ALTER TABLE users ADD PRIMARY KEY (id);",
        [(2, "constraint-needs-index")],
    ),
    "set-not-null": (
        TIMEOUT + "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
        [(2, "set-not-null")],
    ),
}


@pytest.mark.parametrize(("sql", "expected"), FIRING.values(), ids=FIRING.keys())
def test_rule_fires(tmp_path: Path, sql: str, expected: list[tuple[int, str]]) -> None:
    assert lint_one(tmp_path, sql) == expected


HEAVY = {
    "alter-table": "ALTER TABLE users ADD COLUMN nickname text;",
    "create-index": "CREATE INDEX users_email ON users (email);",
    "drop-table": "DROP TABLE users;",
    "drop-index": "DROP INDEX users_email;",
    "truncate": "TRUNCATE users;",
    "vacuum-full": "VACUUM FULL users;",
    "vacuum-full-option": "VACUUM (FULL, VERBOSE) users;",
    "cluster": "CLUSTER users USING users_pkey;",
    "reindex": "REINDEX TABLE users;",
    "rename-constraint": "ALTER TABLE users RENAME CONSTRAINT a TO b;",
}


@pytest.mark.parametrize("sql", HEAVY.values(), ids=HEAVY.keys())
def test_heavy_lock_without_lock_timeout(tmp_path: Path, sql: str) -> None:
    found = lint_one(tmp_path, "-- a heavy statement\n\n" + sql)
    assert (3, "missing-lock-timeout") in found
    assert {rule for _, rule in found} <= {"missing-lock-timeout", "index-not-concurrent"}


def test_lock_timeout_reported_once_at_first_heavy_statement(tmp_path: Path) -> None:
    sql = (
        "SELECT 1;\n"
        "ALTER TABLE a ADD COLUMN x int;\n"
        "ALTER TABLE b ADD COLUMN y int;\n"
        "SET lock_timeout = '5s';\n"
        "ALTER TABLE c ADD COLUMN z int;\n"
    )
    assert lint_one(tmp_path, sql) == [(2, "missing-lock-timeout")]


@pytest.mark.parametrize(
    "setting",
    ["SET lock_timeout = 0;", "SET lock_timeout TO '0';", "RESET lock_timeout;"],
)
def test_lock_timeout_that_does_not_limit_does_not_count(tmp_path: Path, setting: str) -> None:
    sql = f"{setting}\nALTER TABLE users ADD COLUMN nickname text;"
    assert lint_one(tmp_path, sql) == [(2, "missing-lock-timeout")]


def test_set_local_lock_timeout_outside_a_transaction_does_not_count(tmp_path: Path) -> None:
    sql = (
        "-- transactional: false\n"
        "SET LOCAL lock_timeout = '5s';\n"
        "ALTER TABLE users ADD COLUMN nickname text;\n"
    )
    assert lint_one(tmp_path, sql) == [(3, "missing-lock-timeout")]


def test_several_rules_in_one_statement(tmp_path: Path) -> None:
    sql = (
        "ALTER TABLE users\n"
        "  ADD COLUMN age int NOT NULL,\n"
        "  DROP COLUMN legacy,\n"
        "  ADD CONSTRAINT age_ok CHECK (age > 0);\n"
    )
    assert lint_one(tmp_path, sql) == [
        (1, "column-drop"),
        (1, "constraint-not-valid"),
        (1, "missing-lock-timeout"),
        (1, "not-null-without-default"),
    ]


# -- the safe forms do not fire -------------------------------------------------------------

SAFE = {
    "concurrently-non-transactional": (
        "-- transactional: false\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);\n"
        "CREATE UNIQUE INDEX CONCURRENTLY users_login ON users (login);\n"
        "DROP INDEX CONCURRENTLY IF EXISTS users_old;\n"
        "REINDEX INDEX CONCURRENTLY users_email;\n"
    ),
    "not-null-with-default": TIMEOUT + "ALTER TABLE users ADD COLUMN age int NOT NULL DEFAULT 0;",
    "nullable-column": TIMEOUT + "ALTER TABLE users ADD COLUMN nickname text;",
    "identity-column": TIMEOUT
    + "ALTER TABLE users ADD COLUMN n bigint NOT NULL GENERATED ALWAYS AS IDENTITY;",
    "not-valid-constraints": TIMEOUT
    + "ALTER TABLE users ADD CONSTRAINT age_ok CHECK (age > 0) NOT VALID;\n"
    + "ALTER TABLE users ADD CONSTRAINT org_fk FOREIGN KEY (org) REFERENCES orgs (id) NOT VALID;\n"
    + "ALTER TABLE users VALIDATE CONSTRAINT age_ok;\n",
    "unique-using-index": TIMEOUT
    + "ALTER TABLE users ADD CONSTRAINT email_unique UNIQUE USING INDEX users_email;\n"
    + "ALTER TABLE users ADD CONSTRAINT users_pk PRIMARY KEY USING INDEX users_id;\n",
    "new-table": (
        "CREATE TABLE public.grades (id int, student int, score int);\n"
        "CREATE INDEX grades_student ON grades (student);\n"
        "ALTER TABLE grades ADD COLUMN letter text NOT NULL, ALTER COLUMN score TYPE bigint;\n"
        "ALTER TABLE grades ADD CONSTRAINT score_ok CHECK (score >= 0), ADD UNIQUE (student);\n"
        "ALTER TABLE grades RENAME COLUMN letter TO grade;\n"
        "ALTER TABLE grades RENAME TO results;\n"
        "CREATE INDEX results_grade ON results (grade);\n"
    ),
    "set-local-lock-timeout": "SET LOCAL lock_timeout = '5s';\n"
    + "CREATE INDEX users_email ON users (email);\n"
    + "-- lint: allow index-not-concurrent because users holds a few dozen rows at most\n",
    "lock-timeout-in-ms": "SET lock_timeout TO 5000;\nDROP TABLE old_reports;",
    "plain-vacuum-and-selects": "VACUUM users;\nVACUUM (FULL false) users;\nSELECT 1;",
}


@pytest.mark.parametrize("sql", SAFE.values(), ids=SAFE.keys())
def test_safe_form_gives_no_findings(tmp_path: Path, sql: str) -> None:
    assert lint_one(tmp_path, sql) == []


def test_transactional_header_counts_only_before_the_sql(tmp_path: Path) -> None:
    """yoyo reads headers only from the leading comments, so a later one changes nothing."""
    sql = "CREATE INDEX CONCURRENTLY users_email ON users (email);\n-- transactional: false\n"
    assert lint_one(tmp_path, sql) == [(1, "concurrently-in-transaction")]


def test_rollback_files_are_not_linted_for_statements(tmp_path: Path) -> None:
    rollback = "DROP INDEX users_email;\nALTER TABLE users DROP COLUMN age;\nDROP TABLE users;\n"
    write(tmp_path, {"0001.m.sql": TIMEOUT, "0001.m.rollback.sql": rollback})
    assert results(tmp_path) == []


# -- opt-outs -------------------------------------------------------------------------------

TWO_PROBLEMS = (
    TIMEOUT + "CREATE INDEX users_email ON users (email);\nALTER TABLE users DROP COLUMN age;\n"
)


def test_reasoned_opt_out_suppresses_exactly_its_rule(tmp_path: Path) -> None:
    sql = (
        "-- lint: allow index-not-concurrent because users holds a few dozen rows\n" + TWO_PROBLEMS
    )
    assert lint_one(tmp_path, sql) == [(4, "column-drop")]


def test_opt_out_is_case_insensitive_and_may_trail_a_statement(tmp_path: Path) -> None:
    sql = (
        TWO_PROBLEMS + "SELECT 1; -- LINT: Allow Column-Drop because nothing reads it since 2024\n"
    )
    assert lint_one(tmp_path, sql) == [(2, "index-not-concurrent")]


def test_opt_out_inside_a_string_is_not_a_comment(tmp_path: Path) -> None:
    sql = TWO_PROBLEMS + "SELECT '\n-- lint: allow column-drop because it is only text';\n"
    assert lint_one(tmp_path, sql) == [(2, "index-not-concurrent"), (3, "column-drop")]


@pytest.mark.parametrize(
    "comment",
    [
        "-- lint: allow column-drop",
        "-- lint: allow column-drop because",
        "-- lint: allow column-drop because   ok  ",
        "-- lint: allow column-drops because nothing reads it since 2024",
        "-- lint: allow syntax-error because the parser is wrong here",
        "-- lint: allow bad-opt-out because I do not like the linter",
        "-- lint: disable column-drop",
        "--lint:",
    ],
)
def test_bad_opt_out_is_a_finding_and_suppresses_nothing(tmp_path: Path, comment: str) -> None:
    sql = TWO_PROBLEMS + comment + "\n"
    assert lint_one(tmp_path, sql) == [
        (2, "index-not-concurrent"),
        (3, "column-drop"),
        (4, "bad-opt-out"),
    ]


def test_opt_out_of_missing_rollback(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "0001.a.sql": "-- lint: allow missing-rollback because it deletes data for good\n",
            "0002.b.sql": "SELECT 1;\n",
        },
    )
    assert results(tmp_path) == [("0002.b.sql", 1, "missing-rollback")]


# -- files and history ----------------------------------------------------------------------


def test_missing_and_orphan_rollback(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "0001.a.sql": TIMEOUT,
            "0001.a.rollback.sql": "",
            "0002.b.sql": TIMEOUT,
            "0003.c.rollback.sql": "DROP TABLE c;",
        },
    )
    assert results(tmp_path) == [
        ("0002.b.sql", 1, "missing-rollback"),
        ("0003.c.rollback.sql", 1, "orphan-rollback"),
    ]


def pair(name: str, sql: str = "SELECT 1;\n") -> dict[str, str | bytes]:
    return {f"{name}.sql": sql, f"{name}.rollback.sql": "SELECT 1;\n"}


def test_duplicate_numeric_prefix_is_two_heads(tmp_path: Path) -> None:
    write(tmp_path, {**pair("0001.a"), **pair("0002.b"), **pair("0002.c"), **pair("0003.d")})
    found = check_migrations(tmp_path)
    assert [(f.file, f.line, f.rule) for f in found] == [("0002.c.sql", 1, "multiple-heads")]
    assert "0002.b.sql" in found[0].message
    assert "0002.c.sql" in found[0].message


def test_declared_dependencies_with_one_head(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            **pair("0001.a"),
            **pair("0002.b", "-- depends: 0001.a\nSELECT 1;"),
            **pair("0002.c", "-- depends: 0002.b\nSELECT 1;"),
        },
    )
    assert results(tmp_path) == []


def test_declared_dependencies_with_two_heads(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            **pair("0001.a"),
            **pair("0002.b", "-- depends: 0001.a\nSELECT 1;"),
            **pair("0003.c", "-- depends: 0001.a\nSELECT 1;"),
        },
    )
    found = check_migrations(tmp_path)
    assert [(f.file, f.line, f.rule) for f in found] == [("0003.c.sql", 1, "multiple-heads")]
    assert found[0].message == "2 heads: 0002.b, 0003.c"


def test_unknown_dependency_points_at_its_header(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            **pair("0001.a"),
            **pair(
                "0002.b", "-- The second one.\n-- depends: 0001.a\n-- depends: 0001.x\nSELECT 1;"
            ),
        },
    )
    found = check_migrations(tmp_path)
    assert [(f.file, f.line, f.rule) for f in found] == [("0002.b.sql", 3, "unknown-dependency")]
    assert "0001.x" in found[0].message


def test_comma_separated_dependencies_are_unknown_as_yoyo_splits_on_spaces(tmp_path: Path) -> None:
    write(
        tmp_path,
        {**pair("0001.a"), **pair("0002.b"), **pair("0003.c", "-- depends: 0001.a, 0002.b\n")},
    )
    found = check_migrations(tmp_path)
    assert [(f.file, f.line, f.rule) for f in found] == [
        ("0003.c.sql", 1, "multiple-heads"),
        ("0003.c.sql", 1, "unknown-dependency"),
    ]
    assert found[0].message == "2 heads: 0001.a, 0003.c"
    assert found[1].message == "0003.c depends on unknown migration '0001.a,'"


def test_syntax_error_with_its_line(tmp_path: Path) -> None:
    write(tmp_path, pair("0001.a", "-- header\nSELECT 1;\n\nCREAT TABLE t (id int);\n"))
    found = check_migrations(tmp_path)
    assert [(f.file, f.line, f.rule) for f in found] == [("0001.a.sql", 4, "syntax-error")]
    assert found[0].message == 'syntax error at or near "CREAT"'


def test_syntax_error_at_end_of_input_and_in_rollback(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"0001.a.sql": "SELECT 1;\nSELECT (\n\n", "0001.a.rollback.sql": "SELECT 1;\nDROP;\n"},
    )
    assert results(tmp_path) == [
        ("0001.a.rollback.sql", 2, "syntax-error"),
        ("0001.a.sql", 2, "syntax-error"),
    ]


def test_file_that_is_not_utf8_is_a_syntax_error(tmp_path: Path) -> None:
    write(tmp_path, pair("0001.a", ""))
    write(tmp_path, {"0001.a.sql": b"SELECT '\xff';\n"})
    assert results(tmp_path) == [("0001.a.sql", 1, "syntax-error")]


def test_unicode_in_identifiers_and_comments_keeps_lines_right(tmp_path: Path) -> None:
    sql = (
        "-- Größe des Cafés — ünïcödé 🎓 comments\n"
        'CREATE TABLE "naïve" ("ñ" int); /* 日本語 */ SET lock_timeout = \'5s\';\n'
        "-- lint: allow column-type-change because élèves ne lisent pas cette colonne\n"
        'ALTER TABLE "café" DROP COLUMN "größe";\n'
        'ALTER TABLE "café" ALTER COLUMN "größe" TYPE text;\n'
        'CREATE INDEX "idx_ü" ON "naïve" ("ñ");\n'
        'CREATE INDEX "idx_é" ON "café" ("größe");\n'
    )
    write(tmp_path, pair("0001.ünï", sql))
    found = check_migrations(tmp_path)
    assert [(f.file, f.line, f.rule) for f in found] == [
        ("0001.ünï.sql", 4, "column-drop"),
        ("0001.ünï.sql", 7, "index-not-concurrent"),
    ]
    assert found[0].message == "DROP COLUMN café.größe"


def test_syntax_error_after_multibyte_text(tmp_path: Path) -> None:
    write(tmp_path, pair("0001.a", "SELECT 'ééé 🎓';\nSELECT '日本';\nSELEC 2;\n"))
    assert results(tmp_path) == [("0001.a.sql", 3, "syntax-error")]


def test_empty_directory_has_no_findings(tmp_path: Path) -> None:
    assert check_migrations(tmp_path) == []


def test_other_files_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, {"README.md": "DROP TABLE users;", **pair("0001.a")})
    (tmp_path / "0002.dir.sql").mkdir()
    assert check_migrations(tmp_path) == []


def test_real_migrations_have_no_findings() -> None:
    assert check_migrations(REAL_MIGRATIONS) == []


# -- the public shape -----------------------------------------------------------------------


def test_findings_are_sorted_by_file_then_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "0002.b.sql": TIMEOUT + "ALTER TABLE u DROP COLUMN a;\n" * 2,
            "0001.a.sql": "ALTER TABLE u DROP COLUMN a;\n",
        },
    )
    assert results(tmp_path) == [
        ("0001.a.sql", 1, "column-drop"),
        ("0001.a.sql", 1, "missing-lock-timeout"),
        ("0001.a.sql", 1, "missing-rollback"),
        ("0002.b.sql", 1, "missing-rollback"),
        ("0002.b.sql", 2, "column-drop"),
        ("0002.b.sql", 3, "column-drop"),
    ]


def test_as_dict_and_rule_catalogue(tmp_path: Path) -> None:
    write(tmp_path, {"0001.a.sql": TIMEOUT})
    (finding,) = check_migrations(tmp_path)
    assert finding.as_dict() == {
        "file": "0001.a.sql",
        "line": 1,
        "rule": "missing-rollback",
        "message": "0001.a.sql has no 0001.a.rollback.sql",
        "why": finding.why,
    }
    assert "rollback" in finding.why
    assert isinstance(finding, Finding)
    assert set(RULES) == {
        "syntax-error",
        "missing-rollback",
        "orphan-rollback",
        "multiple-heads",
        "unknown-dependency",
        "index-not-concurrent",
        "concurrently-in-transaction",
        "not-null-without-default",
        "column-type-change",
        "column-rename",
        "table-rename",
        "column-drop",
        "constraint-not-valid",
        "constraint-needs-index",
        "set-not-null",
        "missing-lock-timeout",
        "bad-opt-out",
    }


# The same through `btecctl db check`.


def test_cli_check_passes_on_the_real_migrations(cli: Any) -> None:
    result = cli("db", "check", "--json", env={"BTEC_ENV_FILE": ""})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"ok": True, "findings": []}


def test_cli_check_reports_findings_and_exits_1(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "0001.t.sql").write_text("CREATE TABLE t (id int);\n")
    (tmp_path / "0001.t.rollback.sql").write_text("DROP TABLE t;\n")
    (tmp_path / "0002.idx.sql").write_text("\n-- a comment\nCREATE INDEX t_id ON t (id);\n")
    env = {"BTEC_ENV_FILE": "", "BTEC_MIGRATIONS_DIR": str(tmp_path)}
    result = cli("db", "check", "--json", env=env)
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["ok"] is False
    found = {(f["file"], f["line"], f["rule"]) for f in body["findings"]}
    assert ("0002.idx.sql", 1, "missing-rollback") in found
    assert ("0002.idx.sql", 3, "index-not-concurrent") in found
    assert all(f["why"] for f in body["findings"])
    table = cli("db", "check", env=env)
    assert table.exit_code == 1
    assert "index-not-concurrent" in table.stdout
    assert "lint: allow" in table.output


# -- every rule through `btecctl db check --json`, squawk included ---------------------------


def check_json(cli: Any, directory: Path) -> tuple[int, list[dict[str, Any]]]:
    env = {"BTEC_ENV_FILE": "", "BTEC_MIGRATIONS_DIR": str(directory)}
    result = cli("db", "check", "--json", env=env)
    body = json.loads(result.stdout)
    assert body["ok"] is (result.exit_code == 0)
    return result.exit_code, body["findings"]


def found_by_cli(
    cli: Any, directory: Path, files: dict[str, str | bytes]
) -> list[tuple[str, int, str]]:
    code, findings = check_json(cli, write(directory, files))
    assert code == (1 if findings else 0)
    assert all(set(f) == {"file", "line", "rule", "message", "why"} for f in findings)
    return [(f["file"], f["line"], f["rule"]) for f in findings]


EVERYTHING_WRONG = (
    "-- A migration that gets every statement rule wrong.\n"  # 1
    "ALTER TABLE users ADD COLUMN nickname text;\n"
    "SET lock_timeout = '5s';\n"
    "CREATE INDEX users_email ON users (email);\n"
    "ALTER TABLE users ADD COLUMN age int NOT NULL;\n"  # 5
    "ALTER TABLE users ALTER COLUMN age TYPE bigint;\n"
    "ALTER TABLE users RENAME COLUMN age TO years;\n"
    "ALTER TABLE users RENAME TO people;\n"
    "ALTER TABLE people DROP COLUMN legacy;\n"
    "ALTER TABLE people ADD CONSTRAINT years_ok CHECK (years > 0);\n"  # 10
    "ALTER TABLE people ADD CONSTRAINT email_key UNIQUE (email);\n"
    "ALTER TABLE people ALTER COLUMN email SET NOT NULL;\n"
    "CREATE INDEX CONCURRENTLY people_login ON people (login);\n"
    "-- lint: allow column-drop\n"
    "ALTER TABLE people\n"  # 15: squawk points inside; the finding is on the first line
    "  ADD COLUMN org int REFERENCES orgs (id),\n"
    "  ADD COLUMN score int CHECK (score >= 0),\n"
    "  ADD COLUMN code text UNIQUE,\n"
    "  ALTER COLUMN nickname TYPE varchar(40),\n"
    "  ADD COLUMN serial_no bigint PRIMARY KEY;\n"  # 20
    "DROP INDEX CONCURRENTLY people_old;\n"
    "REINDEX INDEX CONCURRENTLY people_login;\n"
    'SELECT \'ééé 🎓\'; ALTER TABLE "café" DROP COLUMN "größe";\n'
    "/* squawk-ignore ban-drop-column */ ALTER TABLE people DROP COLUMN nickname;\n"
)


def test_cli_reports_every_statement_rule_on_its_line(cli: Any, tmp_path: Path) -> None:
    found = found_by_cli(cli, tmp_path, pair("0001.bad", EVERYTHING_WRONG))
    assert [(line, rule) for _, line, rule in found] == [
        (2, "missing-lock-timeout"),
        (4, "index-not-concurrent"),
        (5, "not-null-without-default"),
        (6, "column-type-change"),
        (7, "column-rename"),
        (8, "table-rename"),
        (9, "column-drop"),
        (10, "constraint-not-valid"),
        (11, "constraint-needs-index"),
        (12, "set-not-null"),
        (13, "concurrently-in-transaction"),
        (14, "bad-opt-out"),
        (15, "column-type-change"),
        (15, "constraint-needs-index"),
        (15, "constraint-needs-index"),
        (15, "constraint-not-valid"),
        (15, "constraint-not-valid"),
        (15, "not-null-without-default"),
        (21, "concurrently-in-transaction"),
        (22, "concurrently-in-transaction"),
        (23, "column-drop"),
        (24, "bad-opt-out"),
        (24, "column-drop"),
    ]


def test_cli_names_what_each_finding_is_about(cli: Any, tmp_path: Path) -> None:
    _, findings = check_json(cli, write(tmp_path, pair("0001.bad", EVERYTHING_WRONG)))
    messages = {(f["line"], f["message"]) for f in findings}
    assert (9, "DROP COLUMN people.legacy") in messages
    assert (23, "DROP COLUMN café.größe") in messages
    assert (15, "ADD COLUMN people.score CHECK") in messages
    assert (15, "ALTER COLUMN people.nickname TYPE") in messages
    assert (7, "RENAME COLUMN users.age TO years") in messages
    assert all(f["why"] for f in findings)


def test_cli_reports_every_file_and_history_rule(cli: Any, tmp_path: Path) -> None:
    files = {
        **pair("0001.a"),
        "0002.b.sql": "SELECT 1;\n",
        "0003.c.rollback.sql": "SELECT 1;\n",
        **pair("0004.d"),
        **pair("0004.e"),
        **pair("0005.f", "SELECT 1;\nSELEC 2;\n"),
    }
    assert found_by_cli(cli, tmp_path, files) == [
        ("0002.b.sql", 1, "missing-rollback"),
        ("0003.c.rollback.sql", 1, "orphan-rollback"),
        ("0004.e.sql", 1, "multiple-heads"),
        ("0005.f.sql", 2, "syntax-error"),
    ]


def test_cli_reports_an_unknown_dependency(cli: Any, tmp_path: Path) -> None:
    files = {**pair("0001.a"), **pair("0002.b", "-- note\n-- depends: 0001.a 0001.zz\nSELECT 1;")}
    assert found_by_cli(cli, tmp_path, files) == [("0002.b.sql", 2, "unknown-dependency")]


def test_cli_covers_every_rule(cli: Any, tmp_path: Path) -> None:
    """Between them, the examples above fire every rule of the catalogue."""
    rules: set[str] = set()
    for name, files in [
        ("statements", pair("0001.bad", EVERYTHING_WRONG)),
        ("files", {**pair("0001.a"), **pair("0001.b", "SELEC"), "0002.c.sql": ""}),
        ("orphan", {"0001.a.rollback.sql": "", **pair("0002.b", "-- depends: 0001.x\n")}),
    ]:
        (tmp_path / name).mkdir()
        rules |= {rule for _, _, rule in found_by_cli(cli, tmp_path / name, files)}
    assert rules == set(RULES)


def test_cli_squawk_config_in_the_tree_changes_nothing(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """squawk gets an explicit (empty) config, never a .squawk.toml it finds, even a broken one."""
    (tmp_path / ".squawk.toml").write_text('excluded_rules = ["ban-drop-column"]\n[[broken\n')
    monkeypatch.chdir(tmp_path)
    files = pair("0001.a", TIMEOUT + "ALTER TABLE users DROP COLUMN age;\n")
    assert found_by_cli(cli, tmp_path, files) == [("0001.a.sql", 2, "column-drop")]


def test_cli_reports_set_not_null_after_any_validated_constraint(cli: Any, tmp_path: Path) -> None:
    """squawk stays silent on SET NOT NULL after any VALIDATE CONSTRAINT on the table, even
    of an unrelated foreign key; no finding of the old lint is lost, so ours reports it."""
    sql = (
        TIMEOUT + "ALTER TABLE users VALIDATE CONSTRAINT users_team_fk;\n"
        "ALTER TABLE users ALTER COLUMN email SET NOT NULL;\n"
    )
    assert found_by_cli(cli, tmp_path, pair("0001.a", sql)) == [("0001.a.sql", 3, "set-not-null")]


def test_cli_without_squawk_exits_4_naming_the_package(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No squawk beside the interpreter (moved to an empty directory) and none on PATH."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    write(tmp_path, pair("0001.a"))
    env = {"BTEC_ENV_FILE": "", "BTEC_MIGRATIONS_DIR": str(tmp_path), "PATH": ""}
    result = cli("db", "check", "--json", env=env)
    assert result.exit_code == 4
    body = json.loads(result.stdout)
    assert body["ok"] is False
    assert "squawk-cli" in body["error"]


def test_cli_real_migrations_are_clean_in_text_mode(cli: Any) -> None:
    result = cli("db", "check", env={"BTEC_ENV_FILE": ""})
    assert result.exit_code == 0, result.output
    assert "no findings" in result.output
