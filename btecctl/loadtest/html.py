"""The HTML report of a run (`report.html` beside summary.json): one self-contained page that
follows docs/perf-report-template.md, section by section, with its plots inline as SVG.

matplotlib draws the plots (the most used and kept plotting library for Python; its SVG
backend needs no display and no browser-side code), and jinja2, which btec's mail already
uses, fills the page with autoescaping on. The page loads nothing: no script, no CDN, no
font; its stylesheet is inline, so it opens the same from a CI artefact, a mail attachment
or a laptop offline.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from importlib import resources
from typing import Any

import jinja2

REPORT = "report.html"
TEMPLATE = "report.html.j2"  # beside this module
# (title, y label, ((series key, legend), ...)): one plot each, over the run's elapsed time.
CLIENT_PLOTS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("Requests per second", "requests/s", (("rps", "requests/s"),)),
    ("Latency", "ms", (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99"))),
    ("Failed requests per interval", "requests", (("failed", "failed"),)),
    ("Active VUs", "VUs", (("vus", "VUs"),)),
)
SERVER_PLOTS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("Server CPU", "% of one core", (("cpu_percent", "CPU"),)),
    ("Server memory", "MiB", (("rss_mib", "RSS"),)),
    ("Database pool", "connections", (("pool_in_use", "in use"), ("pool_size", "open"))),
    ("Database pool waits", "ms", (("pool_wait_ms", "mean wait for a connection"),)),
    ("Job queue", "jobs", (("queue_depth", "queued"),)),
)


def svg_plot(
    title: str, ylabel: str, lines: Sequence[tuple[str, Sequence[float], Sequence[float | None]]]
) -> str:
    """One line plot as an inline <svg> element. A bare Figure needs no backend (no pyplot,
    no display): savefig picks the SVG writer by the format."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 2.6), dpi=96)
    axes = figure.add_subplot()
    for label, xs, ys in lines:
        axes.plot(xs, [float("nan") if y is None else y for y in ys], label=label, linewidth=1.4)
    axes.set_title(title, loc="left", fontsize=11)
    axes.set_xlabel("elapsed (s)")
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.set_ylim(bottom=0)
    if len(lines) > 1:
        axes.legend(loc="upper left", fontsize=8, frameon=False)
    figure.tight_layout()
    out = io.StringIO()
    figure.savefig(out, format="svg")
    text = out.getvalue()
    return text[text.index("<svg") :]  # the element only: no XML prolog or DOCTYPE inline


def _plot(title: str, ylabel: str, series: Sequence[dict[str, Any]],
          lines: Sequence[tuple[str, str]]) -> str | None:  # fmt: skip
    """A plot of `lines` (key, legend) of `series` over elapsed_s; None with nothing to show."""
    xs = [float(point.get("elapsed_s") or 0.0) for point in series]
    drawn = [(legend, xs, [point.get(key) for point in series]) for key, legend in lines
             if any(point.get(key) is not None for point in series)]  # fmt: skip
    if not xs or not drawn:
        return None
    return svg_plot(title, ylabel, drawn)


def plots(summary: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """The report's plots as (title, <svg>), the client's and the server's."""
    found: dict[str, list[tuple[str, str]]] = {"client": [], "server": []}
    for part, specs, series in (
        ("client", CLIENT_PLOTS, summary.get("series") or []),
        ("server", SERVER_PLOTS, summary.get("server_series") or []),
    ):
        for title, ylabel, lines in specs:
            svg = _plot(title, ylabel, series, lines)
            if svg is not None:
                found[part].append((title, svg))
    return found  # fmt: skip


def render(summary: dict[str, Any]) -> str:
    """The report of `summary` as one HTML document."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["ms"] = lambda v: "-" if v is None else f"{v:,.1f}"
    env.filters["num"] = lambda v: "-" if v is None else f"{v:,.4g}"
    template = resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    return env.from_string(template).render(s=summary, plots=plots(summary))
