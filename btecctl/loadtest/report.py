"""What a run leaves: the summary (summary.json with --out, stdout with --json) and its
rendering for people.

The summary says what ran (scenario, load, btec's version and git revision, the target and
its environment), what the clients saw per request type (count, rate, p50/p95/p99/max,
failures by status and problem code, from k6's stream), how each threshold fared (k6's
verdict), what the server counted of itself in /metrics before and after (CPU, RSS, requests
by route and status, pool waits, cache hits), its health at start and end, a series per
interval, and whether the run is `complete` (false when it was interrupted or k6 failed).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess  # nosec B404 # asks git for the revision, an argv list without a shell
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from btecctl.loadtest import html
from btecctl.output import err_console, out_console
from server.config.assets import PROJECT_ROOT

SUMMARY = "summary.json"
K6_SUMMARY = "k6-summary.json"


def revision() -> dict[str, Any]:
    """The checkout's git revision and whether it has uncommitted changes; None outside git."""
    git = shutil.which("git")
    if git is None:
        return {"revision": None, "dirty": None}

    def ask(*args: str) -> str | None:
        done = subprocess.run(  # nosec B603 # git found on PATH, fixed read-only arguments
            [git, "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True, timeout=10,
            check=False,
        )  # fmt: skip
        return done.stdout.strip() if done.returncode == 0 else None

    head = ask("rev-parse", "HEAD")
    status = ask("status", "--porcelain", "--untracked-files=no") if head else None
    return {"revision": head, "dirty": None if status is None else bool(status)}


def machine(k6: str) -> dict[str, Any]:
    """What ran the load: CPUs, memory, the OS and k6's version."""
    import psutil

    said = subprocess.run(  # nosec B603 # the k6 binary btecctl runs, a fixed argument
        [k6, "version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.split()  # "k6 v1.4.2 (go1.25, linux/amd64)"
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(terse=True),
        "k6": said[1] if len(said) > 1 else None,
    }


def crossed(summary: dict[str, Any] | None) -> list[str]:
    """Every threshold k6 says was crossed, `metric: expression`: the thresholds file's and
    any a script set for itself, so that k6's exit code 99 always has names."""
    found = []
    for metric, entry in sorted((summary or {}).get("metrics", {}).items()):
        for expression, hit in entry.get("thresholds", {}).items():
            if hit:
                found.append(f"{metric}: {expression}")
    return found


def server_figures(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the server counted during the load, from two readings of its /metrics."""
    if "error" in before or "error" in after:
        return {"error": before.get("error") or after.get("error"), "before": before,
                "after": after}  # fmt: skip
    requests: dict[str, dict[str, int]] = {}
    for route, statuses in after["requests"].items():
        for status, count in statuses.items():
            grew = count - before["requests"].get(route, {}).get(status, 0)
            if grew:
                requests.setdefault(route, {})[status] = grew
    served = sum(n for statuses in requests.values() for n in statuses.values())
    cpu = after.get("cpu_seconds", 0.0) - before.get("cpu_seconds", 0.0)

    def delta(key: str) -> float:
        return float(after.get(key, 0.0) - before.get(key, 0.0))

    hits, misses = delta("cache_hits"), delta("cache_misses")
    return {
        "requests_total": served, "requests": requests, "cpu_seconds": round(cpu, 3),
        "cpu_ms_per_request": round(cpu * 1000 / served, 4) if served else None,
        "rss_bytes_start": before.get("rss_bytes"), "rss_bytes_end": after.get("rss_bytes"),
        "open_fds_end": after.get("open_fds"),
        "db_pool": {"acquires": delta("db_pool_acquires"),
                    "acquire_seconds": round(delta("db_pool_acquire_seconds"), 4),
                    "acquire_timeouts": delta("db_pool_acquire_timeouts"),
                    "size_end": after.get("db_pool_size"), "max": after.get("db_pool_max")},
        "cache": {"hits": hits, "misses": misses,
                  "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None},
        "before": before, "after": after,
    }  # fmt: skip


def write(directory: Path, summary: dict[str, Any], k6_summary: dict[str, Any] | None) -> Path:
    """summary.json (and k6's own summary beside it) and report.html in `directory`; each
    written whole to a draft and renamed, so a reader never sees half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    documents = {SUMMARY: summary, **({K6_SUMMARY: k6_summary} if k6_summary else {})}
    files = {name: json.dumps(document, indent=2, default=str) + "\n"
             for name, document in documents.items()}  # fmt: skip
    files[html.REPORT] = html.render(summary)
    for name, text in files.items():
        draft = directory / f".{name}.tmp"
        draft.write_text(text, encoding="utf-8")
        draft.replace(directory / name)
    return directory / SUMMARY


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def show(summary: dict[str, Any]) -> None:
    """The summary for people: requests per type, thresholds, the server's own figures."""
    load, target = summary["load"], summary["target"]
    rate = f", {load['rate_per_s']} iterations/s" if load["rate_per_s"] else ""
    where = f"{target['url']} ({target['environment']})"
    title = (f"{summary['scenario']} · {load['profile']} · {load['vus']} VUs{rate} · "
             f"{summary['duration_s']:.1f} s · {where}")  # fmt: skip
    table = Table(title=title, title_justify="left")
    table.add_column("request type")
    for column in ("count", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "failed"):
        table.add_column(column, justify="right")
    rows = [*summary["requests"]["by_type"].items(), ("all", summary["requests"]["all"])]
    for name, r in rows:
        failed = ", ".join(f"{n} x {s}" for s, n in r["failed_by_status"].items()) or "0"
        table.add_row(name, f"{r['count']:,}", _ms(r["rate_per_s"]), _ms(r["p50_ms"]),
                      _ms(r["p95_ms"]), _ms(r["p99_ms"]), _ms(r["max_ms"]), failed)  # fmt: skip
    out_console.print(table)
    if summary["thresholds"]:
        out_console.print(_thresholds(summary["thresholds"]))
    _server(summary["server"])
    _problems(summary["requests"]["all"])


def _thresholds(marks: list[dict[str, Any]]) -> Table:
    table = Table("threshold", "k6", "observed", "result", title="thresholds", title_justify="left")
    for mark in marks:
        observed = mark["observed"]
        result = {True: "[green]pass[/]", False: "[red]FAIL[/]", None: "[yellow]not judged[/]"}
        table.add_row(mark["name"], mark["k6"], "-" if observed is None else f"{observed:,.4g}",
                      result[mark["ok"]])  # fmt: skip
    return table


def _server(found: dict[str, Any]) -> None:
    if "error" in found:
        err_console.print(Text.assemble(("server figures: ", "yellow"), str(found["error"])))
        return
    per = found["cpu_ms_per_request"]
    rss = [found["rss_bytes_start"], found["rss_bytes_end"]]
    said = (f"server: {found['requests_total']:,} requests counted, CPU {found['cpu_seconds']} s"
            + (f" ({per} ms per request)" if per is not None else "")
            + (f", RSS {rss[0] / 2**20:.0f} → {rss[1] / 2**20:.0f} MiB" if None not in rss else "")
            + f", pool waits {found['db_pool']['acquire_timeouts']:.0f} timeouts")  # fmt: skip
    if found["cache"]["hit_ratio"] is not None:
        said += f", cache hit ratio {found['cache']['hit_ratio']:.1%}"
    out_console.print(said, highlight=False)


def _problems(every: dict[str, Any]) -> None:
    if every["problems"] or every["k6_errors"]:
        codes = ", ".join(f"{c} x{n}" for c, n in every["problems"].items())
        errors = ", ".join(f"k6 error {c} x{n}" for c, n in every["k6_errors"].items())
        out_console.print(f"problems: {', '.join(x for x in (codes, errors) if x)}",
                          highlight=False)  # fmt: skip
