"""The unit catalogue over HTTP: the list (pages, filters, search) and a single unit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from server.config.settings import Settings
from tests.support.env import cli_env
from tests.support.problems import PROBLEM
from tests.support.units import CATALOGUE, HEADER, write

# Also run against the embedded servers in CI's second pass (pyproject.toml's markers).
pytestmark = pytest.mark.embedded


async def test_catalogue_pages_and_filters(
    client: Any, acli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    await acli("units", "import", write(tmp_path, CATALOGUE), "--json", env=cli_env(settings))
    everything = await (await client.get("/api/v1/units")).json()
    assert everything["total"] == 5
    assert [u["code"] for u in everything["items"]] == sorted(
        u["code"] for u in everything["items"]
    )
    assert set(everything["items"][0]) == {"id", "code", "title", "level", "credits",
                                           "created_at", "updated_at"}  # fmt: skip
    page = await (await client.get("/api/v1/units?limit=2&offset=2")).json()
    assert [u["code"] for u in page["items"]] == [u["code"] for u in everything["items"][2:4]]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    beyond = await (await client.get("/api/v1/units?offset=50")).json()
    assert (beyond["items"], beyond["total"], beyond["next_offset"]) == ([], 5, None)
    walked, offset = [], 0  # as a client follows the document's `next` link
    while offset is not None:
        page = await (await client.get(f"/api/v1/units?limit=2&offset={offset}")).json()
        walked += [u["code"] for u in page["items"]]
        offset = page["next_offset"]
    assert walked == [u["code"] for u in everything["items"]]
    level = await (await client.get("/api/v1/units?level=2")).json()
    assert [u["code"] for u in level["items"]] == ["D/615/1500"]
    search = await (await client.get("/api/v1/units", params={"q": "  café "})).json()
    assert [u["title"] for u in search["items"]] == ["Café Operations"]
    literal = await (await client.get("/api/v1/units", params={"q": "%"})).json()
    assert [u["code"] for u in literal["items"]] == ["T/618/0401"]  # wildcards are literal
    underscore = await (await client.get("/api/v1/units", params={"q": "s_a"})).json()
    assert [u["code"] for u in underscore["items"]] == ["T/618/0401"]


async def test_one_unit_and_not_found(
    client: Any, acli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    await acli("units", "import", write(tmp_path, CATALOGUE), "--json", env=cli_env(settings))
    listed = await (await client.get("/api/v1/units?level=2")).json()
    unit_id = listed["items"][0]["id"]
    one = await client.get(f"/api/v1/units/{unit_id}")
    assert one.status == 200
    assert await one.json() == listed["items"][0]
    missing = await client.get("/api/v1/units/999999")
    assert missing.status == 404
    assert (await missing.json(content_type=PROBLEM))["code"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/units?level=0",
        "/api/v1/units?level=x",
        "/api/v1/units?limit=0",
        "/api/v1/units?limit=101",
        "/api/v1/units?offset=-1",
        "/api/v1/units?offset=100001",
        "/api/v1/units?q=" + "a" * 101,
        "/api/v1/units?q=%00",
        "/api/v1/units?q=%E2%80%8B",  # a zero-width space is a format character
        "/api/v1/units/abc",
        "/api/v1/units/0",
        "/api/v1/units/9223372036854775808",
        "/api/v1/units/1.5",
    ],
)
async def test_bad_parameters_are_422(client: Any, path: str) -> None:
    answer = await client.get(path)
    assert answer.status == 422, path
    body = await answer.json(content_type=PROBLEM)
    assert body["code"] == "validation_failed"
    assert body["errors"]


async def test_concurrent_reads_during_imports_agree(
    client: Any, acli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    """Reads racing imports see one consistent page each: never a 500, totals as imported."""
    await acli("units", "import", write(tmp_path, CATALOGUE), "--json", env=cli_env(settings))
    extra = write(tmp_path, HEADER + "Q/9/9,Quality Systems,3,60\n", "extra.csv")
    importing = asyncio.ensure_future(
        acli("units", "import", extra, "--json", env=cli_env(settings))
    )
    answers = await asyncio.gather(*(client.get("/api/v1/units") for _ in range(40)))
    await importing
    for answer in answers:
        assert answer.status == 200
        page = await answer.json()
        assert page["total"] == len(page["items"]) in (5, 6)
    final = await (await client.get("/api/v1/units")).json()
    assert final["total"] == 6
