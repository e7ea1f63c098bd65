"""Commands beyond the core ones: demo, serve, keys (registered with ``stratum.cli.extra_command``)."""
