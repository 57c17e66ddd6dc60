"""`btecctl cache`: stats beside the server's own counters, flush by tag or whole, and
clean failures when Redis or the server cannot be reached."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.config.settings import Settings
from tests.support.env import cli_env, closed_port
from tests.support.metrics import metric, scrape
from tests.support.units import CATALOGUE, seed

PAGE = "/api/v1/units?level=3"


async def test_cache_stats_and_flush(
    client: Any, acli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    await seed(acli, settings, tmp_path, CATALOGUE)
    env = cli_env(settings)
    await client.get(PAGE)
    await client.get(PAGE)
    await client.get("/api/v1/units?level=2")
    url = f"http://127.0.0.1:{client.port}"
    stats = await acli("cache", "stats", "--url", url, "--json", env=env)
    assert stats.exit_code == 0, stats.output
    report = json.loads(stats.stdout)
    page = next(r for r in report["caches"] if r["cache"] == "units.page")
    assert (page["entries"], page["hits"], page["misses"], page["hit_ratio"]) == (2, 1, 2, 0.333)
    assert page["bytes"] > 0
    assert page["ttl_s"] == 300
    # the import invalidated once: the units, and the assignments that show them
    assert report["generations"] == {"units": 1, "assignments": 1}
    assert report["server_counters"] is True

    tagged = json.loads((await acli("cache", "flush", "--tag", "units", "--json", env=env)).stdout)
    assert tagged == {"ok": True, "tag": "units", "generation": 2}
    await client.get(PAGE)
    assert metric(await scrape(client), "btec_cache_misses_total", cache="units.page") == 3

    everything = json.loads((await acli("cache", "flush", "--json", env=env)).stdout)
    assert everything == {
        "ok": True,
        "tag": None,
        "deleted": 3,
        "generations": {"units": 3, "assignments": 2},
    }
    after = json.loads((await acli("cache", "stats", "--url", url, "--json", env=env)).stdout)
    assert all(r["entries"] == 0 for r in after["caches"])


def test_cache_commands_fail_cleanly(cli: Callable[..., Any], settings: Settings) -> None:
    env = cli_env(settings)
    unknown = cli("cache", "flush", "--tag", "nope", "--json", env=env)
    assert unknown.exit_code == 2
    assert "units" in json.loads(unknown.stdout)["error"]
    nobody = cli("cache", "stats", "--url", f"http://127.0.0.1:{closed_port()}", "--json", env=env)
    assert nobody.exit_code == 0
    assert json.loads(nobody.stdout)["server_counters"] is False
    gone = cli_env(settings, BTEC_REDIS_URL=f"redis://:s3cret@127.0.0.1:{closed_port()}/0")
    for args in (("stats",), ("flush",), ("flush", "--tag", "units")):
        result = cli("cache", *args, "--json", env=gone)
        assert result.exit_code == 3, args
        assert "s3cret" not in result.output
        assert "Traceback" not in result.output
