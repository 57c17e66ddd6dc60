"""btecctl assessment: similarity flags for review, and similarity checks queued again (after
a queue outage left submissions unchecked, or after BTEC_SIMILARITY_THRESHOLD changed)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from btecctl.context import session
from btecctl.output import JsonOpt, err_console, noun, out_console, progress, report

app = noun("Assessment: similarity flags and rechecks.")
AssignmentOpt = Annotated[
    int | None,
    typer.Option("--assignment", min=1, metavar="ID", help="Only this assignment's submissions."),
]


LimitOpt = Annotated[int, typer.Option(min=1, max=10_000, metavar="N", help="Most pairs shown.")]


@app.command("flags")
def flags(
    ctx: typer.Context, assignment: AssignmentOpt = None, limit: LimitOpt = 100,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Pairs of submissions flagged as alike, most alike first.

    Pairs of submissions the similarity check flagged, most alike first: assignment, both
    submissions and students, score, when checked."""
    from server.services.submissions import flagged_pairs

    with session(ctx, as_json, postgres=True) as s:
        found = s.run(flagged_pairs(db=s.db, assignment_id=assignment, limit=limit))
    report(as_json, {"flags": found}, lambda: _print_flags(found))


def _print_flags(found: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table("assignment", "submission", "student", "alike", "student", "score", "checked")
    for f in found:
        table.add_row(str(f["assignment_id"]), str(f["submission_id"]), f["student"],
                      str(f["other_id"]), f["other_student"], f"{f['score']:.2f}",
                      f["checked_at"][:19])  # fmt: skip
    out_console.print(table)


@app.command("recheck")
def recheck(ctx: typer.Context, assignment: AssignmentOpt = None, as_json: JsonOpt = False) -> None:
    """Queue a similarity check for every submission (of one assignment with --assignment);
    a worker records the flags at the BTEC_SIMILARITY_THRESHOLD in force."""
    from server.services.submissions import recheck as queue_checks

    with (
        session(ctx, as_json, postgres=True, redis=True) as s,
        progress("queueing", unit="checks") as tick,
    ):
        queued = s.run(queue_checks(db=s.db, jobs=s.jobs, assignment_id=assignment, tick=tick))
    said = f"[green]{queued} similarity checks queued[/]; a worker records flags." if queued else (
        "no submissions to check")  # fmt: skip
    report(as_json, {"ok": True, "queued": queued, "assignment": assignment},
           lambda: err_console.print(said))  # fmt: skip
