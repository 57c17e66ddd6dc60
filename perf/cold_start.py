"""Cold start of `btecctl serve` to ready: first run (new data dir) and with the data dir there.

Targets (issue "Foundation"): at most 10 s on first run, 3 s when the data dir exists.
Timed from process start to the first 200 from /api/v1/health/ready.
`python perf/cold_start.py [--rounds 3]`
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness import btec_env, free_port, median


def time_to_ready(data_dir: Path) -> float:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "btecctl", "serve", "--port", str(port)],
        env=btec_env(data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api/v1/health/ready"
    try:
        while time.monotonic() - started < 60:
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, OSError):
                time.sleep(0.01)
        raise SystemExit("not ready within 60 s")
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    first, warm = [], []
    for _ in range(args.rounds):
        data_dir = Path(tempfile.mkdtemp(prefix="btec-cold-"))
        try:
            first.append(time_to_ready(data_dir))
            warm.append(time_to_ready(data_dir))
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps({
        "first_run_s": [round(x, 3) for x in first],
        "first_run_median_s": round(median(first), 3),
        "existing_data_dir_s": [round(x, 3) for x in warm],
        "existing_data_dir_median_s": round(median(warm), 3),
        "targets_s": {"first_run": 10, "existing_data_dir": 3},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
