"""The unit catalogue from the CLI: `btecctl units import` (CSV, all or nothing), `units list`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from server.config.settings import Settings
from tests.support.env import cli_env, closed_port
from tests.support.units import CATALOGUE, HEADER, write


def import_units(cli: Callable[..., Any], settings: Settings, source: str, *extra: str) -> Any:
    return cli("units", "import", source, *extra, "--json", env=cli_env(settings))


def unit_rows(settings: Settings) -> list[tuple[Any, ...]]:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        return conn.execute(
            "SELECT code, title, level, credits FROM units ORDER BY code"
        ).fetchall()


def test_import_adds_updates_and_reports(
    cli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    first = import_units(cli, settings, write(tmp_path, CATALOGUE))
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"ok": True, "rows": 5, "inserted": 5, "updated": 0,
                                        "unchanged": 0, "cache_invalidated": True}  # fmt: skip
    changed = (
        HEADER + "k/615/1544,Programming in Python,3,60\nA/601/7283,Business Environment,3,60\n"
    )
    again = import_units(cli, settings, write(tmp_path, changed, "b.csv"))
    assert json.loads(again.stdout) == {"ok": True, "rows": 2, "inserted": 0, "updated": 1,
                                        "unchanged": 1, "cache_invalidated": True}  # fmt: skip
    rows = unit_rows(settings)
    assert len(rows) == 5
    assert ("k/615/1544", "Programming in Python", 3, 60) in rows  # codes match in any case


def test_import_from_stdin_keeps_unicode(cli: Callable[..., Any], settings: Settings) -> None:
    text = HEADER + "Z/1/1,Ünïcødé — Ελληνικά 日本語,4,15\n"
    result = cli("units", "import", "-", "--json", env=cli_env(settings), input=text)
    assert result.exit_code == 0, result.output
    assert unit_rows(settings) == [("Z/1/1", "Ünïcødé — Ελληνικά 日本語", 4, 15)]


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        (HEADER + "K/1,Prog,9,60\n", "2", "level"),
        (HEADER + "K/1,Prog,three,60\n", "2", "level"),
        (HEADER + "K/1,,3,60\n", "2", "title"),
        (HEADER + "K/1,   ,3,60\n", "2", "title"),
        (HEADER + "K/1,Prog,3,0\n", "2", "credits"),
        (HEADER + "bad code!,Prog,3,60\n", "2", "code"),
        (HEADER + "K/1,Bell\x07,3,60\n", "2", "title"),
        (HEADER + "K/1," + "x" * 201 + ",3,60\n", "2", "title"),
        (HEADER + "K/1,Prog,3\n", "2", "4 fields"),
        (HEADER + "K/1,Prog,3,60,extra\n", "2", "4 fields"),
        ("code,title,level\nK/1,Prog,3\n", "header", "credits"),
        ("code,title,level,credits,owner\nK/1,Prog,3,60,me\n", "header", "owner"),
        (HEADER, "rows", "no units"),
        ("", "header", "missing"),
    ],
)
def test_bad_rows_import_nothing(
    cli: Callable[..., Any], settings: Settings, tmp_path: Path, text: str, where: str,
    fragment: str,
) -> None:  # fmt: skip
    good = "G/1,Good Unit,3,60\n"
    body = text + good if text.startswith(HEADER) and text != HEADER else text
    result = import_units(cli, settings, write(tmp_path, body))
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert "nothing was imported" in report["error"]
    found = [e for e in report["errors"] if e["field"].split(".")[0] == where]
    assert fragment in json.dumps(found), report["errors"]
    assert "Traceback" not in result.output
    assert unit_rows(settings) == []


def test_duplicate_codes_refuse_the_file(
    cli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    text = HEADER + "K/1,One,3,60\nG/2,Two,3,60\nk/1,Again,3,60\n"
    for extra in ((), ("--dry-run",)):
        result = import_units(cli, settings, write(tmp_path, text), *extra)
        assert result.exit_code == 1
        assert json.loads(result.stdout)["errors"] == [
            {"field": "4.code", "code": "invalid", "detail": "k/1 is also line 2"}
        ]
    assert unit_rows(settings) == []


def test_unreadable_files_are_usage_errors(
    cli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes((HEADER + "K/1,Caf\xe9,3,60\n").encode("latin-1"))
    big = tmp_path / "big.csv"
    big.write_bytes(b"x" * (5 * 1024 * 1024 + 1))
    for source, fragment in [(str(latin1), "not UTF-8"), (str(big), "over 5 MiB"),
                             (str(tmp_path / "absent.csv"), "cannot read")]:  # fmt: skip
        result = import_units(cli, settings, source)
        assert result.exit_code == 2, (source, result.output)
        assert fragment in json.loads(result.stdout)["error"]
    assert unit_rows(settings) == []


def test_dry_run_writes_nothing(
    cli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    result = import_units(cli, settings, write(tmp_path, CATALOGUE), "--dry-run")
    assert json.loads(result.stdout) == {"ok": True, "dry_run": True, "rows": 5}
    assert unit_rows(settings) == []


def test_database_down_is_a_clean_failure(
    cli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    env = cli_env(settings, BTEC_DATABASE_URL=f"postgresql://u:hunter2@127.0.0.1:{closed_port()}/x")
    result = cli("units", "import", write(tmp_path, CATALOGUE), "--json", env=env)
    assert result.exit_code == 3  # unreachable, as documented
    assert "nothing was imported" in json.loads(result.stdout)["error"]
    listed = cli("units", "list", "--json", env=env)
    assert listed.exit_code == 3
    assert "hunter2" not in result.output
    assert "Traceback" not in result.output


def test_an_unmigrated_database_says_what_to_do(
    cli: Callable[..., Any], settings: Settings, tmp_path: Path, pg_server_url: str
) -> None:
    from server.schema.migrate_test import scratch_database

    with scratch_database(pg_server_url, prefix="btec_units") as url:
        env = cli_env(settings, BTEC_DATABASE_URL=url)
        for args in (("import", write(tmp_path, CATALOGUE)), ("list",)):
            result = cli("units", *args, "--json", env=env)
            assert result.exit_code == 1, result.output
            assert "btecctl db migrate" in json.loads(result.stdout)["error"]


def test_units_list_reads_the_database(
    cli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    import_units(cli, settings, write(tmp_path, CATALOGUE))
    listed = json.loads(
        cli("units", "list", "--level", "3", "--json", env=cli_env(settings)).stdout
    )
    assert [u["code"] for u in listed["units"]] == ["A/601/7283", "K/615/1544", "M/502/5592"]
    found = cli("units", "list", "--search", "CAFÉ", "--json", env=cli_env(settings))
    assert [u["title"] for u in json.loads(found.stdout)["units"]] == ["Café Operations"]
    assert cli("units", "list", "--level", "9", env=cli_env(settings)).exit_code == 2
