"""`btecctl perf compare`: two summaries of the same scenario, figure by figure, and whether
the second regressed.

Per request type (and over all of them) the figures compared are p95 and p99, where higher is
worse, and over all of them requests/s, where lower is worse. A figure regressed when it is
worse by more than the allowance (`--max-regression`, 10% by default) and by more than the
run-to-run spread, and, for a latency, by at least `--min-ms` (a millisecond by default: on
loopback a p95 of 0.4 ms against 0.6 ms is noise, not a finding).

The spread is estimated from the runs themselves, as batch means: each run's per-interval
series (one point a second) gives the relative spread of its per-interval p95 and requests/s
(the interquartile range over 1.349, as a robust standard deviation, over the median); the
whole run's figure varies by that over the square root of its intervals, and the difference
of two runs by the root of the sum of their squares. The band is twice that (about 95%).
Intervals within one run do not see what differs between runs (a neighbour on the machine, a
cold cache), so the band is a floor, and the allowance stays the main judge: a committed
baseline is compared with the same profile on the same kind of machine.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LATENCIES = ("p95_ms", "p99_ms")


class CompareError(ValueError):
    """A summary that cannot be read or compared."""


def load(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CompareError(f"{path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompareError(f"{path}: not a summary.json ({exc})") from None
    if not isinstance(found, dict) or not isinstance(found.get("requests"), dict):
        raise CompareError(f"{path}: not a summary.json of `btecctl perf run --out`")
    return found


def relative_spread(values: Sequence[float | None]) -> float:
    """The relative standard error of a whole run's figure, from its per-interval values."""
    points = [float(v) for v in values if v is not None and v > 0]
    if len(points) < 4:
        return math.inf if not points else 0.5  # too few intervals to say: a wide band
    q1, _, q3 = statistics.quantiles(points, n=4)
    middle = statistics.median(points)
    return (q3 - q1) / 1.349 / middle / math.sqrt(len(points)) if middle else math.inf


def band(base: dict[str, Any], current: dict[str, Any], key: str) -> float:
    """The relative change between the two runs' `key` that noise alone explains (2 sigma)."""
    spreads = [relative_spread([p.get(key) for p in run.get("series") or []])
               for run in (base, current)]  # fmt: skip
    return 2 * math.sqrt(sum(s * s for s in spreads)) if all(map(math.isfinite, spreads)) else 0.0


@dataclass(frozen=True)
class Change:
    request_type: str
    figure: str
    base: float
    current: float
    change: float  # relative; positive is worse
    band: float
    regressed: bool

    def as_dict(self) -> dict[str, Any]:
        return {"request_type": self.request_type, "figure": self.figure, "base": self.base,
                "current": self.current, "change": round(self.change, 4),
                "band": round(self.band, 4), "regressed": self.regressed}  # fmt: skip


def compare(base: dict[str, Any], current: dict[str, Any], allowance: float,
            min_ms: float) -> list[Change]:  # fmt: skip
    """Every figure the two summaries share, with whether it regressed."""
    if base.get("scenario") != current.get("scenario"):
        raise CompareError(f"different scenarios: {base.get('scenario')} and "
                           f"{current.get('scenario')}")  # fmt: skip
    latency_band, rate_band = band(base, current, "p95_ms"), band(base, current, "rps")
    types = {**base["requests"].get("by_type", {}), "all": base["requests"].get("all", {})}
    now = {**current["requests"].get("by_type", {}), "all": current["requests"].get("all", {})}
    changes = []
    for name, was in types.items():
        if name not in now:
            continue
        for figure in LATENCIES:
            a, b = was.get(figure), now[name].get(figure)
            if a is None or b is None or a <= 0:
                continue
            change = (b - a) / a
            worse = change > allowance and change > latency_band and b - a >= min_ms
            changes.append(Change(name, figure, a, b, change, latency_band, worse))
    a, b = types["all"].get("rate_per_s"), now["all"].get("rate_per_s")
    if a and b is not None:
        change = (a - b) / a
        changes.append(Change("all", "rate_per_s", a, b, change, rate_band,
                              change > allowance and change > rate_band))  # fmt: skip
    return changes


def allowance_of(text: str) -> float:
    """`10%` or `0.1` as 0.1; ValueError naming what is wrong."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ValueError(f"--max-regression {text!r}: write it as 10% or 0.1") from None
    if not 0 <= value < 10:
        raise ValueError(f"--max-regression {text!r}: between 0% and 1000%")
    return value
