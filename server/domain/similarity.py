"""How alike two answers are: rapidfuzz's Indel similarity over their words.

Each answer becomes its sequence of words (Unicode-normalised, case-folded, punctuation
dropped). The score of a pair is rapidfuzz's normalised Indel similarity of the two word
sequences: 1 - (words inserted or deleted to turn one into the other) / (both lengths), so
the same words in the same order score 1, a copy with a few words changed scores just under,
and two answers that only share common words in other orders score low. Comparing words, not
characters, keeps a pair of 10,000-word essays to about a millisecond (rapidfuzz's
bit-parallel LCS), and reworded spacing or punctuation does not hide a copy.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import Indel

WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=512)
def words(text: str) -> tuple[str, ...]:
    """An answer's words. Remembered for the latest answers: each check compares one new
    answer with every other to its assignment, which are the same answers check after check."""
    return tuple(WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


@dataclass(frozen=True)
class Result:
    compared: int  # other answers long enough to compare
    pairs: list[tuple[int, float]]  # (other submission, score) at or over the threshold
    skipped: bool  # this answer is too short to compare


def alike(answer: str, others: Mapping[int, str], *, threshold: float, min_words: int) -> Result:
    """The other answers at least `threshold` alike this one, most alike first. Answers of
    fewer than `min_words` words are left out on either side."""
    mine = words(answer)
    if len(mine) < min_words:
        return Result(0, [], True)
    choices = {key: w for key, text in others.items() if len(w := words(text)) >= min_words}
    found = process.extract(
        mine,
        choices,
        scorer=Indel.normalized_similarity,
        processor=None,
        score_cutoff=threshold,
        limit=None,
    )
    pairs = sorted(((int(key), round(float(score), 4)) for _, score, key in found),
                   key=lambda p: (-p[1], p[0]))  # fmt: skip
    return Result(len(choices), pairs, False)
