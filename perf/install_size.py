"""The size of a production install against a development checkout's venv.

Builds the wheel from this tree, installs it with constraints.txt into a fresh venv in a
temporary directory (no extras, then with `s3`, as deploy/container/Containerfile does), and
prints each venv's size on disk with the development venv's (`.venv`, the README's install)
and the largest packages of the production one.

`python perf/install_size.py`
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def size_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


def install(tmp: Path, wheel: Path, extra: str) -> Path:
    venv = tmp / f"venv{extra or '-plain'}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    target = f"{wheel}[{extra.strip('-')}]" if extra else str(wheel)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "-c", str(ROOT / "constraints.txt")]
    subprocess.run([*pip, target], check=True, capture_output=True)
    return venv


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="btec-size-") as name:
        tmp = Path(name)
        subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp),
                        str(ROOT)], check=True, capture_output=True)  # fmt: skip
        wheel = next(tmp.glob("btec-*.whl"))
        plain, s3 = install(tmp, wheel, ""), install(tmp, wheel, "-s3")
        site = next((plain / "lib").glob("python*/site-packages"))
        largest = sorted(((size_mb(p), p.name) for p in site.iterdir() if p.is_dir()),
                         reverse=True)[:8]  # fmt: skip
        print(json.dumps({
            "wheel_kb": round(wheel.stat().st_size / 1024),
            "production_venv_mb": size_mb(plain),
            "production_with_s3_mb": size_mb(s3),
            "development_venv_mb": size_mb(ROOT / ".venv"),
            "largest_production_packages_mb": {n: s for s, n in largest},
        }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
