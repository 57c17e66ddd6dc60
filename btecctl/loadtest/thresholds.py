"""The pass marks of a run: perf/thresholds.toml (versioned beside the scenarios; `--thresholds
FILE` replaces it), one table per scenario, each mark turned into a k6 threshold so that k6
judges it and btecctl names the ones that failed.

    [browse]
    error_rate = 0.01                      # at most this share of requests may fail
    min_rps = 5                            # at least this many requests/s over the run
    p95_ms = { all = 200, list_units = 100 }  # per request type, or `all` of them
    p99_ms = { all = 500 }

`p50_ms`, `p90_ms`, `p95_ms` and `p99_ms` take the scenario's request types (k6's `name`
tag) or `all`. Read with tomllib; what is wrong is a ThresholdsError naming the file and key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from btecctl.loadtest.scenarios import PERF_DIR, SCENARIOS, Scenario

THRESHOLDS_FILE = PERF_DIR / "thresholds.toml"
PERCENTILES = {"p50_ms": 50, "p90_ms": 90, "p95_ms": 95, "p99_ms": 99}
ALL = "all"


class ThresholdsError(ValueError):
    """The thresholds file cannot be read or says something btecctl cannot judge."""


@dataclass(frozen=True)
class Threshold:
    """One pass mark: its name (`p99_ms.live`), k6's metric and expression, the statistic of
    k6's summary that it compares, and the limit."""

    name: str
    metric: str
    expression: str
    stat: str
    limit: float

    @property
    def says(self) -> str:
        """The mark for people: `p95 live < 100 ms`, `error_rate <= 0.01`, `>= 20 req/s`."""
        if self.name == "min_rps":
            return f">= {self.limit:g} req/s"
        if self.name == "error_rate":
            return f"failed <= {self.limit:.2%}"
        key, kind = self.name.split(".", 1)
        return f"{key.removesuffix('_ms')} {kind} < {self.limit:g} ms"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "says": self.says, "k6": f"{self.metric}: {self.expression}",
                "limit": self.limit}  # fmt: skip


def read(path: Path | None) -> dict[str, Any]:
    """The thresholds file as tables per scenario: `path`, or perf/thresholds.toml."""
    where = path or THRESHOLDS_FILE
    try:
        with where.open("rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ThresholdsError(f"thresholds file {where}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ThresholdsError(f"thresholds file {where}: not TOML: {exc}") from None
    unknown = sorted(set(doc) - set(SCENARIOS))
    if unknown:
        raise ThresholdsError(f"thresholds file {where}: no scenario {unknown[0]!r} "
                              f"(known: {', '.join(SCENARIOS)})")  # fmt: skip
    return {name: (where, table) for name, table in doc.items()}


def for_scenario(doc: dict[str, Any], scenario: Scenario) -> list[Threshold]:
    """The thresholds `doc` (from `read`) sets for `scenario`; none when it has no table."""
    if scenario.name not in doc:
        return []
    where, table = doc[scenario.name]
    try:
        return list(_marks(scenario, table))
    except ThresholdsError as exc:
        raise ThresholdsError(f"thresholds file {where}, [{scenario.name}]: {exc}") from None


def _marks(scenario: Scenario, table: Any) -> Any:
    if not isinstance(table, dict):
        raise ThresholdsError("not a table")
    for key, value in table.items():
        if key == "error_rate":
            rate = _number(key, value, upper=1.0)
            yield Threshold(key, "http_req_failed", f"rate<={_text(rate)}", "value", rate)
        elif key == "min_rps":
            rps = _number(key, value)
            yield Threshold(key, "http_reqs", f"rate>={_text(rps)}", "rate", rps)
        elif key in PERCENTILES:
            yield from _latencies(scenario, key, value)
        else:
            raise ThresholdsError(f"unknown key {key!r} (error_rate, min_rps, "
                                  f"{', '.join(PERCENTILES)})")  # fmt: skip


def _latencies(scenario: Scenario, key: str, value: Any) -> Any:
    if not isinstance(value, dict):
        raise ThresholdsError(f"{key}: a table of request type = milliseconds")
    pct = PERCENTILES[key]
    for kind, ms in value.items():
        if kind != ALL and kind not in scenario.types:
            raise ThresholdsError(f"{key}.{kind}: no such request type (this scenario's: "
                                  f"{', '.join(scenario.types)}, or {ALL})")  # fmt: skip
        limit = _number(f"{key}.{kind}", ms)
        metric = "http_req_duration" + ("" if kind == ALL else f"{{name:{kind}}}")
        yield Threshold(f"{key}.{kind}", metric, f"p({pct})<{_text(limit)}", f"p({pct})", limit)


def _number(key: str, value: Any, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ThresholdsError(f"{key}: a number of at least 0, not {value!r}")
    if upper is not None and value > upper:
        raise ThresholdsError(f"{key}: at most {upper:g}, not {value!r}")
    return float(value)


def _text(number: float) -> str:
    """A number as k6 reads it: positional, never `1e-05`."""
    text = format(Decimal(repr(number)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def k6_thresholds(marks: list[Threshold]) -> dict[str, list[str]]:
    """The marks as k6's `thresholds` option."""
    found: dict[str, list[str]] = {}
    for mark in marks:
        found.setdefault(mark.metric, []).append(mark.expression)
    return found


def trend_stats(marks: list[Threshold]) -> list[str]:
    """The trend statistics k6's summary must carry for the marks and btecctl's report."""
    wanted = ["med", "p(90)", "p(95)", "p(99)", "max", "count"]
    return wanted + sorted({m.stat for m in marks if m.stat.startswith("p(")} - set(wanted))


def verdicts(marks: list[Threshold], summary: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each mark with the figure k6 observed and whether it passed, from k6's summary export
    (where a threshold maps to true when it was crossed); `ok` is None without one."""
    metrics = (summary or {}).get("metrics", {})
    out = []
    for mark in marks:
        entry = metrics.get(mark.metric, {})
        crossed = entry.get("thresholds", {}).get(mark.expression)
        observed = entry.get(mark.stat)
        out.append({**mark.as_dict(), "observed": observed,
                    "ok": None if crossed is None else not crossed})  # fmt: skip
    return out
