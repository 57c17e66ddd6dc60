"""btecctl cache: what the read cache holds and how well it serves, and flushing it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from btecctl.context import session
from btecctl.health import base_url, default_url, scrape
from btecctl.output import USAGE, JsonOpt, err_console, fail, noun, out_console, progress, report

if TYPE_CHECKING:
    from pydantic import SecretStr

    from server.cache.core import CacheSpec

app = noun("The Redis read cache: stats and flush.")
COUNTERS = ("hits", "misses", "coalesced")
UrlOpt = Annotated[
    str | None, typer.Option(metavar="URL", help="A running server whose /metrics to read.")
]
TagOpt = Annotated[
    str | None,
    typer.Option(metavar="TAG", help="Invalidate only the entries under this tag (e.g. units)."),
]


def _known() -> tuple[dict[str, CacheSpec], set[str]]:
    import server.services.units  # noqa: F401 - declares its caches
    from server.cache.core import REGISTRY, known_tags

    return dict(REGISTRY), known_tags()


def _served(base: str, token: SecretStr | None) -> dict[str, dict[str, float]] | str:
    """Per-cache counters from a running server's /metrics, or why they are not there."""
    try:
        families = scrape(base, token)
    except (LookupError, ConnectionError) as exc:
        return str(exc)
    found: dict[str, dict[str, float]] = {}
    for family in families:
        kind = family.name.removeprefix("btec_cache_")
        for sample in family.samples if family.name.startswith("btec_cache_") else ():
            if sample.name.endswith("_total"):
                row = found.setdefault(sample.labels["cache"], {})
                row[kind] = row.get(kind, 0) + sample.value
    return found


def _row(
    name: str, spec: CacheSpec | None, entries: Any, counts: dict[str, float]
) -> dict[str, Any]:
    """One cache's line of `cache stats`."""
    looked = sum(counts.get(k, 0) for k in COUNTERS)
    return {
        "cache": name,
        "ttl_s": spec.ttl if spec else None,
        "tags": list(spec.tags) if spec else [],
        "entries": entries.keys if entries else 0,
        "bytes": entries.bytes if entries else 0,
        **{k: int(counts.get(k, 0)) for k in COUNTERS},
        "errors": int(counts.get("errors", 0)),
        "hit_ratio": round(counts.get("hits", 0) / looked, 3) if looked else None,
    }


@app.command("stats")
def stats(ctx: typer.Context, url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """Entries and bytes per cache and tag generations (from Redis), and hits, misses and errors
    with the hit ratio (from a running server's /metrics).

    The Redis read cache per cache name: TTL, entries and bytes in Redis, the tag generations,
    and the hits, misses, shared misses, errors and hit ratio counted by the running server at
    `--url` (default `BTEC_HOST:BTEC_PORT`, sending `BTEC_METRICS_TOKEN`)."""
    with session(ctx, as_json, redis=True) as s:
        base = base_url(url or default_url(s.settings), as_json)
        found = _in_redis(s.redis)
    served = _served(base, s.secret("metrics_token"))
    counted = served if isinstance(served, dict) else {}
    specs, entries = found.pop("specs"), found.pop("entries")
    caches = [_row(n, spec, entries.get(n), counted.get(n, {})) for n, spec in specs.items()]
    note = {} if isinstance(served, dict) else {"server_note": served}
    result = {"caches": caches, **found, "server": base, "server_counters": not note, **note}
    report(as_json, result, lambda: _print_stats(result))


def _in_redis(client: Any) -> dict[str, Any]:
    """What Redis holds: entries per cache (with every declared one), tag generations, memory."""
    from server.cache import core as cache

    specs, tags = _known()
    entries = cache.entry_stats(client)
    memory = client.info("memory")
    return {
        "specs": {n: specs.get(n) for n in sorted(set(specs) | set(entries))},
        "entries": entries,
        "generations": cache.generations(client, sorted(tags)),
        "redis_used_memory_bytes": memory.get("used_memory"),
        "redis_maxmemory_bytes": memory.get("maxmemory"),
    }


def _print_stats(result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="read cache", title_justify="left")
    table.add_column("cache", no_wrap=True)
    for column in ("ttl", "keys", "bytes", "hits", "miss", "shared", "errors", "ratio"):
        table.add_column(column, justify="right")
    for r in result["caches"]:
        ratio = "-" if r["hit_ratio"] is None else f"{r['hit_ratio']:.1%}"
        table.add_row(r["cache"], f"{r['ttl_s']:g}" if r["ttl_s"] else "-", str(r["entries"]),
                      str(r["bytes"]), str(r["hits"]), str(r["misses"]), str(r["coalesced"]),
                      str(r["errors"]), ratio)  # fmt: skip
    out_console.print(table)
    gens = ", ".join(f"{t}={g}" for t, g in result["generations"].items()) or "none"
    out_console.print(f"tag generations: {gens}")
    if not result["server_counters"]:
        err_console.print(f"[yellow]counters:[/] {result['server_note']}", highlight=False)


@app.command("flush")
def flush(ctx: typer.Context, tag: TagOpt = None, as_json: JsonOpt = False) -> None:
    """Drop cached reads: every entry, or with --tag the entries under one tag. Safe while
    servers run: the next read of each goes to PostgreSQL once and is cached again."""
    _, tags = _known()
    if tag is not None and tag not in tags:
        fail(f"unknown tag {tag!r}; known: {', '.join(sorted(tags))}", code=USAGE, as_json=as_json)
    with session(ctx, as_json, redis=True) as s:
        result = _flush_tag(s.redis, tag) if tag is not None else _flush_all(s.redis, tags)
    said = (f"tag {tag}: entries made before now are not served" if tag is not None
            else f"{result['deleted']} cached entries")  # fmt: skip
    report(as_json, result, lambda: err_console.print(f"[green]flushed[/] {said}"))


def _flush_tag(client: Any, tag: str) -> dict[str, Any]:
    from server.cache import core as cache

    return {"ok": True, "tag": tag, "generation": cache.bump_tags(client, [tag])[tag]}


def _flush_all(client: Any, tags: set[str]) -> dict[str, Any]:
    from server.cache import core as cache

    # New generations first: a read still computing from before a failed invalidation then
    # stores under a key nobody asks for.
    generations = cache.bump_tags(client, sorted(tags))
    with progress("flushing", None, "keys") as tick:
        deleted = cache.flush_values(client, lambda n: tick(str(n)))
    return {"ok": True, "tag": None, "deleted": deleted, "generations": generations}
