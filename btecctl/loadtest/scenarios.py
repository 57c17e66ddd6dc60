"""The scenarios `btecctl perf` runs, each one k6 script under perf/scenarios/, and the
profiles that shape their load as k6 options.

Profiles follow k6's test types (grafana.com/docs/k6/latest/testing-guides/test-types/):
smoke, load (ramp to the target and hold), stress (beyond the target), soak (hold for long)
and spike. A profile is a shape, stages in shares of the run's duration and of its VUs; with
`--rate` the same shape drives k6's arrival-rate executors, in iterations started per second.
Durations are k6's (Go's) notation, parsed here because no library reads it: `30s`, `5m`,
`1h30m`, `500ms`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from server.config.assets import asset

PERF_DIR = asset("perf")
SCENARIO_DIR = PERF_DIR / "scenarios"
# How long k6 lets a VU finish its iteration once its time is up, before cutting it off.
GRACE = "10s"

Profile = Literal["smoke", "load", "stress", "soak", "spike"]
PROFILES: tuple[str, ...] = get_args(Profile)


Seed = Literal["assessment", "accounts"]


@dataclass(frozen=True)
class Scenario:
    """One scenario: its script, the request types it tags (k6's `name` tag, one per kind of
    request), the data it needs seeded (the assessment workload, or accounts alone), whether
    its server hashes passwords at their real cost (signing in is what it measures), and the
    profile it runs by default."""

    name: str
    about: str
    types: tuple[str, ...]
    seed: Seed | None = None
    real_hashing: bool = False
    profile: Profile = "smoke"

    @property
    def script(self) -> Path:
        return SCENARIO_DIR / f"{self.name}.js"

    @property
    def seeded(self) -> bool:
        return self.seed is not None


STUDENT = ("list_assignments", "get_assignment", "my_submissions")
ASSESSOR = ("assessor_submissions", "get_submission", "grade")
SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "health",
            "Probes as a load balancer sends them: GET /api/v1/health/live, then "
            "/api/v1/health/ready, anonymous.",
            ("live", "ready"),
        ),
        Scenario(
            "browse",
            "Students browsing: the unit catalogue, a unit's assignments, one assignment, "
            "their own submissions.",
            ("list_units", *STUDENT),
            seed="assessment",
        ),
        Scenario(
            "grade",
            "Assessors grading: the ungraded work of one of their assignments, one submission, "
            "its grade with every criterion marked (or, with none left, a changed grade).",
            ASSESSOR,
            seed="assessment",
        ),
        Scenario(
            "submit",
            "Students submitting with a file: a text file uploaded, then the answer with it.",
            ("upload", "submit"),
            seed="assessment",
        ),
        Scenario(
            "auth",
            "Signing in, refreshing and signing out, one account per VU, with passwords hashed "
            "at their real argon2id cost.",
            ("login", "refresh", "logout"),
            seed="accounts",
            real_hashing=True,
        ),
        Scenario(
            "mixed",
            "The realistic mix: students browsing and, three times in ten, submitting a few "
            "hundred words; a tenth of the VUs assessors grading.",
            (*STUDENT, "submit", *ASSESSOR),
            seed="assessment",
        ),
    )
}


@dataclass(frozen=True)
class Shape:
    """A profile: its default VUs and duration, and its stages as (share of the duration,
    share of the VUs or rate reached at the stage's end); no stages is a constant load."""

    about: str
    vus: int
    seconds: float
    stages: tuple[tuple[float, float], ...] = ()


SHAPES: dict[str, Shape] = {
    "smoke": Shape("a few VUs, constant: does it work at all", 2, 30),
    "load": Shape("ramp to the VUs over a fifth of the time, hold, ramp down", 50, 300,
                  ((0.2, 1), (0.6, 1), (0.2, 0))),
    "stress": Shape("ramp to the VUs and hold, then beyond to twice them and hold", 50, 600,
                    ((0.1, 1), (0.2, 1), (0.1, 2), (0.4, 2), (0.2, 0))),
    "soak": Shape("ramp up, hold the VUs for a long time, ramp down", 50, 3600,
                  ((0.05, 1), (0.9, 1), (0.05, 0))),
    "spike": Shape("a tenth of the VUs, a sudden surge to all of them, back, recovery", 100, 120,
                   ((0.1, 0.1), (0.05, 1), (0.2, 1), (0.05, 0.1), (0.6, 0.1))),
}  # fmt: skip

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds of a k6 duration (`30s`, `5m`, `1h30m`, `500ms`; a bare number is seconds);
    ValueError naming what is wrong."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        seconds = float(text)
    elif re.fullmatch(rf"(?:{_DURATION.pattern})+", text):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text))
    else:
        raise ValueError(f"--duration {text!r}: not a duration; write it as 30s, 5m or 1h30m")
    if seconds < 1:
        raise ValueError(f"--duration {text!r}: at least 1s")
    return seconds


@dataclass(frozen=True)
class Load:
    """The load a run asks k6 for: profile, VUs, duration, and an arrival rate or none."""

    profile: Profile
    vus: int
    seconds: float
    rate: int | None = None

    def executor(self) -> dict[str, Any]:
        """k6's scenario for this load: constant or ramping, VUs or arrival rate."""
        shape = SHAPES[self.profile]
        if self.rate is None:
            return self._vus(shape)
        return self._arrivals(shape, self.rate)

    def _vus(self, shape: Shape) -> dict[str, Any]:
        if not shape.stages:
            return {"executor": "constant-vus", "vus": self.vus, "duration": _ms(self.seconds),
                    "gracefulStop": GRACE}  # fmt: skip
        stages = [{"duration": d, "target": max(0, round(self.vus * f))} for d, f in self._steps()]
        return {"executor": "ramping-vus", "startVUs": 0, "stages": stages,
                "gracefulRampDown": GRACE, "gracefulStop": GRACE}  # fmt: skip

    def _arrivals(self, shape: Shape, rate: int) -> dict[str, Any]:
        most = max([1.0, *(f for _, f in shape.stages)])
        common = {"timeUnit": "1s", "preAllocatedVUs": self.vus, "gracefulStop": GRACE,
                  "maxVUs": math.ceil(self.vus * most)}  # fmt: skip
        if not shape.stages:
            return {"executor": "constant-arrival-rate", "rate": rate,
                    "duration": _ms(self.seconds), **common}  # fmt: skip
        stages = [{"duration": d, "target": max(0, round(rate * f))} for d, f in self._steps()]
        return {"executor": "ramping-arrival-rate", "startRate": 0, "stages": stages, **common}

    def _steps(self) -> list[tuple[str, float]]:
        return [(_ms(self.seconds * share), f) for share, f in SHAPES[self.profile].stages]

    def as_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "vus": self.vus, "duration_s": self.seconds,
                "rate_per_s": self.rate, "k6_scenario": self.executor()}  # fmt: skip


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def load_for(
    scenario: Scenario, profile: Profile | None, vus: int | None, duration: str | None,
    rate: int | None,
) -> Load:  # fmt: skip
    """The run's load: the profile (the scenario's own by default) with what was given."""
    chosen: Profile = profile or scenario.profile
    shape = SHAPES[chosen]
    seconds = parse_duration(duration) if duration is not None else shape.seconds
    return Load(chosen, vus or shape.vus, seconds, rate)
