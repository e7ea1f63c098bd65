"""A snapshot's sufficient statistics per (view, lot or wafer, test), materialised once in the lake.

``/tests`` and ``/capability`` read every number they need about the results from these rows (capability's
per-wafer subgroups and per-lot totals; the tests' counts, means, sigmas, extremes and fails), so a call
costs O(tests × wafers) instead of a pass over every result. The rows are computed by one aggregate over the
snapshot's public views (``results``, ``mpr_results``, ``ftr_results``: the retest policy of the snapshot
decides ``is_final``), on first use, and written to the lake (``stratum.lake.snapstats``); every later
process reads the file. Every row is a direct aggregate over the rows a route asks about, never a
combination of partial aggregates; means and M2 use compensated sums and two passes, so they agree with a
correctly rounded computation from the raw values to ~1e-15 (tests/integration/test_snapshot_stats.py holds
them to 1e-12 relative on every corpus file under both retest policies).

Percentiles and medians cannot come from sufficient statistics: the routes that need them (charts, the
monitors' median test time) keep reading the raw rows.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from stratum.lake import snapstats as store
from stratum.query.engine import Session
from stratum.storage.objectstore import ObjectStore

log = logging.getLogger("stratum.analytics")

VIEWS = {"final": "is_final", "first_pass": "NOT is_retest", "all": "true"}

_TABLES = {"P": "results", "M": "mpr_results", "F": "ftr_results"}
_KEY = "test_num, test_name, wafer_id, on_wafer"


def _sql(tt: str, table: str) -> str:
    """Per (test) and per (test, wafer on a wafer), for every view: n, n_valid, fails, mean, M2, min, max.

    Two passes with compensated sums: the mean is fsum(x)/n, then M2 = fsum((x − mean)²) around each group's own
    mean, which keeps the variance of values far from zero (a 40 MHz clock measured to 1 Hz) exact to ~1e-15
    where a one-pass variance loses digits to the mean's magnitude."""
    rel = table
    if tt != "P":  # the pin and functional rows: per named wafer (only named wafers can be asked for)
        rel = f"(SELECT *, wafer_id IS NOT NULL AS on_wafer FROM {table})"
    value = "result::DOUBLE" if tt != "F" else "NULL::DOUBLE"
    valid = "valid" if tt != "F" else "false"
    first = ", ".join(
        f"""count(*) FILTER (WHERE {v}) AS n_{k}, count(*) FILTER (WHERE {v} AND valid) AS v_{k},
            count(*) FILTER (WHERE {v} AND passed = false) AS f_{k},
            fsum(x) FILTER (WHERE {v} AND valid) / count(*) FILTER (WHERE {v} AND valid) AS m_{k},
            min(x) FILTER (WHERE {v} AND valid) AS lo_{k}, max(x) FILTER (WHERE {v} AND valid) AS hi_{k}"""
        for k, v in VIEWS.items()
    )
    dev = ", ".join(
        f"fsum((x.x - g.m_{k}) * (x.x - g.m_{k})) FILTER (WHERE {v} AND valid) AS d_{k}" for k, v in VIEWS.items()
    )
    same_test = "g.test_num = x.test_num AND g.test_name IS NOT DISTINCT FROM x.test_name"
    out = ", ".join(
        f"g.n_{k}, g.v_{k}, g.f_{k}, g.m_{k}, CASE WHEN g.v_{k} >= 2 THEN d.d_{k} END, g.lo_{k}, g.hi_{k}"
        for k in VIEWS
    )
    return f"""
        WITH x AS (SELECT test_num, test_name, wafer_id, on_wafer, is_final, is_retest, {valid} AS valid, passed,
                          {value} AS x FROM {rel}),
        g AS (SELECT test_num, test_name, grouping(wafer_id, on_wafer) = 0 AS per_wafer, wafer_id, on_wafer, {first}
              FROM x GROUP BY GROUPING SETS ((test_num, test_name), ({_KEY}))),
        d AS (SELECT x.test_num, x.test_name, false AS per_wafer, NULL AS wafer_id, NULL AS on_wafer, {dev}
              FROM x JOIN g ON NOT g.per_wafer AND {same_test} GROUP BY x.test_num, x.test_name
              UNION ALL
              SELECT x.test_num, x.test_name, true, x.wafer_id, x.on_wafer, {dev}
              FROM x JOIN g ON g.per_wafer AND {same_test} AND g.wafer_id IS NOT DISTINCT FROM x.wafer_id
                            AND g.on_wafer = x.on_wafer
              GROUP BY x.test_num, x.test_name, x.wafer_id, x.on_wafer)
        SELECT g.test_num, g.test_name, g.per_wafer, g.wafer_id, g.on_wafer, {out}
        FROM g LEFT JOIN d ON d.per_wafer = g.per_wafer AND d.test_num = g.test_num
             AND d.test_name IS NOT DISTINCT FROM g.test_name AND d.wafer_id IS NOT DISTINCT FROM g.wafer_id
             AND d.on_wafer IS NOT DISTINCT FROM g.on_wafer"""


