"""The ``stratum`` command line (placeholder until the CLI module lands)."""
import sys

from stratum import __version__


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--version"]:
        print(f"stratum {__version__}")
        return 0
    return 2
