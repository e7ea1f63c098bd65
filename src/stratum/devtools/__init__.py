"""Development tools: benchmarks, the demo and the synthetic STDF generators.

Nothing under ``stratum.devtools`` ships in the Lambda assets (``infra/stratum_infra/assets.py`` leaves the
folder out), so runtime code never imports from here; the CLI imports the demo lazily.
"""
