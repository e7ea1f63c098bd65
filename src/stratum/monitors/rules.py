"""Rule kinds: a registry (kind -> version, params model, evaluate). A new kind registers itself with
``@rule(kind, version, Params)``; the API validates ``rule.params`` with its model.

A rule evaluates ONE lot snapshot and returns an ``Outcome`` per subject it looked at: ``fired`` True
(a finding), False (fine: a firing subject recovers) or None (insufficient data: neither). Aggregates
come from the analytics service (yields, bins, capability) and the query engine's snapshot views; lot
aggregates used as history are cached per snapshot job (immutable) by :class:`Lake`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stratum.models import Lot
from stratum.patterns import taxonomy as tx
from stratum.query.engine import Scope


@dataclass
class Outcome:
    subject: dict[str, Any]
    fired: bool | None
    values: dict[str, Any] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class RuleKind:
    kind: str
    version: int
    params_model: type[BaseModel]
    evaluate: Callable[[LotContext, Any], list[Outcome]]
    description: str


REGISTRY: dict[str, RuleKind] = {}


def rule(kind: str, version: int, params: type[BaseModel]):
    def deco(fn: Callable[[LotContext, Any], list[Outcome]]):
        REGISTRY[kind] = RuleKind(kind, version, params, fn, (fn.__doc__ or "").strip().splitlines()[0])
        return fn

    return deco


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


Fraction = Field(..., ge=0.0, le=1.0)


# -- what a rule sees ----------------------------------------------------------------------------
class Lake:
    """The services a rule reads through, plus the per-snapshot cache of lot aggregates."""

    def __init__(self, analytics, engine, sql, catalog, cache) -> None:
        self.analytics = analytics
        self.engine = engine
        self.sql = sql
        self.catalog = catalog
        self.cache = cache  # MonitorStore: get_lot_stats / put_lot_stats

    def cached(self, ws: str, snapshot_job_id: str, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per (snapshot, key): a snapshot never changes, so neither do its aggregates."""
        got = self.cache.get_lot_stats(ws, f"{snapshot_job_id}#{key}")
        if got is not None:
            return got["v"]
        value = compute()
        self.cache.put_lot_stats(ws, f"{snapshot_job_id}#{key}", {"v": value})
        return value

    def capability(self, ws: str, lot_id: str, snapshot_job_id: str, test_num: int) -> dict[str, Any]:
        """The analytics route's answer: it reads the snapshot's statistics materialised in the lake (issue 16), so
        the monitors keep no copy of their own."""
        return self.analytics.capability(ws, lot_id, snapshot_job_id=snapshot_job_id, test_num=test_num)

    def lot_stats(self, ws: str, lot_id: str, snapshot_job_id: str) -> dict[str, Any]:
        """Yields and bin counts of a lot snapshot, per lot and per wafer (from the analytics service)."""
        got = self.cache.get_lot_stats(ws, snapshot_job_id)
        if got is not None:
            return got
        a = self.analytics
        wafers = a.wafers(ws, lot_id, snapshot_job_id)
        by_lot = a.bins(ws, lot_id, snapshot_job_id=snapshot_job_id, by="lot")
        by_wafer = a.bins(ws, lot_id, snapshot_job_id=snapshot_job_id, by="wafer") if wafers else {"bins": []}
        with self.engine.session(ws, Scope(lot_id=lot_id, snapshot_job_id=snapshot_job_id)) as s:
            tt = s.rows("SELECT median(test_time_ms) FROM parts WHERE is_final AND test_time_ms IS NOT NULL")[0][0]
        y = by_lot["yield"][0] if by_lot["yield"] else {}
        bins: dict[str, Any] = {"H": {}, "S": {}}
        for b in by_lot["bins"]:
            bins[b["bin_type"]][str(b["bin_num"])] = [b["part_count"], b["first_pass_count"]]
        wbins: dict[str, Any] = {}
        for b in by_wafer["bins"]:
            wbins.setdefault(b["wafer_id"] or "", {"H": {}, "S": {}})[b["bin_type"]][str(b["bin_num"])] = b[
                "part_count"
            ]
        stats = {
            "lot_id": lot_id,
            "snapshot_job_id": snapshot_job_id,
            "parts": y.get("parts", 0),
            "good": y.get("good", 0),
            "first_pass_parts": y.get("first_pass_parts", 0),
            "first_pass_good": y.get("first_pass_good", 0),
            "retests": y.get("retests", 0),
            "test_time_median_ms": None if tt is None else float(tt),
            "bins": bins,
            "wafers": [
                {
                    "wafer_id": w["wafer_id"],
                    "parts": w["part_count"],
                    "good": w["good_count"],
                    "first_pass_parts": w["first_pass_count"],
                    "first_pass_good": w["first_pass_good"],
                    "bins": wbins.get(w["wafer_id"] or "", {"H": {}, "S": {}}),
                }
                for w in wafers
            ],
        }
        self.cache.put_lot_stats(ws, snapshot_job_id, stats)
        return stats


