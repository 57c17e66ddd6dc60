"""The BTEC grading rule: the overall grade a set of marked criteria earns.

- Distinction (D) needs every P, M and D criterion;
- Merit (M) needs every P and M criterion;
- Pass (P) needs every P criterion;
- otherwise Unclassified (U).

A grade also needs its own band to be assessed at all: an assignment with no D criteria
cannot award a Distinction (all P and M achieved is a Merit), and one with no M criteria
cannot award a Merit (all P achieved is a Pass; all P and D achieved is a Distinction, since
there is no M criterion left to miss). Every assignment has at least one P criterion.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Literal

Band = Literal["P", "M", "D"]
Overall = Literal["D", "M", "P", "U"]
BANDS: tuple[Band, ...] = ("P", "M", "D")
CODE = re.compile(r"^([PMD])([1-9][0-9]?)$")


def band_of(code: str) -> Band:
    """The band of a criterion code: P1 -> P."""
    found = CODE.match(code)
    if found is None:
        raise ValueError(f"{code!r} is not a criterion code such as P1, M2 or D1")
    return found.group(1)  # type: ignore[return-value]


def sort_key(code: str) -> tuple[int, int]:
    """P before M before D, then by number: P1, P2, P10, M1, D1."""
    return BANDS.index(band_of(code)), int(code[1:])


def overall(achieved: Mapping[str, bool]) -> Overall:
    """The overall grade for every criterion of an assignment, marked achieved or not."""
    met: dict[Band, list[bool]] = {band: [] for band in BANDS}
    for code, done in achieved.items():
        met[band_of(code)].append(done)

    def all_met(bands: Iterable[Band]) -> bool:
        return all(all(met[b]) for b in bands)

    if met["D"] and all_met(BANDS):
        return "D"
    if met["M"] and all_met(("P", "M")):
        return "M"
    if met["P"] and all_met(("P",)):
        return "P"
    return "U"
