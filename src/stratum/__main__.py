"""The ``stratum`` console script (``stratum.__main__:run``) and ``python -m stratum``: the CLI's own modules
(argparse, logging, the command parsers) load without the cyclic GC's passes (``stratum.coldstart.loading``),
then ``stratum.cli.run`` parses and runs the command and ends the process."""

from stratum.coldstart import loading


def run() -> None:
    with loading():
        from stratum.cli import run as run_command
    run_command()


if __name__ == "__main__":
    run()
