"""Benchmarks (``make bench``; development tools, not shipped in the Lambda assets): ingest throughput
against stdf-convert, and API latency against hand-written DuckDB queries, each measured in the same run.
Figures are written to ``bench/results/<name>.json`` and printed as a table.

    python -m stratum.devtools.bench ingest [--runs 3] [--big-mb 520]
    python -m stratum.devtools.bench api [--runs 7] [--wafers 200]
    python -m stratum.devtools.bench all

Every ingest case runs in a fresh subprocess so its peak RSS is its own. stdf-convert (a dev
dependency, the oracle) is the reference: it reads every record type into Arrow tables, which are
then written as zstd Parquet.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
CORPUS = ROOT.parent / "shared" / "corpus"
D10 = CORPUS / "ltx_diamond_d10_ws_4site_95mb.std.gz"
RESULTS = ROOT / "bench" / "results"
DATA = ROOT / "bench" / "data"
