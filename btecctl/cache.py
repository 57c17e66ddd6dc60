"""btecctl cache: what the read cache holds and how well it serves, and flushing it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from btecctl.health import default_url
from btecctl.output import (
    UNREACHABLE,
    USAGE,
    JsonOpt,
    emit_json,
    err_console,
    fail,
    out_console,
    progress,
    settings_of,
)
from server.config.settings import Settings
from server.platform.embedded import EmbeddedError, embedded_services

app = typer.Typer(no_args_is_help=True, help="The Redis read cache: stats and flush.")
COUNTERS = ("hits", "misses", "coalesced")


def _known() -> tuple[dict[str, Any], set[str]]:
    import server.services.units  # noqa: F401 - declares its caches
    from server.cache.core import REGISTRY, known_tags

    return dict(REGISTRY), known_tags()


@contextlib.contextmanager
def redis_client(settings: Settings, as_json: bool) -> Iterator[Any]:
    import redis
    import redis.exceptions

    try:
        with embedded_services(settings, postgres=False) as resolved:
            assert resolved.redis_url is not None
            client = redis.Redis.from_url(
                resolved.redis_url.get_secret_value(), socket_timeout=5, socket_connect_timeout=2
            )
            try:
                client.ping()
                yield client
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                fail(f"Redis unreachable: {type(exc).__name__}", code=UNREACHABLE, as_json=as_json)
            finally:
                client.close()
    except EmbeddedError as exc:
        fail(f"embedded Redis: {exc}", as_json=as_json)


def _served(base: str, token: str | None) -> dict[str, dict[str, float]] | str:
    """Per-cache counters from a running server's /metrics, or why they are not there."""
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    req = urllib.request.Request(base + "/metrics")  # noqa: S310 - an operator's own server
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
            text = resp.read().decode()
    except urllib.error.HTTPError as exc:
        return f"/metrics answered {exc.code}"
    except (urllib.error.URLError, OSError):
        return f"no server answered at {base}"
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("btec_cache_"):
            continue
        kind = family.name.removeprefix("btec_cache_")
        for sample in family.samples:
            if sample.name.endswith("_total"):
                row = found.setdefault(sample.labels["cache"], {})
                row[kind] = row.get(kind, 0) + sample.value
    return found


@app.command("stats")
def stats(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help="A running server whose /metrics to read.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Entries and bytes per cache and tag generations (from Redis), and hits, misses and
    errors with the hit ratio (from a running server's /metrics)."""
    from server.cache import core as cache

    settings = settings_of(ctx)
    specs, tags = _known()
    with redis_client(settings, as_json) as client:
        entries = cache.entry_stats(client)
        gens = cache.generations(client, sorted(tags))
        memory = client.info("memory")
    base = (url or default_url(settings)).rstrip("/")
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    served = _served(base, token)
    rows = []
    for name in sorted(set(specs) | set(entries)):
        counts = served.get(name, {}) if isinstance(served, dict) else {}
        looked = counts.get("hits", 0) + counts.get("misses", 0) + counts.get("coalesced", 0)
        spec = specs.get(name)
        rows.append({
            "cache": name,
            "ttl_s": spec.ttl if spec else None,
            "tags": list(spec.tags) if spec else [],
            "entries": entries[name].keys if name in entries else 0,
            "bytes": entries[name].bytes if name in entries else 0,
            **{k: int(counts.get(k, 0)) for k in COUNTERS},
            "errors": int(counts.get("errors", 0)),
            "hit_ratio": round(counts.get("hits", 0) / looked, 3) if looked else None,
        })  # fmt: skip
    report = {
        "caches": rows,
        "generations": gens,
        "redis_used_memory_bytes": memory.get("used_memory"),
        "redis_maxmemory_bytes": memory.get("maxmemory"),
        "server": base,
        "server_counters": isinstance(served, dict),
        **({} if isinstance(served, dict) else {"server_note": served}),
    }
    if as_json:
        emit_json(report)
        return
    _print_stats(report)


def _print_stats(report: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="read cache", title_justify="left")
    table.add_column("cache", no_wrap=True)
    for column in ("ttl", "keys", "bytes", "hits", "miss", "shared", "errors", "ratio"):
        table.add_column(column, justify="right")
    for r in report["caches"]:
        ratio = "-" if r["hit_ratio"] is None else f"{r['hit_ratio']:.1%}"
        table.add_row(r["cache"], f"{r['ttl_s']:g}" if r["ttl_s"] else "-", str(r["entries"]),
                      str(r["bytes"]), str(r["hits"]), str(r["misses"]), str(r["coalesced"]),
                      str(r["errors"]), ratio)  # fmt: skip
    out_console.print(table)
    gens = ", ".join(f"{t}={g}" for t, g in report["generations"].items()) or "none"
    out_console.print(f"tag generations: {gens}")
    if not report["server_counters"]:
        err_console.print(f"[yellow]counters:[/] {report['server_note']}", highlight=False)


@app.command("flush")
def flush(
    ctx: typer.Context,
    tag: Annotated[
        str | None,
        typer.Option(help="Invalidate only the entries under this tag (e.g. units)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Drop cached reads: every entry, or with --tag the entries under one tag. Safe while
    servers run: the next read of each goes to PostgreSQL once and is cached again."""
    from server.cache import core as cache

    settings = settings_of(ctx)
    _, tags = _known()
    if tag is not None and tag not in tags:
        fail(f"unknown tag {tag!r}; known: {', '.join(sorted(tags))}", code=USAGE, as_json=as_json)
    with redis_client(settings, as_json) as client:
        if tag is not None:
            result: dict[str, Any] = {
                "ok": True,
                "tag": tag,
                "generation": cache.bump_tags(client, [tag])[tag],
            }
        else:
            # New generations first: a read still computing from before a failed
            # invalidation then stores under a key nobody asks for.
            gens = cache.bump_tags(client, sorted(tags))
            with progress("flushing", None, "keys") as tick:
                deleted = cache.flush_values(client, lambda n: tick(str(n)))
            result = {"ok": True, "tag": None, "deleted": deleted, "generations": gens}
    if as_json:
        emit_json(result)
    elif tag is not None:
        err_console.print(f"[green]flushed[/] tag {tag}: entries made before now are not served")
    else:
        err_console.print(f"[green]flushed[/] {result['deleted']} cached entries")
