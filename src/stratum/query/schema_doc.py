"""Generate docs/schema.md from the public views (``python -m stratum.query.schema_doc > docs/schema.md``)."""

from __future__ import annotations

import sys

from stratum.lake import snapstats

from .engine import schema_session
from .public_schema import PUBLIC

HEADER = """# SQL schema

The public tables of `stratum sql`, `POST /v1/sql` and the analytics API. They are views over the
Parquet lake: every query sees one snapshot per lot (the lot's active snapshot, or the one pinned with
`snapshot_job_id`), optionally narrowed by a lot and wafer context.

- Every execution of every die or part is kept. `is_retest` marks all but the first execution of a die,
  `is_final` the execution the retest policy keeps (`last` by default: the newest by file START_T, then
  publish order, then position in the file; or `highest_bin`). A die is (sublot, test code, wafer, X,
  Y) on a wafer and (sublot, test code, PART_ID) in final test.
- Counts come from PRRs; HBR/SBR/PCR/TSR/WRR summaries are kept apart (`summary_count`, `wrr_*`,
  `test_summaries`, `part_counts`) as cross-checks and are never added to per-site data.
- Results and limits are in base units (unscaled); `*_scal` columns carry the display exponents.
- Times are UTC. Missing STDF values (X/Y -32768, SOFT_BIN 65535, U4 4294967295, empty strings) are NULL.
- Stored files: `workspaces/<ws>/lake/<table>/lot=<lot>/job=<job>/part-00000.parquet` (zstd), one
  dataset per stored table; see `stratum.lake.schema`.

Generated from `stratum.query.public_schema` by `python -m stratum.query.schema_doc`; a test keeps it current.
"""


STATS_HEADER = """
## Derived file: snapshot statistics (not a SQL table)

`workspaces/<ws>/lake/_stats/lot=<lot>/job=<snapshot job>/policy=<retest policy>/stats-v{version}.parquet`:
sufficient statistics of one snapshot under its retest policy, one row per (view, scope, wafer, test), written
on the snapshot's first use by `/tests` or `/capability` (`stratum.lake.snapstats`, computed by
`stratum.analytics.snapstats`) and read by every later call and process. Each row aggregates exactly the rows
of `results` (PTR), `mpr_results` or `ftr_results` it names: means are compensated sums over the count, M2 is
the compensated sum of squared deviations from the row's own mean (two passes). Medians and percentiles are
not in it (they need the raw rows).

| column | type | description |
|---|---|---|"""


def render() -> str:
    ses = schema_session()
    try:
        out = [HEADER]
        for name, view in PUBLIC.items():
            types = {r[0]: r[1] for r in ses.rows(f"DESCRIBE {name}")}
            out.append(f"\n## `{name}`\n\n{view.doc}\n\n| column | type | description |\n|---|---|---|")
            for col, doc in view.cols:
                out.append(f"| `{col}` | {types.get(col, '?')} | {doc.replace('|', '/')} |")
        out.append(STATS_HEADER.format(version=snapstats.FORMAT_VERSION))
        for col, typ, doc in snapstats.COLUMNS:
            out.append(f"| `{col}` | {typ} | {doc.replace('|', '/')} |")
        return "\n".join(out) + "\n"
    finally:
        ses.close()


if __name__ == "__main__":
    sys.stdout.write(render())
