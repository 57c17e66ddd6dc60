"""The BTEC grading rule: the overall grade from the criteria a student achieved."""

from __future__ import annotations

import itertools

import pytest

from server.domain.grading import overall

RULE_TABLE = [
    # criteria (achieved ones with a +), expected overall
    ("+P1 +P2 +M1 +D1", "D"),
    ("+P1 +P2 +M1 D1", "M"),
    ("+P1 +P2 M1 +D1", "P"),  # a D without every M is no Distinction
    ("+P1 +P2 M1 D1", "P"),
    ("+P1 P2 +M1 +D1", "U"),  # every M and D, one P missed
    ("P1 P2 M1 D1", "U"),
    ("+P1 +P2 +M1 +M2 D1 D2", "M"),
    ("+P1 +P2 +M1 M2 +D1 +D2", "P"),
    ("+P1 +P2 +M1 +M2 +D1 D2", "M"),
    # no D band: Merit is the top grade
    ("+P1 +P2 +M1", "M"),
    ("+P1 +P2 M1", "P"),
    ("+P1 P2 +M1", "U"),
    # no M band: a Distinction needs every P and D; no Merit to award
    ("+P1 +D1", "D"),
    ("+P1 D1", "P"),
    ("P1 +D1", "U"),
    # P only
    ("+P1 +P2 +P3", "P"),
    ("+P1 +P2 P3", "U"),
    ("P1", "U"),
]


@pytest.mark.parametrize(("criteria", "expected"), RULE_TABLE)
def test_the_grade_rule(criteria: str, expected: str) -> None:
    achieved = {c.lstrip("+"): c.startswith("+") for c in criteria.split()}
    assert overall(achieved) == expected


def _reference(achieved: dict[str, bool]) -> str:
    """The rule as the specification states it, written independently of the code."""
    bands = {b: [v for c, v in achieved.items() if c[0] == b] for b in "PMD"}
    if bands["D"] and all(bands["P"]) and all(bands["M"]) and all(bands["D"]):
        return "D"
    if bands["M"] and all(bands["P"]) and all(bands["M"]):
        return "M"
    return "P" if bands["P"] and all(bands["P"]) else "U"


@pytest.mark.parametrize(
    "codes",
    [("P1", "P2", "M1", "M2", "D1"), ("P1", "P2", "M1"), ("P1", "D1", "D2"), ("P1", "P2")],
    ids=["all-bands", "no-D", "no-M", "P-only"],
)
def test_the_grade_rule_in_every_combination(codes: tuple[str, ...]) -> None:
    for values in itertools.product([False, True], repeat=len(codes)):
        achieved = dict(zip(codes, values, strict=True))
        assert overall(achieved) == _reference(achieved), achieved
