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


_CLASS = "test_num, test_name, wafer_id, on_wafer, is_final, is_retest"


def _sql(tt: str, table: str) -> tuple[str, str, str]:
    """Three statements for the rows of ``table``, per (test, wafer, on a wafer or not) and class of execution
    (is_final, is_retest; a view is a union of classes): the first pass (n, n_valid, fails, fsum, min and max of
    the valid values) as the temp table ``_snapstats_g``; the means of each view per group and per test as
    ``_snapstats_m``; then the second pass: the sums of squared deviations of the valid values from the group's
    mean (``dw_<view>``) and from the test's mean over the lot (``dl_<view>``).

    Two passes with compensated sums keep the variance of values far from zero (a 40 MHz clock measured to 1 Hz)
    exact to ~1e-15 where a one-pass variance loses digits to the mean's magnitude. Views and lot rows add up
    classes and groups: counts, sums, and squared deviations around one common mean (no combination formula)."""
    rel = table
    if tt != "P":  # the pin and functional rows: per named wafer (only named wafers can be asked for)
        rel = f"(SELECT *, wafer_id IS NOT NULL AS on_wafer FROM {table})"
    xv = "CASE WHEN valid THEN result::DOUBLE END" if tt != "F" else "NULL::DOUBLE"  # NULL unless valid
    first = f"""
        CREATE OR REPLACE TEMP TABLE _snapstats_g AS
        SELECT {_CLASS}, count(*) AS n, count(xv) AS v, count_if(passed = false) AS f, fsum(xv) AS s, min(xv) AS lo,
               max(xv) AS hi
        FROM (SELECT *, {xv} AS xv FROM {rel}) GROUP BY {_CLASS}"""
    means = ", ".join(
        f"fsum(s) FILTER (WHERE {v}) / sum(v) FILTER (WHERE {v}) AS mw_{k}, "
        f"fsum(fsum(s) FILTER (WHERE {v})) OVER t / sum(sum(v) FILTER (WHERE {v})) OVER t AS ml_{k}"
        for k, v in VIEWS.items()
    )
    second = f"""
        CREATE OR REPLACE TEMP TABLE _snapstats_m AS
        SELECT test_num, test_name, wafer_id, on_wafer, {means} FROM _snapstats_g
        GROUP BY test_num, test_name, wafer_id, on_wafer WINDOW t AS (PARTITION BY test_num, test_name)"""
    dev = ", ".join(
        f"fsum((r.xv - m.mw_{k}) * (r.xv - m.mw_{k})) AS dw_{k}, fsum((r.xv - m.ml_{k}) * (r.xv - m.ml_{k})) AS dl_{k}"
        for k in VIEWS
    )
    third = f"""
        SELECT r.test_num, r.test_name, r.wafer_id, r.on_wafer, r.is_final, r.is_retest, {dev}
        FROM (SELECT {_CLASS}, {xv} AS xv FROM {rel}) r
        JOIN _snapstats_m m ON m.test_num = r.test_num AND m.test_name IS NOT DISTINCT FROM r.test_name
             AND m.wafer_id IS NOT DISTINCT FROM r.wafer_id AND m.on_wafer = r.on_wafer
        WHERE r.xv IS NOT NULL
        GROUP BY r.test_num, r.test_name, r.wafer_id, r.on_wafer, r.is_final, r.is_retest"""
    return first, second, third


_IN_VIEW = {
    "final": lambda fin, retest: fin,
    "first_pass": lambda fin, retest: not retest,
    "all": lambda fin, retest: True,
}


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

    def add(view: str, wafer: tuple | None, tt: str, tn: int, name: str, values: tuple) -> None:
        head = (view, "lot" if wafer is None else "wafer", None if wafer is None else wafer[0], tt, tn, name)
        for k, v in zip(cols, (*head, *values), strict=True):
            cols[k].append(v)

    for tt, table in _TABLES.items():
        first, second, third = _sql(tt, table)
        try:
            s.execute(first)
            s.execute(second)
            classes = s.rows(f"SELECT {_CLASS}, n, v, f, s, lo, hi FROM _snapstats_g")
            devs = {tuple(r[:6]): r[6:] for r in s.rows(third)}
        finally:
            s.execute("DROP TABLE IF EXISTS _snapstats_g")
            s.execute("DROP TABLE IF EXISTS _snapstats_m")
        # per (view, test, wafer key) and per (view, test): n, n_valid, fails, sums, dw, dl, mins, maxs
        groups: dict[tuple, list] = {}
        lots: dict[tuple, list] = {}
        for tn, name, wafer_id, on_wafer, fin, retest, n, nv, fails, sx, lo, hi in classes:
            dev = devs.get((tn, name, wafer_id, on_wafer, fin, retest))
            for i, (view, keep) in enumerate(_IN_VIEW.items()):
                if not keep(fin, retest):
                    continue
                targets = [lots.setdefault((view, tn, name), [0, 0, 0, [], [], [], [], []])]
                if on_wafer:  # parts off any wafer (final test) count in the lot rows only
                    targets.append(groups.setdefault((view, tn, name, wafer_id), [0, 0, 0, [], [], [], [], []]))
                for j, acc in enumerate(targets):
                    acc[0] += n
                    acc[1] += nv
                    acc[2] += fails
                    if nv:
                        assert dev is not None
                        acc[3].append(sx)
                        acc[4].append(dev[2 * i + (1 if j == 0 else 0)])  # dl for the lot, dw for the wafer
                        acc[5].append(lo)
                        acc[6].append(hi)

        def values(acc: list, tt: str = tt) -> tuple:
            n, nv, fails, sxs, ds, los, his, _ = acc
            mean = math.fsum(sxs) / nv if nv else None
            m2 = math.fsum(ds) if nv >= 2 else None
            lo, hi = (min(los), max(his)) if nv else (None, None)
            return (n, None if tt == "F" else nv, fails, mean, m2, lo, hi)

        for (view, tn, name, wafer_id), acc in groups.items():
            add(view, (wafer_id,), tt, tn, name, values(acc))
        for (view, tn, name), acc in lots.items():
            add(view, None, tt, tn, name, values(acc))
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
