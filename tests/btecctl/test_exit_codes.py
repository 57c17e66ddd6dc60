"""Every command keeps the documented exit codes, through the real CLI: bad usage exits 2; an
unreachable database, Redis or server 3 where the command needs one; a missing or invalid
configuration 4, with `{"ok": false, ...}` on stdout under --json; a refused action 1; and a
cheap call against the test servers 0.

The commands are read from the typer app, hidden old names included, so a new command
without an entry in CASES fails here. No embedded server starts: BTEC_DATABASE_URL and
BTEC_REDIS_URL always point at the test servers or at closed ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from btecctl.main import app as cli_app
from btecctl.output import CONFIG, FAILED, OK, UNREACHABLE, USAGE
from tests.support.env import closed_port

CSV = "code,title,level,credits\nK/615/1544,Programming,3,60\n"
PASSWORD = "a long enough passphrase\n"
OSV_FIXTURES = Path(__file__).parent / "fixtures" / "osv"  # real advisories, none matching
BASELINE = Path(__file__).parents[2] / "perf" / "baselines" / "health.json"


@dataclass(frozen=True)
class Codes:
    """How a command is called, and what it needs from outside."""

    args: tuple[str, ...] = ()  # what a valid call gives (arguments), --json aside
    needs: str = ""  # "db", "redis", "http" or "sentry": unreachable, the command exits 3
    ok: tuple[str, ...] | None = None  # extra options of a cheap call that succeeds
    refused: tuple[str, ...] | None = None  # a call the command refuses (exit 1)
    stdin: str | None = None
    process: bool = False  # a server command: it sets up process-wide logging and signals


JOBS = {
    "jobs": Codes(needs="redis", ok=()),
    "jobs list": Codes(needs="redis", ok=()),
    "jobs show": Codes(args=("nope",), needs="redis", refused=()),
    "jobs retry": Codes(args=("nope",), needs="redis", refused=()),
    "jobs abort": Codes(args=("nope",), needs="redis", refused=()),
    "jobs ping": Codes(needs="redis", refused=("--timeout", "0.5")),  # no worker: no pong
}
CASES: dict[str, Codes] = {
    "serve": Codes(needs="db", process=True),
    # A worker waits for Redis to come back (its heartbeat shows in /health): never exit 3.
    "worker": Codes(),
    "health": Codes(needs="http"),
    "db migrate": Codes(needs="db", ok=()),
    "db status": Codes(needs="db", ok=()),
    "db rollback": Codes(needs="db", ok=("--dry-run",)),
    "db pool-stats": Codes(needs="http"),
    "db check": Codes(ok=()),
    "db migrate-test": Codes(needs="db"),  # a scratch database a run: not cheap
    "db backup": Codes(needs="db"),
    "db offsite-fetch": Codes(args=("btec-nope",), refused=()),  # no S3 bucket configured
    "db backups": Codes(ok=()),
    "db verify": Codes(args=("btec-nope",), needs="db", refused=()),
    "db restore": Codes(args=("btec-nope", "--yes"), needs="db", refused=()),
    "db prune": Codes(ok=("--dry-run",)),
    "deploy files": Codes(ok=()),
    "dev status": Codes(ok=()),
    "dev stop": Codes(ok=()),
    "dev docs": Codes(ok=("--check",)),
    "dev openapi": Codes(ok=()),
    "dev postman": Codes(),  # needs npm's converter: tests/http/test_contract_tools.py runs it
    **JOBS,
    **{"tasks" + path.removeprefix("jobs"): codes for path, codes in JOBS.items()},
    "perf list": Codes(ok=()),
    # A run loads a server for seconds: tests/btecctl/test_perf.py runs them; here, the URL
    # that does not answer.
    "perf run": Codes(args=("health",), needs="http"),
    "perf compare": Codes(args=(str(BASELINE), str(BASELINE)), ok=()),  # no regression
    "perf cleanup": Codes(needs="db", ok=("--dry-run",)),
    "mail list": Codes(ok=()),
    "mail show": Codes(args=("nope",), refused=()),
    "cache stats": Codes(needs="redis", ok=("--url", "http://127.0.0.1:{closed}")),
    "cache flush": Codes(needs="redis", ok=("--tag", "units")),
    "units import": Codes(args=("{csv}",), needs="db", ok=("--dry-run",)),
    "units list": Codes(needs="db", ok=()),
    "files list": Codes(needs="db", ok=()),
    "files rescan": Codes(needs="db", ok=()),
    "assessment flags": Codes(needs="db", ok=()),
    "assessment recheck": Codes(needs="db", ok=()),
    "users create-admin": Codes(
        args=("ada@example.org", "--name", "Ada", "--password-stdin"), needs="db", stdin=PASSWORD
    ),
    "users list": Codes(needs="db", ok=()),
    "users deactivate": Codes(args=("who@example.org", "--yes"), needs="db", refused=()),
    "users set-password": Codes(
        args=("who@example.org", "--password-stdin"), needs="db", stdin=PASSWORD, refused=()
    ),
    "users unthrottle": Codes(args=("ada@example.org",), needs="redis", ok=()),
    "sentry test": Codes(needs="sentry"),
    # Its default reaches an advisory service, which is not on loopback: the unreachable case
    # is tests/btecctl/test_security_deps.py's; here it audits a file.
    "security deps": Codes(ok=("--advisories", str(OSV_FIXTURES))),
    "security check": Codes(needs="http", ok=()),  # the settings only: no --url
}
# Bad input the commands themselves refuse, besides what typer refuses: each exits 2.
BAD_INPUT: list[tuple[tuple[str, ...], str | None]] = [
    (("db", "rollback", "--steps", "0"), None),
    (("db", "rollback", "--steps", "2", "--to", "0001.audit-log"), None),
    (("db", "restore", "x", "--clean", "--swap"), None),
    (("db", "backup", "--label", "../x"), None),
    (("db", "pool-stats", "--url", "ftp://x"), None),
    (("health", "--url", "not-a-url"), None),
    (("health", "--url", "http://127.0.0.1:99999"), None),
    (("cache", "flush", "--tag", "nope"), None),
    (("units", "list", "--level", "9"), None),
    (("units", "import", "/no/such/file.csv"), None),
    (("users", "list", "--role", "king"), None),
    (("users", "create-admin", "not-an-email", "--name", "A", "--password-stdin"), PASSWORD),
    (("users", "deactivate", "a@example.org"), "n\n"),  # declined: nothing was changed
    (("users", "deactivate", "a@example.org", "--json"), None),  # nobody to ask
    (("files", "rescan"), None),  # no scanner configured
    (("deploy", "files", "--out", "/dev/null"), None),  # not a folder
    (("worker", "--ui-port", "18080"), None),  # no password for saq's UI
    (("jobs", "ping", "--timeout", "0"), None),
    (("perf", "run", "nope"), None),
    (("perf", "run", "health", "--duration", "10x"), None),
    (("perf", "run", "health", "--profile", "nope"), None),
    (("perf", "run", "health", "--thresholds", "/no/such/file.toml"), None),
    (("perf", "run", "browse", "--url", "http://127.0.0.1:9"), None),  # seeding needs its own
    (("perf", "list", "--thresholds", "/no/such/file.toml"), None),
    (("perf", "compare", "/no/such/a.json", "/no/such/b.json"), None),
    (("security", "deps", "--advisories", "/no/such/file.json"), None),
    (("security", "check", "--url", "ftp://x"), None),
    (("security", "check", "--url", "http://ops:pw@127.0.0.1:8080"), None),  # credentials
]
BAD_CONFIG = {
    "port": {"BTEC_DATABASE_URL": "postgresql://x@127.0.0.1:99999/db"},
    "env": {"BTEC_ENV": "nope"},
    "redis port": {"BTEC_REDIS_URL": "redis://127.0.0.1:70000/0"},
}


def leaves() -> Iterator[str]:
    """Every command that runs, by path: leaves, and groups that run on their own (`jobs`),
    hidden ones included."""

    def walk(group: Any, prefix: str) -> Iterator[str]:
        for name, command in group.commands.items():
            path = f"{prefix} {name}".strip()
            if hasattr(command, "commands"):
                if command.invoke_without_command:
                    yield path
                yield from walk(command, path)
            else:
                yield path

    yield from walk(typer.main.get_command(cli_app), "")


COMMANDS = sorted(leaves())
NEEDING = [path for path in COMMANDS if CASES.get(path, Codes()).needs]


def test_every_command_has_an_entry() -> None:
    assert set(COMMANDS) - set(CASES) == set(), "add the new command to CASES"
    assert set(CASES) - set(COMMANDS) == set(), "a command in CASES is gone"


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """Nothing from a .env, a data dir of the test's own, and closed ports for PostgreSQL
    and Redis: no embedded server ever starts."""
    return {
        "BTEC_ENV_FILE": "",
        "BTEC_DATA_DIR": str(tmp_path / "var"),
        "BTEC_DATABASE_URL": f"postgresql://u:hunter2@127.0.0.1:{closed_port()}/x",
        "BTEC_REDIS_URL": f"redis://:hunter2@127.0.0.1:{closed_port()}/0",
    }


@pytest.fixture
def run(cli: Callable[..., Any], tmp_path: Path) -> Callable[..., tuple[int, str, str]]:
    """Run one command (`path` and its options) as the operator would: exit code, stdout and
    stderr. Placeholders: {csv} a valid catalogue file, {closed} a closed port."""
    csv = tmp_path / "units.csv"
    csv.write_text(CSV)

    def invoke(path: str, *options: str, env: dict[str, str], stdin: str | None = None,
               process: bool = False) -> tuple[int, str, str]:  # fmt: skip
        args = [a.format(csv=csv, closed=closed_port()) for a in (*path.split(), *options)]
        if process:
            return _in_a_process(args, env, stdin)
        result = cli(*args, env=env, input=stdin)
        return result.exit_code, result.stdout, result.stderr

    return invoke


def _in_a_process(args: list[str], env: dict[str, str], stdin: str | None) -> tuple[int, str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("BTEC_")}
    done = subprocess.run(
        [sys.executable, "-m", "btecctl", *args], env={**inherited, **env}, input=stdin,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def _failure(stdout: str) -> dict[str, Any]:
    """The one JSON document a failing command prints on stdout under --json."""
    doc = json.loads(stdout)
    assert doc.get("ok") is False or doc.get("status") == "unreachable", doc
    return dict(doc)


@pytest.mark.parametrize("path", COMMANDS)
def test_bad_usage_exits_2(path: str, run: Callable[..., Any], base_env: dict[str, str]) -> None:
    codes = CASES[path]
    code, _, err = run(path, *codes.args, "--no-such-option", env=base_env, stdin=codes.stdin)
    assert code == USAGE, err
    if codes.args:  # its arguments left out
        assert run(path, env=base_env)[0] == USAGE


@pytest.mark.parametrize(("args", "stdin"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_exits_2(
    args: tuple[str, ...], stdin: str | None, run: Callable[..., Any], base_env: dict[str, str]
) -> None:
    code, out, err = run(" ".join(args[:2]), *args[2:], env=base_env, stdin=stdin)
    assert code == USAGE, out + err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("config", sorted(BAD_CONFIG))
@pytest.mark.parametrize("path", COMMANDS)
def test_bad_configuration_exits_4_with_json(
    path: str, config: str, run: Callable[..., Any], base_env: dict[str, str]
) -> None:
    codes = CASES[path]
    env = {**base_env, **BAD_CONFIG[config]}
    code, out, err = run(path, *codes.args, "--json", env=env, stdin=codes.stdin)
    assert code == CONFIG, out + err
    named = next(iter(BAD_CONFIG[config]))
    assert named in _failure(out)["error"]
    assert "Traceback" not in out + err


def test_missing_configuration_exits_4(run: Callable[..., Any], base_env: dict[str, str]) -> None:
    code, out, _ = run("sentry test", "--json", env=base_env)  # SENTRY_DSN unset
    assert code == CONFIG
    assert "SENTRY_DSN" in _failure(out)["error"]


@pytest.mark.parametrize("path", NEEDING)
def test_unreachable_exits_3(path: str, run: Callable[..., Any], base_env: dict[str, str]) -> None:
    codes = CASES[path]
    env, options = dict(base_env), list(codes.args)
    if codes.needs == "http":
        options += ["--url", "http://127.0.0.1:{closed}"]
    if codes.needs == "sentry":
        env["SENTRY_DSN"] = f"http://public@127.0.0.1:{closed_port()}/1"
    if path == "files rescan":  # past its own check: a scanner is configured
        env["BTEC_CLAMD_URL"] = f"tcp://127.0.0.1:{closed_port()}"
    code, out, err = run(path, *options, "--json", env=env, stdin=codes.stdin,
                         process=codes.process)  # fmt: skip
    assert code == UNREACHABLE, out + err
    _failure(out.splitlines()[-1] if codes.process else out)
    assert "hunter2" not in out + err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("path", [p for p in COMMANDS if CASES[p].refused is not None])
def test_refused_exits_1(
    path: str, run: Callable[..., Any], base_env: dict[str, str], database_url: str,
    redis_url: str,
) -> None:  # fmt: skip
    codes = CASES[path]
    env = {**base_env, "BTEC_DATABASE_URL": database_url, "BTEC_REDIS_URL": redis_url}
    code, out, err = run(path, *codes.args, *(codes.refused or ()), "--json", env=env,
                         stdin=codes.stdin)  # fmt: skip
    assert code == FAILED, out + err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("path", [p for p in COMMANDS if CASES[p].ok is not None])
def test_ok_exits_0(
    path: str, run: Callable[..., Any], base_env: dict[str, str], database_url: str,
    redis_url: str,
) -> None:  # fmt: skip
    codes = CASES[path]
    env = {**base_env, "BTEC_DATABASE_URL": database_url, "BTEC_REDIS_URL": redis_url,
           "BTEC_CLAMD_URL": f"tcp://127.0.0.1:{closed_port()}"}  # fmt: skip
    code, out, err = run(path, *codes.args, *(codes.ok or ()), "--json", env=env,
                         stdin=codes.stdin)  # fmt: skip
    assert code == OK, out + err
    json.loads(out)
