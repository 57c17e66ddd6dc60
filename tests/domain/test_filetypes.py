"""Uploaded file names, cleaned to something safe to store and to send back."""

from __future__ import annotations

import pytest

from server.domain.filetypes import clean_filename


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("C:\\Users\\sam\\evil.txt", "evil.txt"),
        ("../..", "file"),
        ("", "file"),
        ("\u200b\u200b.txt", "txt"),
        ("report.verylongextension123", "report.verylongextension123"),
    ],
)
def test_clean_filename(given: str, kept: str) -> None:
    assert clean_filename(given) == kept
