"""Operator access in tests: the tokens as the server knows them, and reading the Prometheus
exposition an app serves on /metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from server.config.settings import SETTINGS, Settings
from server.platform import localsecrets


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels` (0 when absent)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def operator_headers(settings: Settings, name: str = "metrics_token") -> dict[str, str]:
    """The bearer header of an operator token as the server knows it (the setting, or the
    data dir's own)."""
    token = localsecrets.secret(settings, name)
    assert token is not None, f"no {name} in production settings"
    return {"Authorization": f"Bearer {token.get_secret_value()}"}


async def scrape(client: Any) -> str:
    """The /metrics text of a test client's app, read with its metrics token."""
    answer = await client.get("/metrics", headers=operator_headers(client.app[SETTINGS]))
    assert answer.status == 200, await answer.text()
    return str(await answer.text())


def as_operator(aiohttp_client: Callable[..., Any], name: str = "ops_token") -> Callable[..., Any]:
    """pytest-aiohttp's client factory, with clients that send the operator token `name` on
    every request unless the test gives its own `headers` (`headers={}`: anonymous)."""

    async def make(app: web.Application, **kwargs: Any) -> Any:
        kwargs.setdefault("headers", operator_headers(app[SETTINGS], name))
        return await aiohttp_client(app, **kwargs)

    return make