Row = tuple[int, int | None, int, float | None, float | None, float | None, float | None]


@dataclass(frozen=True)
class SnapshotStats:
    """The rows of one snapshot: ``groups[(view, scope, wafer_id)][(test_type, test_num, test_name)]`` is
    (n, n_valid, fails, mean, m2, min, max); ``wafers[view]`` lists the wafer ids of the ``wafer`` rows."""

    groups: dict[tuple[str, str, str | None], dict[tuple[str, int, str], Row]]

    def rows(self, view: str, wafer_id: str | None) -> dict[tuple[str, int, str], Row]:
        """Per test, in ``view``: the whole lot (``wafer_id`` None) or one wafer."""
        return self.groups.get((view, "lot" if wafer_id is None else "wafer", wafer_id), {})

    def wafer_rows(self, view: str) -> dict[str | None, dict[tuple[str, int, str], Row]]:
        """Per wafer (the null-id wafer under None), per test, in ``view``."""
        return {w: g for (v, scope, w), g in self.groups.items() if v == view and scope == "wafer"}


def variance(n_valid: int | None, m2: float | None) -> float | None:
    """The sample variance (N − 1) from a row's M2."""
    if m2 is None or not n_valid or n_valid < 2:
        return None
    return m2 / (n_valid - 1)


def compute(s: Session) -> dict[str, list[Any]]:
    """The rows of the session's snapshot (one lot), as columns of ``stratum.lake.snapstats.COLUMNS``."""
    cols: dict[str, list[Any]] = {n: [] for n, _, _ in store.COLUMNS}
    for tt, table in _TABLES.items():
        for tn, name, per_wafer, wafer_id, on_wafer, *vals in s.rows(_sql(tt, table)):
            if per_wafer and not on_wafer:
                continue  # parts off any wafer (final test) count in the lot rows only
            for i, view in enumerate(VIEWS):
                n, n_valid, fails, mean, m2, lo, hi = vals[7 * i : 7 * i + 7]
                if not n:
                    continue
                if tt == "F":
                    n_valid = None
                row = (view, "wafer" if per_wafer else "lot", wafer_id if per_wafer else None, tt, tn, name)
                for k, v in zip(cols, (*row, n, n_valid, fails, mean, m2, lo, hi), strict=True):
                    cols[k].append(v)
    return cols


def _parse(cols: dict[str, list[Any]]) -> SnapshotStats:
    groups: dict[tuple[str, str, str | None], dict[tuple[str, int, str], Row]] = {}
    names = [n for n, _, _ in store.COLUMNS]
    for rec in zip(*(cols[n] for n in names), strict=True):
        view, scope, wafer_id, tt, tn, name, n, n_valid, fails, mean, m2, lo, hi = rec
        vals = tuple(None if isinstance(v, float) and math.isnan(v) else v for v in (mean, m2, lo, hi))
        groups.setdefault((view, scope, wafer_id), {})[(tt, tn, name)] = (n, n_valid, fails, *vals)
    return SnapshotStats(groups)


def load(lake: ObjectStore, ws: str, s: Session, lot_id: str) -> SnapshotStats:
    """The statistics of the session's snapshot of ``lot_id``: read from the lake, or computed from the views and
    written there first (idempotent: a snapshot and its policy decide every row)."""
    snap = s.resolved.snapshot_job_ids[lot_id]
    key = store.stats_key(ws, lot_id, snap, s.resolved.retest_policy[lot_id])
    cols = store.read(lake, key, s.cur)
    if cols is None:
        t0 = time.perf_counter()
        cols = compute(s)
        try:
            store.write(lake, key, cols)
        except Exception:  # noqa: BLE001 - the file is a cache: the numbers are served, the next process retries
            log.warning("could not write the statistics of snapshot %s (lot %s)", snap, lot_id, exc_info=True)
        ms = (time.perf_counter() - t0) * 1e3
        log.info("statistics of snapshot %s (lot %s) materialised in %.0f ms", snap, lot_id, ms)
    return _parse(cols)
