"""Development tools: benchmarks, the demo, the synthetic STDF generators and the wafer-map pattern
generator, evaluation and fitting scripts.

Nothing under ``stratum.devtools`` ships in the Lambda assets (``infra/stratum_infra/assets.py`` leaves the
folder out), so runtime code never imports from here; the CLI imports the demo lazily.
"""
