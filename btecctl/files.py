"""btecctl files: list uploaded files by scan status, and queue scans for files without a
verdict (after a scanner outage, or when a scanner is added to a deployment that ran
without one)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer

from btecctl.context import session
from btecctl.output import USAGE, JsonOpt, err_console, fail, noun, out_console, report

app = noun("Uploaded files: list by scan status, rescan.")
Status = Literal["pending", "clean", "infected", "error", "unscanned"]
StatusOpt = Annotated[Status | None, typer.Option(help="Only files with this scan status.")]
LimitOpt = Annotated[int, typer.Option(min=1, max=10_000, metavar="N", help="Most files shown.")]
UnscannedOpt = Annotated[
    bool,
    typer.Option(
        "--unscanned", help="Also files uploaded while no scanner was configured (`unscanned`)."
    ),
]


@app.command("list")
def list_files(
    ctx: typer.Context, status: StatusOpt = None, limit: LimitOpt = 100, as_json: JsonOpt = False
) -> None:
    """Uploaded files, newest first: owner, name, size and scan verdict.

    Uploaded files, newest first: id, owner, name, size, scan status and detail (the signature
    of an infected file, the reason of an `error`)."""
    from server.services.files import listing

    with session(ctx, as_json, postgres=True) as s:
        found = s.run(listing(db=s.db, status=status, limit=limit))
    report(as_json, {"files": found}, lambda: _print_files(found))


def _print_files(found: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table()
    table.add_column("id", no_wrap=True)  # ids are for copying
    for column in ("owner", "name", "size", "status", "detail", "uploaded"):
        table.add_column(column)
    for f in found:
        table.add_row(f["id"], f["owner"], f["filename"], str(f["size_bytes"]),
                      f["scan_status"], f["scan_detail"] or "", f["created_at"][:19])  # fmt: skip
    out_console.print(table)


@app.command("rescan")
def rescan(ctx: typer.Context, unscanned: UnscannedOpt = False, as_json: JsonOpt = False) -> None:
    """Queue a scan for every file that is `pending` or `error` (and `unscanned` with --unscanned).
    The worker records each verdict.

    Queue a virus scan for every file that is `pending` or `error` (and, with `--unscanned`,
    every file uploaded while no scanner was configured); a worker records each verdict. Needs
    `BTEC_CLAMD_URL` (exit 2 without it)."""
    from server.services.files import rescan as queue_scans

    statuses = ["pending", "error", *(["unscanned"] if unscanned else [])]
    with session(ctx, as_json, postgres=True, redis=True) as s:
        if s.settings.clamd_url is None:
            fail("no scanner is configured: set BTEC_CLAMD_URL", code=USAGE, as_json=as_json)
        queued = s.run(queue_scans(db=s.db, jobs=s.jobs, statuses=statuses))
    said = f"[green]{queued} scans queued[/]; a worker records the verdicts." if queued else (
        "nothing to scan")  # fmt: skip
    report(as_json, {"ok": True, "queued": queued, "statuses": statuses},
           lambda: err_console.print(said))  # fmt: skip
