"""Seed a running btec with an assessment workload over its HTTP API, for the k6 scenarios:
the command line over `btecctl/loadtest/seed.py`, which `btecctl perf run` seeds with too.

Units, assignments with P/M/D criteria and the assessors named on them, assessor and
student accounts (made verified by an admin, then signed in), and existing submissions, a
share of them graded. Writes one JSON file for k6 (`open()` + SharedArray in
`perf/scenarios/lib/assessment.js`): the units with their assignment ids, each assignment's
criteria and assessors, and the students' and assessors' ids and access tokens.

Every sign-in comes from one address, so the server must let them through: start it with
`BTEC_RATELIMIT_POLICIES=auth_login=1000000000/1:closed` (or `BTEC_RATELIMIT_ENABLED=false`);
a 429 stops the seed with that hint. Accounts are hashed with the server's argon2id
parameters: cheap ones (`BTEC_ARGON2_TIME_COST=1`, `BTEC_ARGON2_MEMORY_KIB=8192`,
`BTEC_ARGON2_PARALLELISM=1`) seed 200 students in seconds. The tokens live
BTEC_ACCESS_TOKEN_SECONDS (900 s by default). Unit codes and emails carry a random tag, so
one server can be seeded again.

`python perf/seed_assessment.py [--base-url URL] [--admin-email E] [--admin-password P]
[--units 5] [--assignments 20] [--assessors 5] [--students 200] [--out FILE]`;
`--data-dir DIR` first makes the admin with `btecctl users create-admin` in that data dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from harness import btec_env

from btecctl.loadtest import seed as shared
from btecctl.loadtest.seed import (  # re-exported: the benches import them from here
    ADMIN_EMAIL,
    CHEAP,
    PASSWORD,
    SERVER_ENV,
    Admin,
    SeedError,
    Sizes,
    counts,
    seed_async,
)

__all__ = ["ADMIN_EMAIL", "CHEAP", "PASSWORD", "SERVER_ENV", "Sizes", "counts", "create_admin",
           "seed"]  # fmt: skip


def seed(
    base_url: str, admin_email: str, admin_password: str, sizes: Sizes, **kwargs: Any
) -> dict[str, Any]:
    """`seed_async` run to the end; a refusal stops the program with what the server said."""
    try:
        admin = Admin(admin_email, admin_password)
        return asyncio.run(seed_async(base_url, admin, sizes, **kwargs))
    except SeedError as exc:
        raise SystemExit(f"seeding failed: {exc}") from None


def create_admin(data: Path, email: str, password: str, **env: str) -> None:
    """An admin in the data dir's database, made with `btecctl users create-admin`."""
    try:
        shared.create_admin(btec_env(data, **env), email, password)
    except SeedError as exc:
        raise SystemExit(str(exc)) from None


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--base-url", default="http://127.0.0.1:8080")
    ap.add_argument("--admin-email", default=ADMIN_EMAIL)
    ap.add_argument("--admin-password", default=PASSWORD)
    ap.add_argument("--data-dir", type=Path, help="make the admin here first (btecctl)")
    ap.add_argument("--units", type=int, default=Sizes.units)
    ap.add_argument("--assignments", type=int, default=Sizes.assignments, help="per unit")
    ap.add_argument("--assessors", type=int, default=Sizes.assessors)
    ap.add_argument("--students", type=int, default=Sizes.students)
    ap.add_argument("--submissions", type=int, default=Sizes.submissions, help="per student")
    ap.add_argument("--graded", type=float, default=Sizes.graded, help="share of submissions")
    ap.add_argument("--password", default=PASSWORD, help="the assessors' and students'")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    ap.add_argument("--out", type=Path, default=Path("assessment_seed.json"))
    args = ap.parse_args()
    if min(args.units, args.assignments, args.assessors, args.students) < 1:
        raise SystemExit("--units, --assignments, --assessors and --students must be >= 1")
    started = time.monotonic()
    if args.data_dir is not None:
        create_admin(args.data_dir, args.admin_email, args.admin_password)
    sizes = Sizes(args.units, args.assignments, args.assessors, args.students,
                  args.submissions, args.graded)  # fmt: skip
    document = seed(args.base_url, args.admin_email, args.admin_password, sizes,
                    password=args.password, concurrency=args.concurrency)  # fmt: skip
    args.out.write_text(json.dumps(document))
    seconds = round(time.monotonic() - started, 2)
    print(json.dumps({"seeded": counts(document), "seconds": seconds, "out": str(args.out)}))


if __name__ == "__main__":
    main()
