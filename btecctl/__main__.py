"""`python -m btecctl` runs the CLI."""

from btecctl.main import run

run()
