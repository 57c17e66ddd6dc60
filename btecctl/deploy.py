"""btecctl deploy: the deploy files btec ships (systemd units, the environment file, the proxy,
PgBouncer, container and Kubernetes files, the Prometheus rules and Grafana dashboard), listed
or copied out of the installed wheel or the checkout, for an operator to put in place."""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from btecctl.context import session
from btecctl.output import USAGE, JsonOpt, fail, noun, out_console, report
from server.config.assets import asset, installed

app = noun("The deploy files btec ships: systemd, proxies, PgBouncer, containers, monitoring.")

# Where each shipped folder goes under --out.
SOURCES = (("deploy", ""), ("runbooks/monitoring", "monitoring"))


@dataclass(frozen=True)
class Shipped:
    source: Path
    name: str  # its path under --out

    def state(self, out: Path) -> str:
        """new, same or differs: what copying it to `out` would do."""
        target = out / self.name
        if not target.exists():
            return "new"
        return "same" if filecmp.cmp(self.source, target, shallow=False) else "differs"


def shipped() -> list[Shipped]:
    """Every shipped deploy file, in a stable order."""
    found = []
    for folder, prefix in SOURCES:
        root = asset(folder)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            found.append(Shipped(path, str(Path(prefix) / path.relative_to(root))))
    return found


@app.command("files")
def files(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Copy the files into DIR (made if missing). Without it, list them.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files in DIR that differ.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the deploy files btec ships, or copy them into a folder with --out.

    They come from the installed wheel (or the checkout): systemd/ (the API, worker and backup
    units), btec.env (every production setting), haproxy/, nginx/, pgbouncer/, container/,
    kubernetes/ and monitoring/ (Prometheus alert rules and the Grafana dashboard).
    runbooks/deploy.md says where each goes. A file already in DIR that differs is left as
    it is and the command exits 1, unless --force."""
    with session(ctx, as_json):  # a bad setting stops it too, as every command
        if out is not None and out.exists() and not out.is_dir():
            fail(f"{out} is not a folder", code=USAGE, as_json=as_json)
        found = shipped()
        states = {f.name: (f.state(out) if out else "listed") for f in found}
        clash = sorted(n for n, s in states.items() if s == "differs")
        if out is not None and clash and not force:
            fail(f"{len(clash)} file(s) in {out} differ from what btec ships; nothing was "
                 "copied (--force overwrites them): " + ", ".join(clash),
                 as_json=as_json, differs=clash)  # fmt: skip
        if out is not None:
            _copy(found, states, out, as_json)
        origin = "wheel" if installed() else "checkout"
        data = {
            "from": origin,
            "out": str(out) if out else None,
            "files": [
                {"name": f.name, "source": str(f.source), "state": states[f.name]} for f in found
            ],
        }
        report(as_json, data, lambda: _show(found, states, out, origin))


def _copy(found: list[Shipped], states: dict[str, str], out: Path, as_json: bool) -> None:
    try:
        for f in found:
            if states[f.name] != "same":
                target = out / f.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f.source, target)
    except OSError as exc:
        fail(f"cannot write {exc.filename or out}: {exc.strerror or exc}", as_json=as_json)


def _show(found: list[Shipped], states: dict[str, str], out: Path | None, origin: str) -> None:
    table = Table("file", "state" if out else "source", box=None)
    for f in found:
        table.add_row(f.name, states[f.name] if out else str(f.source))
    out_console.print(table)
    where = f"copied to {out}" if out else f"shipped in the {origin}"
    out_console.print(f"{len(found)} files {where}")
