"""`btecctl db migrate-test`: passes on the real migrations, and catches planted defects."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

# Also run against the embedded servers in CI's second pass (pyproject.toml's markers).
pytestmark = pytest.mark.embedded


BASE = {
    "0001.courses.sql": """
        SET lock_timeout = '5s';
        CREATE TABLE course (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            code text NOT NULL UNIQUE,
            level smallint NOT NULL CHECK (level BETWEEN 1 AND 8),
            band text NOT NULL DEFAULT 'P' CHECK (band IN ('P', 'M', 'D')),
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE enrolment (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            course_id bigint NOT NULL REFERENCES course (id),
            student text NOT NULL
        );""",
    "0001.courses.rollback.sql": "DROP TABLE enrolment; DROP TABLE course;",
}


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def run(cli: Callable[..., Any], database_url: str, directory: Path, *args: str) -> Any:
    env = {"BTEC_DATABASE_URL": database_url, "BTEC_MIGRATIONS_DIR": str(directory),
           "BTEC_ENV_FILE": ""}  # fmt: skip
    result = cli("db", "migrate-test", "--json", *args, env=env)
    return result.exit_code, json.loads(result.stdout)


def failures(report: dict[str, Any]) -> list[str]:
    return [d for s in report["steps"] for d in s["differences"]]


def scratch_databases(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'btec_migrate_test%'"
        )
        return [r[0] for r in rows]


def test_real_migrations_pass(cli: Callable[..., Any], database_url: str) -> None:
    from server.config.assets import PROJECT_ROOT

    code, report = run(cli, database_url, PROJECT_ROOT / "migrations")
    assert code == 0, report
    assert report["ok"] is True
    phases = [s["phase"] for s in report["steps"]]
    assert phases[:2] == ["apply-all", "rollback-all"]
    assert "stairway" in phases
    assert phases[-1] == "data"
    assert report["database"] not in scratch_databases(database_url)  # dropped (others may run)


def test_good_migrations_with_data_pass(
    cli: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    files = {
        **BASE,
        "0002.course-title.sql": "ALTER TABLE course ADD COLUMN title text NOT NULL DEFAULT '';",
        "0002.course-title.rollback.sql": "ALTER TABLE course DROP COLUMN title;",
    }
    code, report = run(cli, database_url, write(tmp_path / "m", files), "--newest", "2")
    assert code == 0, failures(report)


def test_rollback_that_forgets_an_index_fails(
    cli: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    files = {
        **BASE,
        "0002.student-index.sql": "CREATE INDEX enrolment_student_idx ON enrolment (student);",
        "0002.student-index.rollback.sql": "SELECT 1;",
    }
    code, report = run(cli, database_url, write(tmp_path / "m", files))
    assert code == 1
    found = failures(report)
    assert any("index enrolment_student_idx: left behind" in d for d in found), found
    stair = next(s for s in report["steps"] if s["subject"] == "0002.student-index")
    assert not stair["ok"]


def test_data_losing_rollback_fails(
    cli: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    files = {
        **BASE,
        "0002.course-title.sql": "ALTER TABLE course ADD COLUMN title text;",
        "0002.course-title.rollback.sql": """
            ALTER TABLE course DROP COLUMN title;
            DELETE FROM enrolment WHERE id % 2 = 0;""",
    }
    code, report = run(cli, database_url, write(tmp_path / "m", files))
    assert code == 1
    data = next(s for s in report["steps"] if s["phase"] == "data")
    assert not data["ok"]
    assert any("table enrolment has 10 rows instead of 20" in d for d in data["differences"]), data


def test_rollback_that_rewrites_data_fails(
    cli: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    files = {
        **BASE,
        "0002.course-title.sql": "ALTER TABLE course ADD COLUMN title text;",
        "0002.course-title.rollback.sql": """
            ALTER TABLE course DROP COLUMN title;
            UPDATE enrolment SET student = upper(student);""",
    }
    code, report = run(cli, database_url, write(tmp_path / "m", files))
    assert code == 1
    assert any("same 20 rows but different data" in d for d in failures(report))


def test_missing_rollback_file_fails(
    cli: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    files = {**BASE, "0002.course-title.sql": "ALTER TABLE course ADD COLUMN title text;"}
    code, report = run(cli, database_url, write(tmp_path / "m", files))
    assert code == 1
    assert any("no rollback file: 0002.course-title.rollback.sql" in d for d in failures(report))


def test_broken_migration_is_reported_not_raised(
    cli: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    files = {
        **BASE,
        "0002.typo.sql": "ALTER TABLE no_such_table ADD COLUMN x int;",
        "0002.typo.rollback.sql": "SELECT 1;",
    }
    code, report = run(cli, database_url, write(tmp_path / "m", files))
    assert code == 1
    assert any("UndefinedTable" in d for d in failures(report)), failures(report)
    assert report["database"] not in scratch_databases(database_url)


@pytest.mark.parametrize("args", [("--newest", "-1"), ("--rows", "0"), ("--rows", "many")])
def test_bad_arguments(cli: Callable[..., Any], database_url: str, args: tuple[str, ...]) -> None:
    env = {"BTEC_DATABASE_URL": database_url, "BTEC_ENV_FILE": ""}
    assert cli("db", "migrate-test", *args, env=env).exit_code == 2
