"""Fill the app tables with realistic rows for backup and restore measurements.

`python perf/seed_db.py --rows 1000000` against BTEC_DATABASE_URL (migrated first). Rows are
spread over the app tables in proportion to how they grow in use; today that is the audit log.
"""

from __future__ import annotations

import argparse
import os
import time

import psycopg

AUDIT_SQL = """
INSERT INTO audit_log (occurred_at, actor, action, target, request_id, details)
SELECT now() - make_interval(secs => i),
       'user-' || (i %% 5000),
       (ARRAY['login', 'submission.create', 'grade.update', 'file.upload', 'unit.update'])
           [1 + i %% 5],
       'submission/' || (i %% 200000),
       md5(i::text),
       jsonb_build_object('ip', '10.0.' || (i %% 250) || '.' || (i %% 200), 'ua', 'Mozilla/5.0',
                          'n', i, 'note', repeat('x', i %% 40))
FROM generate_series(%(start)s::int, %(stop)s::int) AS i
"""

BATCH = 100_000


def seed(url: str, rows: int) -> None:
    """Add `rows` audit rows to the migrated database at `url`; prints progress."""
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(1, rows + 1, BATCH):
            stop = min(start + BATCH - 1, rows)
            conn.execute(AUDIT_SQL, {"start": start, "stop": stop})
            print(f"audit_log: {stop} rows", flush=True)
        conn.execute("VACUUM ANALYZE audit_log")
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        row = size.fetchone()
    size_text = row[0] if row else "?"
    print(f"seeded {rows} rows in {time.monotonic() - started:.1f} s; database {size_text}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--url", default=os.environ.get("BTEC_DATABASE_URL"))
    args = ap.parse_args()
    if not args.url:
        raise SystemExit("set BTEC_DATABASE_URL or pass --url")
    seed(args.url, args.rows)


if __name__ == "__main__":
    main()
