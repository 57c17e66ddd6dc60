"""Monitoring: /metrics passes `promtool check metrics`, the alert rules pass `promtool check
rules` and their unit tests, the alerts and the dashboard name only metrics btec exposes, the
backup and health gauges follow what they report on, and metrics can be switched off."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.config.settings import SETTINGS, Settings
from server.observability.metrics import METRICS
from tests.support.env import ROOT, cli_env, closed_port, required_tool
from tests.support.metrics import as_operator, operator_headers, scrape
from tests.support.problems import PROBLEM
from tests.support.wait import eventually

MONITORING = ROOT / "runbooks" / "monitoring"
# Series Prometheus makes itself, not btec.
PROMETHEUS_OWN = {"up"}
METRIC_NAME = re.compile(r"\b((?:btec|process|python)_[a-z0-9_]+|up)\b")


@pytest.fixture
def aiohttp_client(aiohttp_client: Callable[..., Any]) -> Callable[..., Any]:
    """Clients send the ops token, as an operator's tools do (the ops routes, the health
    details); `headers={}` makes one anonymous."""
    return as_operator(aiohttp_client)


def promtool() -> str:
    return required_tool("promtool", "prometheus", "BTEC_TEST_REQUIRE_PROMTOOL")


def promtool_run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], input=stdin, capture_output=True, text=True, timeout=60,
        cwd=MONITORING,
    )  # fmt: skip


def exposed_names(text: str) -> set[str]:
    """Every series name the exposition can carry, with or without samples yet: a counter
    `x` is scraped as `x_total`, a histogram as `x_bucket`, `x_sum` and `x_count`."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def referenced_names() -> dict[str, set[str]]:
    """Metric names each alert rule and dashboard panel queries."""
    found: dict[str, set[str]] = {}
    for rule in alert_rules():
        found["alert " + rule["alert"]] = set(METRIC_NAME.findall(rule["expr"]))
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.setdefault("panel " + panel["title"], set()).update(
                METRIC_NAME.findall(target["expr"])
            )
    return found


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    checked = promtool_run("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout
    tested = promtool_run("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_runbook_section() -> None:
    runbook = (MONITORING.parent / "observability.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("#")
    }
    rules = alert_rules()
    assert len(rules) >= 15
    for rule in rules:
        alert = rule["alert"]
        assert rule["annotations"]["runbook"] == f"runbooks/observability.md#{alert.lower()}"
        assert rule["annotations"]["summary"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert alert.lower() in anchors, f"no section for {alert} in runbooks/observability.md"


def test_dashboard_queries_are_valid_promql() -> None:
    """Each panel's query, checked by promtool as a recording rule (its PromQL parser)."""
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    # Grafana's own variables, replaced by what Grafana would put there.
    grafana = {"$__rate_interval": "5m", "$job": "btec", "$instance": ".*"}
    rules = []
    for i, expr in enumerate(exprs):
        for var, value in grafana.items():
            expr = expr.replace(var, value)
        rules.append({"record": f"panel:query_{i}", "expr": expr})
    path = MONITORING / ".dashboard-queries.yml"  # promtool reads it from its own cwd
    try:
        path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
        checked = promtool_run("check", "rules", path.name)
    finally:
        path.unlink(missing_ok=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_metrics_pass_promtool_and_cover_every_alert_and_panel(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    cli: Callable[..., Any],
    tmp_path: Path,
) -> None:
    settings = make_settings(backup_dir=tmp_path / "backups")
    env = cli_env(settings, BTEC_ENV_FILE="", BTEC_BACKUP_DIR=str(tmp_path / "backups"))
    backup = cli("db", "backup", "--json", env=env)
    assert backup.exit_code == 0, backup.output
    verify = cli("db", "verify", json.loads(backup.stdout)["name"], "--json", env=env)
    assert verify.exit_code == 0, verify.output

    client = await aiohttp_client(create_app(settings, worker=True))
    for _ in range(2):  # a miss, then a hit
        assert (await client.get("/api/v1/units?limit=5")).status == 200
    assert (await client.get("/api/v1/no-such-route")).status == 404
    assert (await client.get("/api/v1/health")).status in (200, 503)
    text = await eventually(  # the queue monitor's first reading
        lambda: scrape(client), lambda found: "btec_workers" in found, timeout=10,
        message="btec_workers in /metrics",
    )  # fmt: skip

    checked = promtool_run("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == ""  # promtool lists lint problems here

    names = exposed_names(text)
    missing = {
        where: sorted(wanted - names - PROMETHEUS_OWN)
        for where, wanted in referenced_names().items()
        if wanted - names - PROMETHEUS_OWN
    }
    assert not missing, f"queried but never exposed: {missing}"


async def test_backup_gauges_follow_backups_and_drills(
    aiohttp_client: Callable[..., Any],
    make_settings: Callable[..., Settings],
    cli: Callable[..., Any],
    tmp_path: Path,
) -> None:
    backups = tmp_path / "backups"
    settings = make_settings(backup_dir=backups)
    client = await aiohttp_client(create_app(settings))

    async def gauges() -> dict[str, float]:
        text = await scrape(client)
        return {
            s.name: s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name.startswith("btec_backup")
        }

    assert await gauges() == {}  # no backup directory: nothing is known, nothing is claimed
    env = cli_env(settings, BTEC_ENV_FILE="", BTEC_BACKUP_DIR=str(backups))
    made = cli("db", "backup", "--json", env=env)
    assert made.exit_code == 0, made.output
    manifest = json.loads(made.stdout)
    # Scrapes read the directory at most once a minute; a new app reads it now.
    client = await aiohttp_client(create_app(settings))
    seen = await gauges()
    assert seen["btec_backups_kept"] == 1
    finished = json.loads(next(backups.glob("*/manifest.json")).read_text())["finished_at"]
    stamp = dt.datetime.fromisoformat(finished.replace("Z", "+00:00")).timestamp()
    assert seen["btec_backup_last_success_timestamp_seconds"] == stamp
    assert seen["btec_backup_last_size_bytes"] == manifest["size_bytes"]
    assert "btec_backup_last_verified_timestamp_seconds" not in seen  # no drill yet

    drill = cli("db", "verify", manifest["name"], "--json", env=env)
    assert drill.exit_code == 0, drill.output
    client = await aiohttp_client(create_app(settings))
    seen = await gauges()
    assert seen["btec_backup_last_verified_timestamp_seconds"] >= stamp


async def test_health_gauges_match_the_health_report(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    """Mail server down: its check fails, and the gauge says so like /health does."""
    settings = make_settings(smtp_url=f"smtp://127.0.0.1:{closed_port()}")
    client = await aiohttp_client(create_app(settings))
    report = await (await client.get("/api/v1/health")).json()
    text = await scrape(client)
    gauges = {
        s.labels["check"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "btec_health_check_status"
    }
    rank = {"pass": 0, "warn": 1, "fail": 2}
    statuses = {key: results[0]["status"] for key, results in report["checks"].items()}
    assert gauges == {key: rank[status] for key, status in statuses.items()}
    assert gauges["smtp:responseTime"] >= 1  # down is never "pass"
    assert gauges["postgres:responseTime"] == 0


async def test_metrics_switched_off(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings]
) -> None:
    app = create_app(make_settings(metrics_enabled=False))
    client = await aiohttp_client(app)
    assert (await client.get("/api/v1/health/live")).status == 200
    assert (await client.get("/api/v1/units")).status == 200
    resp = await client.get("/metrics", headers=operator_headers(app[SETTINGS]))
    assert resp.status == 404
    assert resp.content_type == PROBLEM
    assert (await resp.json())["code"] == "not_found"
    http = app[METRICS].http
    assert http.counts == {}
    assert http.timings == {}
    assert http.in_progress == 0