@dataclass
class LotContext:
    ws: str
    lot: Lot
    snapshot_job_id: str
    lake: Lake
    history_lots: Callable[[int], list[Lot]]  # up to n lots of the scope tested before this one, oldest first
    reads: set[str] = field(default_factory=set)  # snapshot job ids read (this lot's and its history's)

    def __post_init__(self) -> None:
        self.reads.add(self.snapshot_job_id)

    @property
    def lot_id(self) -> str:
        return self.lot.lot_id

    def stats(self) -> dict[str, Any]:
        return self.lake.lot_stats(self.ws, self.lot_id, self.snapshot_job_id)

    def history(self, n: int) -> list[dict[str, Any]]:
        out = []
        for lot in self.history_lots(n):
            self.reads.add(lot.active_job_id)
            out.append(self.lake.lot_stats(self.ws, lot.lot_id, lot.active_job_id))
        return out

    def session(self, lot_id: str | None = None, snapshot_job_id: str | None = None):
        return self.lake.engine.session(
            self.ws, Scope(lot_id=lot_id or self.lot_id, snapshot_job_id=snapshot_job_id or self.snapshot_job_id)
        )


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _yield_of(s: dict[str, Any], view: str) -> tuple[float | None, int]:
    if view == "first_pass":
        return _ratio(s["first_pass_good"], s["first_pass_parts"]), s["first_pass_parts"]
    return _ratio(s["good"], s["parts"]), s["parts"]


