"""Where btec's own files are: the SQL migrations, the monitoring rules and dashboard, the
deploy files, the k6 scenarios and the generated docs.

In a checkout they live in their folders at the top of the tree, where people edit them. The
wheel carries each one under `server/assets/` at the same relative path (pyproject.toml, hatch's
force-include), so an installed btecctl needs no checkout. `asset()` answers the packaged copy
in an installed wheel and the checkout's otherwise; an editable install has no packaged copy,
so it reads the checkout.
"""

from __future__ import annotations

from pathlib import Path

PACKAGED = Path(__file__).resolve().parents[1] / "assets"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def asset(path: str) -> Path:
    """Where `path` (as it is in the checkout: "migrations", "runbooks/monitoring", …) is:
    in the installed wheel when btec runs from one, in the checkout otherwise."""
    return (PACKAGED if installed() else PROJECT_ROOT) / path


def installed() -> bool:
    """True when btec runs from an installed wheel, not from a checkout."""
    return PACKAGED.is_dir()
