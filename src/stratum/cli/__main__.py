"""``python -m stratum.cli``."""

from stratum.cli import run

run()