def _subjects(ctx: LotContext, level: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(subject, aggregate row) per wafer or for the lot."""
    st = ctx.stats()
    if level == "lot":
        return [({"lot_id": ctx.lot_id}, st)]
    return [({"lot_id": ctx.lot_id, "wafer_id": w["wafer_id"]}, w) for w in st["wafers"]]


# -- 1. yield below a limit ----------------------------------------------------------------------
class YieldBelow(Params):
    limit: float = Fraction
    view: Literal["final", "first_pass"] = "final"
    level: Literal["wafer", "lot"] = "wafer"


@rule("yield_below", 1, YieldBelow)
def yield_below(ctx: LotContext, p: YieldBelow) -> list[Outcome]:
    """Wafer or lot yield (final or first pass) below a fixed limit."""
    out = []
    for subject, row in _subjects(ctx, p.level):
        y, n = _yield_of(row, p.view)
        fired = None if y is None else y < p.limit
        vals = {"yield": y, "parts": n, "limit": p.limit, "view": p.view}
        where = subject.get("wafer_id") or subject["lot_id"]
        out.append(Outcome(subject, fired, vals, f"{p.view} yield of {where} is {_pct(y)} (limit {_pct(p.limit)})"))
    return out


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


# -- 2. bin excursion ------------------------------------------------------------------------------
class BinExcursion(Params):
    bin_type: Literal["H", "S"] = "H"
    bin_num: int = Field(..., ge=0, le=65535)
    limit: float = Fraction
    level: Literal["wafer", "lot"] = "wafer"


@rule("bin_excursion", 1, BinExcursion)
def bin_excursion(ctx: LotContext, p: BinExcursion) -> list[Outcome]:
    """Share of one hard or soft bin in a wafer or lot (final view) above a fixed limit."""
    out = []
    for subject, row in _subjects(ctx, p.level):
        b = row["bins"][p.bin_type].get(str(p.bin_num), 0)
        count = b[0] if isinstance(b, list) else b
        share = _ratio(count, row["parts"])
        fired = None if share is None else share > p.limit
        vals = {"share": share, "count": count, "parts": row["parts"], "limit": p.limit}
        where = subject.get("wafer_id") or subject["lot_id"]
        msg = f"bin {p.bin_type}{p.bin_num} is {_pct(share)} of {where} (limit {_pct(p.limit)})"
        out.append(Outcome(subject, fired, vals, msg))
    return out


# -- 3. Cpk below a threshold ----------------------------------------------------------------------
class CpkBelow(Params):
    test_num: int = Field(..., ge=0, le=4294967295)
    test_name: str | None = Field(None, max_length=255)
    threshold: float = Field(1.33, gt=0)
    min_n: int = Field(30, ge=2)


@rule("cpk_below", 1, CpkBelow)
def cpk_below(ctx: LotContext, p: CpkBelow) -> list[Outcome]:
    """Cpk of a test over the lot below a threshold (a null Cpk is insufficient data and never fires)."""
    from stratum.errors import NotFound

    try:
        res = ctx.lake.capability(ctx.ws, ctx.lot_id, ctx.snapshot_job_id, p.test_num)
    except NotFound:
        return [Outcome({"lot_id": ctx.lot_id, "test_num": p.test_num}, None, {}, "test not in this lot")]
    out = []
    for t in res["tests"]:
        if p.test_name is not None and t["test_name"] != p.test_name:
            continue
        subject = {"lot_id": ctx.lot_id, "test_num": t["test_num"], "test_name": t["test_name"]}
        cpk, n = t["cpk"], t["n"]
        vals = {"cpk": cpk, "n": n, "threshold": p.threshold, "mean": t["mean"], "sigma_within": t["sigma_within"]}
        if cpk is None or n < p.min_n:
            out.append(Outcome(subject, None, vals, f"insufficient data for Cpk of test {t['test_num']} (n={n})"))
            continue
        out.append(Outcome(subject, cpk < p.threshold, vals, f"Cpk of test {t['test_num']} is {cpk:.3f}"))
    return out


# -- 4. Western Electric / Nelson run rules ----------------------------------------------------------
RUN_TESTS = ("WE1", "WE2", "WE3", "WE4", "N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8")


class RunRules(Params):
    metric: Literal["yield", "first_pass_yield", "test_mean"] = "yield"
    test_num: int | None = Field(None, ge=0)
    test_name: str | None = None
    level: Literal["wafer", "lot"] = "wafer"
    tests: list[Literal[RUN_TESTS]] = Field(default_factory=lambda: ["WE1"], min_length=1)  # type: ignore[valid-type]
    baseline_lots: int = Field(10, ge=1, le=200)
    min_baseline_points: int = Field(20, ge=2)

    @model_validator(mode="after")
    def _test(self) -> RunRules:
        if self.metric == "test_mean" and self.test_num is None:
            raise ValueError("test_num is required when metric is test_mean")
        return self


def _zone_hits(z: list[float], i: int, k: int, of: int, beyond: float) -> bool:
    if i + 1 < of:
        return False
    w = z[i - of + 1 : i + 1]
    return sum(1 for x in w if x > beyond) >= k or sum(1 for x in w if x < -beyond) >= k


def _same_side(z: list[float], i: int, n: int) -> bool:
    if i + 1 < n:
        return False
    w = z[i - n + 1 : i + 1]
    return all(x > 0 for x in w) or all(x < 0 for x in w)


def _trend(v: list[float], i: int, n: int) -> bool:
    if i + 1 < n:
        return False
    w = v[i - n + 1 : i + 1]
    d = [b - a for a, b in zip(w, w[1:], strict=False)]
    return all(x > 0 for x in d) or all(x < 0 for x in d)


def _alternating(v: list[float], i: int, n: int) -> bool:
    if i + 1 < n:
        return False
    w = v[i - n + 1 : i + 1]
    d = [b - a for a, b in zip(w, w[1:], strict=False)]
    return all(d[j] * d[j + 1] < 0 for j in range(len(d) - 1))


RUN_CHECKS: dict[str, Callable[[list[float], list[float], int], bool]] = {
    "WE1": lambda z, v, i: abs(z[i]) > 3,
    "WE2": lambda z, v, i: _zone_hits(z, i, 2, 3, 2),
    "WE3": lambda z, v, i: _zone_hits(z, i, 4, 5, 1),
    "WE4": lambda z, v, i: _same_side(z, i, 8),
    "N1": lambda z, v, i: abs(z[i]) > 3,
    "N2": lambda z, v, i: _same_side(z, i, 9),
    "N3": lambda z, v, i: _trend(v, i, 6),
    "N4": lambda z, v, i: _alternating(v, i, 14),
    "N5": lambda z, v, i: _zone_hits(z, i, 2, 3, 2),
    "N6": lambda z, v, i: _zone_hits(z, i, 4, 5, 1),
    "N7": lambda z, v, i: i + 1 >= 15 and all(abs(x) < 1 for x in z[i - 14 : i + 1]),
    "N8": lambda z, v, i: i + 1 >= 8 and all(abs(x) > 1 for x in z[i - 7 : i + 1]),
}


def run_rule_hits(values: list[float], mean: float, sigma: float, start: int, tests: list[str]) -> list[list[str]]:
    """For each point from ``start`` on, the run tests that signal at it (zones in σ of the baseline)."""
    z = [(x - mean) / sigma for x in values]
    return [[t for t in tests if RUN_CHECKS[t](z, values, i)] for i in range(start, len(values))]


def _points(ctx: LotContext, p: RunRules, lot_id: str, snap: str) -> list[tuple[dict[str, Any], float]]:
    if p.metric == "test_mean":
        group = "wafer_id" if p.level == "wafer" else "lot_id"
        with ctx.session(lot_id, snap) as s:
            rows = s.rows(
                f"""SELECT r.{group}, avg(r.result) FROM results r
                    LEFT JOIN (SELECT wafer_id, min(start_time) AS t FROM wafer_runs GROUP BY ALL) w USING (wafer_id)
                    WHERE r.is_final AND r.valid AND r.test_num = ? AND (?::VARCHAR IS NULL OR r.test_name = ?)
                    GROUP BY ALL ORDER BY min(w.t) NULLS LAST, 1""",
                [p.test_num, p.test_name, p.test_name],
            )
        key = "wafer_id" if p.level == "wafer" else "lot_id"
        return [({"lot_id": lot_id, key: k} if key == "wafer_id" else {"lot_id": lot_id}, float(m)) for k, m in rows]
    st = ctx.lake.lot_stats(ctx.ws, lot_id, snap)
    view = "first_pass" if p.metric == "first_pass_yield" else "final"
    rows = (
        [({"lot_id": lot_id}, st)]
        if p.level == "lot"
        else [({"lot_id": lot_id, "wafer_id": w["wafer_id"]}, w) for w in st["wafers"]]
    )
    out = []
    for subj, r in rows:
        y, _ = _yield_of(r, view)
        if y is not None:
            out.append((subj, y))
    return out


@rule("run_rules", 1, RunRules)
def run_rules(ctx: LotContext, p: RunRules) -> list[Outcome]:
    """Western Electric / Nelson run rules on per-wafer (or per-lot) yields or test means vs a baseline."""
    base: list[float] = []
    for lot in ctx.history_lots(p.baseline_lots):
        ctx.reads.add(lot.active_job_id)
        base += [v for _, v in _points(ctx, p, lot.lot_id, lot.active_job_id)]
    cur = _points(ctx, p, ctx.lot_id, ctx.snapshot_job_id)
    if len(base) < p.min_baseline_points:
        return [Outcome(s, None, {"value": v, "baseline_points": len(base)}, "insufficient baseline") for s, v in cur]
    mean = statistics.fmean(base)
    sigma = statistics.stdev(base)
    if sigma <= 0:
        return [Outcome(s, None, {"value": v, "baseline_sigma": 0.0}, "baseline has no spread") for s, v in cur]
    values = base + [v for _, v in cur]
    hits = run_rule_hits(values, mean, sigma, len(base), list(p.tests))
    out = []
    for (subj, v), h in zip(cur, hits, strict=True):
        vals = {
            "value": v,
            "baseline_mean": mean,
            "baseline_sigma": sigma,
            "baseline_points": len(base),
            "z": (v - mean) / sigma,
            "signals": h,
        }
        where = subj.get("wafer_id") or subj["lot_id"]
        out.append(Outcome(subj, bool(h), vals, f"{where}: {', '.join(h) or 'no run-rule signal'}"))
    return out


# -- 5. site-to-site delta -----------------------------------------------------------------------
class SiteDelta(Params):
    method: Literal["delta", "chi2"] = "delta"
    min_delta: float = Field(0.05, ge=0, le=1, description="Δyield (other sites − this site) that fires")
    alpha: float = Field(0.001, gt=0, lt=1, description="chi-square significance (method chi2)")
    min_parts_per_site: int = Field(30, ge=1)
    test_num: int | None = Field(None, ge=0, description="also check each site's mean shift of this test")
    test_name: str | None = None
    k_sigma_w: float = Field(1.0, gt=0, description="mean shift, in within-wafer σ, that fires")


def chi2_2x2_p(a: int, b: int, c: int, d: int) -> float:
    """p-value of the chi-square test (1 dof, no continuity correction) on [[a, b], [c, d]]."""
    n = a + b + c + d
    den = (a + b) * (c + d) * (a + c) * (b + d)
    if den == 0:
        return 1.0
    x2 = n * (a * d - b * c) ** 2 / den
    return math.erfc(math.sqrt(x2 / 2))


@rule("site_delta", 1, SiteDelta)
def site_delta(ctx: LotContext, p: SiteDelta) -> list[Outcome]:
    """Per-site yield vs the other sites (Δyield or chi-square), optionally per-site mean shift in σ_w."""
    lake, ws, snap = ctx.lake, ctx.ws, ctx.snapshot_job_id
    rows = lake.cached(
        ws, snap, "sites", lambda: lake.analytics.bins(ws, ctx.lot_id, snapshot_job_id=snap, by="site")["yield"]
    )
    tot_n = sum(r["parts"] for r in rows)
    tot_g = sum(r["good"] for r in rows)
    shifts: dict[tuple[int, int], tuple[float, float]] = {}
    sigma_w = None
    if p.test_num is not None:
        cap = lake.capability(ws, ctx.lot_id, snap, p.test_num)
        t = [x for x in cap["tests"] if p.test_name is None or x["test_name"] == p.test_name]
        sigma_w = t[0]["sigma_within"] if t else None

        def site_sums() -> list:
            with ctx.session() as s:
                return s.rows(
                    """SELECT head_num, site_num, sum(result), count(*) FROM results WHERE is_final AND valid
                       AND test_num = ? AND (?::VARCHAR IS NULL OR test_name = ?) GROUP BY ALL""",
                    [p.test_num, p.test_name, p.test_name],
                )

        per = lake.cached(ws, snap, f"site_sums#{p.test_num}#{p.test_name or ''}", site_sums)
        all_s, all_n = sum(r[2] for r in per), sum(r[3] for r in per)
        for h, st, sm, n in per:
            if n and all_n - n:
                shifts[(h, st)] = (sm / n, (all_s - sm) / (all_n - n))
    out = []
    for r in rows:
        subj = {"lot_id": ctx.lot_id, "head_num": r["head_num"], "site_num": r["site_num"]}
        n, g = r["parts"], r["good"]
        on, og = tot_n - n, tot_g - g
        if n < p.min_parts_per_site or on < p.min_parts_per_site:
            out.append(Outcome(subj, None, {"parts": n}, "too few parts"))
            continue
        y, oy = g / n, og / on
        delta = oy - y
        pval = chi2_2x2_p(g, n - g, og, on - og)
        fired = delta > p.min_delta if p.method == "delta" else (pval < p.alpha and delta > 0)
        vals: dict[str, Any] = {"yield": y, "other_yield": oy, "delta": delta, "p_value": pval, "parts": n}
        why = [f"site {r['site_num']} yield {_pct(y)} vs {_pct(oy)} on the other sites"]
        sh = shifts.get((r["head_num"], r["site_num"]))
        if sh is not None and sigma_w:
            k = (sh[0] - sh[1]) / sigma_w
            vals.update({"site_mean": sh[0], "other_mean": sh[1], "sigma_within": sigma_w, "shift_sigma_w": k})
            if abs(k) > p.k_sigma_w:
                fired = True
                why.append(f"mean shifted {k:+.2f} σ_w")
        out.append(Outcome(subj, fired, vals, "; ".join(why)))
    return out


# -- 6. data health ------------------------------------------------------------------------------
class DataHealth(Params):
    max_retest_rate: float | None = Field(0.2, ge=0, description="retests / first-pass executions")
    max_aborts: int | None = Field(0, ge=0, description="parts with PART_FLG bit 2 (abnormal end)")
    max_test_time_ratio: float | None = Field(1.5, gt=1, description="median test time vs the history's median")
    history_lots: int = Field(5, ge=1, le=100)
    max_missing_wrr: int | None = Field(0, ge=0)
    max_missing_mrr: int | None = Field(0, ge=0)
    max_partial_files: int | None = Field(0, ge=0)
    max_failed_jobs: int | None = Field(0, ge=0)
    max_summary_mismatch: int | None = Field(0, ge=0, description="wafers whose WRR part count disagrees with PRRs")


@rule("data_health", 1, DataHealth)
def data_health(ctx: LotContext, p: DataHealth) -> list[Outcome]:
    """Retest rate, aborts, test-time jump, missing WRR/MRR, partial or failed ingest, summary mismatches."""
    st = ctx.stats()
    with ctx.session() as s:
        aborts = s.rows("SELECT count(*) FROM parts WHERE abort")[0][0]
        missing_wrr = s.rows("SELECT count(*) FROM wafer_runs WHERE NOT closed")[0][0]
        missing_mrr = s.rows("SELECT count(*) FROM lot_files WHERE finish_time IS NULL")[0][0]
        partial = s.rows("SELECT count(*) FROM lot_files WHERE partial")[0][0]
        mismatch = s.rows(
            """SELECT count(*) FROM (SELECT w.wafer_id, sum(w.part_cnt) AS wrr,
                      (SELECT count(*) FROM parts p WHERE p.wafer_id = w.wafer_id) AS prr
                  FROM wafer_runs w WHERE w.part_cnt IS NOT NULL GROUP BY w.wafer_id) WHERE wrr <> prr"""
        )[0][0]
    failed, _ = ctx.lake.catalog.list_jobs(ctx.ws, lot_id=ctx.lot_id, status="failed", limit=500)
    metrics: list[tuple[str, float | None, float | None]] = [
        ("retest_rate", _ratio(st["retests"], st["first_pass_parts"]), p.max_retest_rate),
        ("aborts", aborts, p.max_aborts),
        ("missing_wrr", missing_wrr, p.max_missing_wrr),
        ("missing_mrr", missing_mrr, p.max_missing_mrr),
        ("partial_files", partial, p.max_partial_files),
        ("failed_jobs", len(failed), p.max_failed_jobs),
        ("summary_mismatch", mismatch, p.max_summary_mismatch),
    ]
    if p.max_test_time_ratio is not None:
        hist = [h["test_time_median_ms"] for h in ctx.history(p.history_lots) if h["test_time_median_ms"]]
        cur = st["test_time_median_ms"]
        ratio = cur / statistics.median(hist) if hist and cur is not None else None
        metrics.append(("test_time_ratio", ratio, p.max_test_time_ratio))
    out = []
    for name, value, limit in metrics:
        if limit is None:
            continue
        fired = None if value is None else value > limit
        out.append(
            Outcome(
                {"lot_id": ctx.lot_id, "metric": name},
                fired,
                {"value": value, "limit": limit},
                f"{name} is {value} (limit {limit})",
            )
        )
    return out


# -- 7. statistical yield / bin limits (AEC-Q002) ------------------------------------------------
class StatLimit(Params):
    metric: Literal["yield", "first_pass_yield", "bin_share"] = "yield"
    bin_type: Literal["H", "S"] = "H"
    bin_num: int | None = Field(None, ge=0, le=65535)
    k: float = Field(3.0, gt=0)
    min_lots: int = Field(6, ge=3)
    history_lots: int = Field(20, ge=3, le=500)
    robust: bool = Field(False, description="median ± k·IQR/1.35 instead of mean ± k·σ")

    @model_validator(mode="after")
    def _bin(self) -> StatLimit:
        if self.metric == "bin_share" and self.bin_num is None:
            raise ValueError("bin_num is required when metric is bin_share")
        if self.history_lots < self.min_lots:
            raise ValueError("history_lots must be at least min_lots")
        return self


def _lot_metric(st: dict[str, Any], p: StatLimit) -> float | None:
    if p.metric == "bin_share":
        b = st["bins"][p.bin_type].get(str(p.bin_num), [0, 0])
        return _ratio(b[0], st["parts"])
    return _yield_of(st, "first_pass" if p.metric == "first_pass_yield" else "final")[0]


def center_spread(values: list[float], robust: bool) -> tuple[float, float]:
    if robust:
        q = statistics.quantiles(values, n=4, method="inclusive")
        return statistics.median(values), (q[2] - q[0]) / 1.35
    return statistics.fmean(values), statistics.stdev(values)


@rule("statistical_limit", 1, StatLimit)
def statistical_limit(ctx: LotContext, p: StatLimit) -> list[Outcome]:
    """SYL / SBL (AEC-Q002): lot yield below, or bin share above, center ∓ k·spread of ≥ min_lots prior lots."""
    hist = [v for v in (_lot_metric(h, p) for h in ctx.history(p.history_lots)) if v is not None]
    cur = _lot_metric(ctx.stats(), p)
    subj = {"lot_id": ctx.lot_id}
    if len(hist) < p.min_lots or cur is None:
        return [Outcome(subj, None, {"value": cur, "history_lots": len(hist)}, "insufficient history")]
    center, spread = center_spread(hist, p.robust)
    if p.metric == "bin_share":
        limit = center + p.k * spread
        fired = cur > limit
    else:
        limit = center - p.k * spread
        fired = cur < limit
    vals = {"value": cur, "limit": limit, "center": center, "spread": spread, "history_lots": len(hist)}
    name = "SBL" if p.metric == "bin_share" else "SYL"
    return [Outcome(subj, fired, vals, f"{p.metric} {cur:.4f} vs {name} {limit:.4f}")]


# -- 8. SQL rule -----------------------------------------------------------------------------------
SUBJECT_COLUMNS = ("lot_id", "wafer_id", "head_num", "site_num", "test_num", "test_name", "bin_num", "subject")


class SqlRule(Params):
    query: str = Field(..., min_length=1, max_length=100_000)
    max_findings: int = Field(100, ge=1, le=1000)

    @model_validator(mode="after")
    def _guard(self) -> SqlRule:
        from stratum.errors import StratumError
        from stratum.query.sql import check_query

        try:
            check_query(self.query)
        except StratumError as exc:
            raise ValueError(exc.detail) from None
        return self


@rule("sql", 1, SqlRule)
def sql_rule(ctx: LotContext, p: SqlRule) -> list[Outcome]:
    """A guarded SELECT over the lot's snapshot (as POST /v1/sql); every row it returns is a finding."""
    res = ctx.lake.sql.run(
        ctx.ws, p.query, scope=Scope(lot_id=ctx.lot_id, snapshot_job_id=ctx.snapshot_job_id), limit=p.max_findings
    )
    names = [c["name"] for c in res.columns]
    out = []
    for i, row in enumerate(res.rows):
        vals = dict(zip(names, row, strict=True))
        subj = {k: vals[k] for k in SUBJECT_COLUMNS if k in vals}
        subj.setdefault("lot_id", ctx.lot_id)
        if len(subj) == 1:
            subj["row"] = i
        out.append(Outcome(subj, True, vals, f"query returned {vals}"))
    return out


# -- 9. spatial pattern on n wafers of a lot ---------------------------------------------------------
class SpatialPattern(Params):
    min_wafers: int = Field(2, ge=1, le=1000, description="wafers of the lot showing the family that fire")
    families: list[str] | None = Field(
        None, min_length=1, description="pattern families to watch (wafer_patterns.family); default every family"
    )
    min_confidence: float = Field(0.5, ge=0.0, le=1.0, description="a wafer counts at this confidence or above")

    @model_validator(mode="after")
    def _known_families(self) -> SpatialPattern:
        watchable = set(tx.FAMILIES) - {"none"}
        unknown = sorted(set(self.families or ()) - watchable)
        if unknown:
            raise ValueError(f"unknown or unwatchable pattern families {unknown}; one of {', '.join(tx.FAMILIES[1:])}")
        return self


@rule("spatial_pattern", 1, SpatialPattern)
def spatial_pattern(ctx: LotContext, p: SpatialPattern) -> list[Outcome]:
    """A spatial fail-pattern family (wafer_patterns) on at least n wafers of the lot."""
    with ctx.session() as s:
        rows = s.rows(
            "SELECT family, wafer_id FROM wafer_patterns WHERE confidence >= ? GROUP BY family, wafer_id",
            [p.min_confidence],
        )
    wafers: dict[str, set[str]] = {f: set() for f in (p.families or ())}
    for family, wafer_id in rows:
        if family != "none" and (p.families is None or family in p.families):
            wafers.setdefault(family, set()).add(wafer_id or "")
    out = []
    for family in sorted(wafers):
        ids = sorted(wafers[family])
        out.append(
            Outcome(
                {"lot_id": ctx.lot_id, "family": family},
                len(ids) >= p.min_wafers,
                {"wafers": len(ids), "wafer_ids": ids, "min_wafers": p.min_wafers, "min_confidence": p.min_confidence},
                f"{family} pattern on {len(ids)} wafer(s) of {ctx.lot_id} (fires at {p.min_wafers})",
            )
        )
    return out
