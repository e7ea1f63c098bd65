"""The numbers behind the charts (stacked map, bin Pareto, histogram, box plot, trend, gallery) and their
rendering. Every chart reads one lot snapshot (``snapshot_job_id`` pins it) through the same sessions as
the other analytics; the JSON a route returns is exactly what its picture shows."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from stratum.errors import BadRequest, NotFound
from stratum.query.engine import Scope, check_wafer_ids
from stratum.query.sql import jsonable

from .service import AnalyticsService, View, _view_filter
from .service import _finite_or_none as _num

Fmt = Literal["png", "svg"]
MAX_LOTS = 50


def _f(v: Any) -> float | None:
    v = _num(v)
    return float(v) if v is not None and math.isfinite(float(v)) else None


def _in(col: str, values: list[str], params: dict[str, Any], name: str) -> str:
    params[name] = values
    return f"list_contains(${name}::VARCHAR[], {col})"


class ChartService:
    def __init__(self, analytics: AnalyticsService) -> None:
        self.a = analytics

    # -- stacked map ------------------------------------------------------------------------------------
    def stacked_map(
        self,
        ws: str,
        lot_id: str,
        *,
        metric: Literal["fail", "bin", "median"] = "fail",
        lot_ids: list[str] | None = None,
        wafer_ids: list[str] | None = None,
        bin_num: int | None = None,
        bin_type: Literal["H", "S"] = "H",
        test_num: int | None = None,
        test_name: str | None = None,
        snapshot_job_id: str | None = None,
    ) -> dict[str, Any]:
        lots = list(dict.fromkeys([lot_id, *(lot_ids or [])]))
        if len(lots) > MAX_LOTS:
            raise BadRequest(f"at most {MAX_LOTS} lots can be stacked")
        if len(lots) > 1 and snapshot_job_id:
            raise BadRequest("snapshot_job_id pins one lot: it cannot be combined with lot_ids")
        check_wafer_ids(wafer_ids)
        if any(not lot or len(lot) > 255 or "\x00" in lot for lot in lots):
            raise BadRequest("lot ids must be 1 to 255 characters without NUL")
        for lot in lots:
            self.a.catalog.get_lot(ws, lot)
        if metric == "bin" and bin_num is None:
            raise BadRequest("metric=bin needs bin_num")
        if metric == "median" and test_num is None:
            raise BadRequest("metric=median needs test_num")
        scope = Scope(lot_id=lot_id, snapshot_job_id=snapshot_job_id) if len(lots) == 1 else Scope()
        params: dict[str, Any] = {}
        where = [_in("lot_id", lots, params, "lots"), "is_final", "x IS NOT NULL", "y IS NOT NULL"]
        if wafer_ids:
            where.append(_in("wafer_id", wafer_ids, params, "wafers"))
        test = None
        base = dict(params)
        with self.a.engine.session(ws, scope) as s:
            if metric == "median" and test_num is not None:
                test = self.a._pick_test(s, test_num, test_name, types=("P",))
                params |= {"t": test_num, "tn": test["test_name"]}
                sql = f"""SELECT x, y, count(*) AS n, median(result) AS value, count(DISTINCT (lot_id, wafer_id)) AS w
                          FROM results WHERE {" AND ".join(where)} AND test_num = $t AND test_name = $tn AND valid
                          GROUP BY x, y ORDER BY y, x"""
            else:
                cond = "passed = false" if metric == "fail" else f"{'hard_bin' if bin_type == 'H' else 'soft_bin'} = $b"
                if metric == "bin":
                    params["b"] = bin_num
                sql = f"""SELECT x, y, count(*) AS n, count(*) FILTER (WHERE {cond}) AS hits,
                                 count(DISTINCT (lot_id, wafer_id)) AS w
                          FROM parts WHERE {" AND ".join(where)} GROUP BY x, y ORDER BY y, x"""
            rows = s.dicts(sql, params)
            wafers = s.rows(
                f"SELECT DISTINCT lot_id, wafer_id FROM parts WHERE {' AND '.join(where)} ORDER BY 1, 2", base
            )
            snaps = {k: v for k, v in s.resolved.snapshot_job_ids.items() if k in lots}
        if not rows:
            raise NotFound("no dies with coordinates in the selected lots and wafers")
        out: dict[str, Any] = {
            "lot_ids": lots,
            "snapshot_job_ids": snaps,
            "metric": metric,
            "wafers": [{"lot_id": lot, "wafer_id": w} for lot, w in wafers],
            "x": [r["x"] for r in rows],
            "y": [r["y"] for r in rows],
            "n": [r["n"] for r in rows],
        }
        if metric == "median":
            out["test"] = test
            out["value"] = [_f(r["value"]) for r in rows]
        else:
            out["hits"] = [r["hits"] for r in rows]
            out["value"] = [r["hits"] / r["n"] for r in rows]
            if metric == "bin":
                out["bin"] = {"bin_type": bin_type, "bin_num": bin_num}
        return out

    def render_stacked_map(self, d: dict[str, Any], fmt: Fmt) -> bytes:
        from stratum.render import wafermap as wm

        label = {"fail": "Fail rate", "bin": f"Bin {d.get('bin', {}).get('bin_num')} share"}.get(
            d["metric"], (d.get("test") or {}).get("test_name", "median")
        )
        lots = ", ".join(d["lot_ids"])
        snaps = ", ".join(f"{k}: {v}" for k, v in d["snapshot_job_ids"].items())
        opts: dict[str, Any] = {"vmin": 0.0, "vmax": 1.0} if d["metric"] != "median" else {"robust": True}
        if d["metric"] == "median":
            t = d["test"]
            opts |= {"units": t.get("units") or "", "lo": t.get("lo_limit"), "hi": t.get("hi_limit")}
        vals = np.array([np.nan if v is None else v for v in d["value"]], dtype=np.float64)
        return wm.render_value_map(
            np.array(d["x"]),
            np.array(d["y"]),
            vals,
            title=f"Stacked map · {lots} · {label}",
            subtitle=[f"{len(d['wafers'])} wafers, {sum(d['n'])} dies stacked", f"snapshot {snaps}"],
            label=label,
            fmt=fmt,
            **opts,
        )

    # -- bin Pareto ---------------------------------------------------------------------------------------
    def pareto(
        self,
        ws: str,
        lot_id: str,
        *,
        bin_type: Literal["H", "S"] = "H",
        wafer_id: str | None = None,
        site_num: int | None = None,
        snapshot_job_id: str | None = None,
    ) -> dict[str, Any]:
        self.a.catalog.get_lot(ws, lot_id)
        col = "hard_bin" if bin_type == "H" else "soft_bin"
        with self.a._session(ws, lot_id, snapshot_job_id) as s:
            self.a._check_wafer(s, lot_id, wafer_id)
            rows = s.dicts(
                f"""SELECT {col} AS bin_num, count(*) AS count FROM parts
                    WHERE is_final AND {col} IS NOT NULL AND ($w::VARCHAR IS NULL OR wafer_id = $w)
                      AND ($site::INTEGER IS NULL OR site_num = $site)
                    GROUP BY 1 ORDER BY count DESC, bin_num""",
                {"w": wafer_id, "site": site_num},
            )
            names = {r["bin_num"]: r for r in s.dicts("SELECT * FROM bins WHERE bin_type = ?", [bin_type])}
            job = s.resolved.snapshot_job_ids.get(lot_id)
        total = sum(r["count"] for r in rows)
        cum = 0
        out = []
        for r in rows:
            cum += r["count"]
            nm = names.get(r["bin_num"], {})
            out.append(
                {
                    "bin_num": r["bin_num"],
                    "bin_name": nm.get("bin_name"),
                    "pass_fail": nm.get("pass_fail"),
                    "count": r["count"],
                    "percent": 100.0 * r["count"] / total,
                    "cumulative_percent": 100.0 * cum / total,
                }
            )
        scope = "lot" if wafer_id is None and site_num is None else "wafer" if site_num is None else "site"
        return {
            "lot_id": lot_id,
            "snapshot_job_id": job,
            "bin_type": bin_type,
            "scope": scope,
            "wafer_id": wafer_id,
            "site_num": site_num,
            "total": total,
            "bins": out,
        }

    def render_pareto(self, d: dict[str, Any], fmt: Fmt) -> bytes:
        from stratum.render import charts

        where = {"lot": "lot", "wafer": f"wafer {d['wafer_id']}", "site": f"site {d['site_num']}"}[d["scope"]]
        if d["scope"] == "site" and d["wafer_id"]:
            where = f"wafer {d['wafer_id']}, site {d['site_num']}"
        kind = "Hard" if d["bin_type"] == "H" else "Soft"
        return charts.pareto(
            d["bins"],
            title=f"Lot {d['lot_id']} · {kind} bin Pareto · {where}",
            subtitle=[f"{d['total']} parts (final view)", f"snapshot {d['snapshot_job_id']}"],
        ).render(fmt)

    # -- histogram and box plot -----------------------------------------------------------------------------
    def _values(self, s, test: dict, view: View, wafer_id: str | None, group: str | None) -> list[tuple]:
        g = {"wafer": "wafer_id", "site": "site_num", None: "NULL"}[group]
        return s.rows(
            f"""SELECT {g} AS g, result FROM results WHERE test_num = ? AND test_name = ? AND valid
                AND {_view_filter(view)} AND (?::VARCHAR IS NULL OR wafer_id = ?) AND isfinite(result)
                ORDER BY g""",
            [test["test_num"], test["test_name"], wafer_id, wafer_id],
        )

    def histogram(
        self,
        ws: str,
        lot_id: str,
        test_num: int,
        *,
        test_name: str | None = None,
        wafer_id: str | None = None,
        by: Literal["site", "wafer"] | None = None,
        bins: int = 40,
        view: View = "final",
        snapshot_job_id: str | None = None,
    ) -> dict[str, Any]:
        self.a.catalog.get_lot(ws, lot_id)
        with self.a._session(ws, lot_id, snapshot_job_id) as s:
            self.a._check_wafer(s, lot_id, wafer_id)
            test = self.a._pick_test(s, test_num, test_name, types=("P",))
            rows = self._values(s, test, view, wafer_id, by)
            job = s.resolved.snapshot_job_ids.get(lot_id)
        if not rows:
            raise NotFound(f"test {test_num} has no valid results here")
        v = np.array([r[1] for r in rows], dtype=np.float64)
        lo, hi = float(v.min()), float(v.max())
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        groups: dict[str, list[float]] = {}
        for gv, x in rows:
            groups.setdefault("all" if by is None else str(gv), []).append(x)
        n = len(v)
        mean = float(v.mean())
        sigma = float(v.std(ddof=1)) if n > 1 else None
        cap = self.a.capability(ws, lot_id, snapshot_job_id=snapshot_job_id, wafer_id=wafer_id, test_num=test_num)
        cpk = next((r.get("cpk") for r in cap["tests"] if r["test_name"] == test["test_name"]), None)
        return {
            "lot_id": lot_id,
            "snapshot_job_id": job,
            "wafer_id": wafer_id,
            "view": view,
            "test": test,
            "by": by,
            "edges": [float(e) for e in edges],
            "groups": [
                {"group": k, "n": len(x), "counts": np.histogram(np.array(x), bins=edges)[0].tolist()}
                for k, x in groups.items()
            ],
            "n": n,
            "mean": mean,
            "sigma": sigma,
            "minus_3sigma": mean - 3 * sigma if sigma is not None else None,
            "plus_3sigma": mean + 3 * sigma if sigma is not None else None,
            "cpk": cpk,
        }

    def render_histogram(self, d: dict[str, Any], fmt: Fmt) -> bytes:
        from stratum.render import charts

        t = d["test"]
        cpk = f"Cpk {d['cpk']:.3f}" if d["cpk"] is not None else "Cpk n/a"
        sig = f"σ {d['sigma']:.4g}" if d["sigma"] is not None else "σ n/a"
        where = f"wafer {d['wafer_id']}" if d["wafer_id"] else "lot"
        lines = [
            ("LL", t.get("lo_limit"), charts.LIMIT),
            ("HL", t.get("hi_limit"), charts.LIMIT),
            ("-3σ", d["minus_3sigma"], charts.SIGMA),
            ("mean", d["mean"], charts.CENTER),
            ("+3σ", d["plus_3sigma"], charts.SIGMA),
        ]
        return charts.histogram(
            d["edges"],
            [(g["group"], g["counts"]) for g in d["groups"]],
            lines=lines,
            title=f"Lot {d['lot_id']} · Test {t['test_num']} {t['test_name']} · {where}",
            subtitle=[f"n {d['n']}, mean {d['mean']:.4g}, {sig}, {cpk}", f"snapshot {d['snapshot_job_id']}"],
            units=t.get("units") or "",
        ).render(fmt)

    def boxplot(
        self,
        ws: str,
        lot_id: str,
        test_num: int,
        *,
        by: Literal["wafer", "site"] = "wafer",
        test_name: str | None = None,
        view: View = "final",
        snapshot_job_id: str | None = None,
    ) -> dict[str, Any]:
        self.a.catalog.get_lot(ws, lot_id)
        g = "wafer_id" if by == "wafer" else "site_num"
        with self.a._session(ws, lot_id, snapshot_job_id) as s:
            test = self.a._pick_test(s, test_num, test_name, types=("P",))
            rows = s.dicts(
                f"""SELECT {g} AS "group", count(*) AS n, min(result) AS min,
                           quantile_cont(result, 0.25) AS q1, median(result) AS median,
                           quantile_cont(result, 0.75) AS q3, max(result) AS max, avg(result) AS mean
                    FROM results WHERE test_num = ? AND test_name = ? AND valid AND {_view_filter(view)}
                      AND isfinite(result) GROUP BY 1 ORDER BY 1""",
                [test_num, test["test_name"]],
            )
            job = s.resolved.snapshot_job_ids.get(lot_id)
        return {
            "lot_id": lot_id,
            "snapshot_job_id": job,
            "view": view,
            "test": test,
            "by": by,
            "groups": [{k: jsonable(_num(v)) for k, v in r.items()} for r in rows],
        }

    def render_boxplot(self, d: dict[str, Any], fmt: Fmt) -> bytes:
        from stratum.render import charts

        t = d["test"]
        return charts.boxplot(
            d["groups"],
            lo_limit=t.get("lo_limit"),
            hi_limit=t.get("hi_limit"),
            title=f"Lot {d['lot_id']} · Test {t['test_num']} {t['test_name']} by {d['by']}",
            subtitle=["box q1–q3, line median, whiskers min–max, dot mean", f"snapshot {d['snapshot_job_id']}"],
            units=t.get("units") or "",
        ).render(fmt)

    # -- trend across lots ------------------------------------------------------------------------------------
    def trend(
        self, ws: str, test_num: int, *, test_name: str | None = None, part_type: str | None = None
    ) -> dict[str, Any]:
        with self.a.engine.session(ws, Scope()) as s:
            names = s.rows(
                "SELECT DISTINCT test_name FROM tests WHERE test_num = ? AND test_type = 'P' "
                "AND (?::VARCHAR IS NULL OR test_name = ?) ORDER BY 1",
                [test_num, test_name, test_name],
            )
            if not names:
                raise NotFound(f"test {test_num} not found")
            if len(names) > 1:
                raise BadRequest(
                    f"test number {test_num} names several tests ({', '.join(repr(n[0]) for n in names)}); "
                    "pass test_name to choose one"
                )
            name = names[0][0]
            rows = s.dicts(
                """SELECT r.lot_id, r.wafer_id, count(*) AS n, avg(r.result) AS mean, min(l.start_time) AS start
                   FROM results r JOIN lots l USING (lot_id)
                   WHERE r.test_num = ? AND r.test_name = ? AND r.valid AND r.is_final AND isfinite(r.result)
                     AND (?::VARCHAR IS NULL OR l.part_type = ?)
                   GROUP BY 1, 2 ORDER BY start NULLS LAST, r.lot_id, r.wafer_id NULLS FIRST""",
                [test_num, name, part_type, part_type],
            )
            units = s.rows("SELECT any_value(units) FROM tests WHERE test_num = ? AND test_name = ?", [test_num, name])
        means = np.array([float(r["mean"]) for r in rows], dtype=np.float64)
        center = float(means.mean()) if len(means) else None
        sigma = float(means.std(ddof=1)) if len(means) > 1 else None
        return {
            "test_num": test_num,
            "test_name": name,
            "units": units[0][0] if units else None,
            "part_type": part_type,
            "points": [
                {"lot_id": r["lot_id"], "wafer_id": r["wafer_id"], "n": r["n"], "mean": float(r["mean"])} for r in rows
            ],
            "center": center,
            "sigma": sigma,
            "ucl": center + 3 * sigma if center is not None and sigma is not None else None,
            "lcl": center - 3 * sigma if center is not None and sigma is not None else None,
        }

    def render_trend(self, d: dict[str, Any], fmt: Fmt) -> bytes:
        from stratum.render import charts

        lots = len({p["lot_id"] for p in d["points"]})
        return charts.trend(
            d["points"],
            center=d["center"],
            ucl=d["ucl"],
            lcl=d["lcl"],
            title=f"Test {d['test_num']} {d['test_name']} · wafer means"
            + (f" · {d['part_type']}" if d["part_type"] else ""),
            subtitle=[f"{len(d['points'])} wafers in {lots} lots; control limits: mean of means ± 3σ"],
            units=d["units"] or "",
        ).render(fmt)

    # -- gallery --------------------------------------------------------------------------------------------
    def gallery(self, ws: str, lot_id: str, *, snapshot_job_id: str | None = None) -> dict[str, Any]:
        wafers = self.a.wafers(ws, lot_id, snapshot_job_id)
        maps = [
            self.a.wafer_map(ws, lot_id, w["wafer_id"], snapshot_job_id=snapshot_job_id)
            for w in wafers
            if w["wafer_id"] is not None
        ]
        if not maps:
            raise NotFound(f"lot {lot_id!r} has no wafers")
        return {
            "lot_id": lot_id,
            "snapshot_job_id": maps[0].job_id,
            "wafers": [
                {"wafer_id": m.wafer_id, "dies": m.counts["dies"], "good": m.counts["good"], "yield": m.counts["yield"]}
                for m in maps
            ],
            "_maps": maps,
        }

    def render_gallery(self, d: dict[str, Any], fmt: Fmt, thumb: int = 300, columns: int = 5) -> bytes:
        from stratum.render import charts
        from stratum.render import wafermap as wm

        thumbs = []
        for m, w in zip(d["_maps"], d["wafers"], strict=True):
            bins = np.array([b if b is not None else -1 for b in m.dies["hard_bin"]], dtype=np.int64)
            table = {n: (b["name"] or "", b["pass_fail"]) for n, b in m.bins["H"].items()}
            y = f"{w['yield'] * 100:.1f}%" if w["yield"] is not None else "n/a"
            thumbs.append(
                wm.render_bin_map(
                    np.array(m.dies["x"]),
                    np.array(m.dies["y"]),
                    bins,
                    table,
                    title=f"{m.wafer_id} · yield {y}",
                    subtitle=f"{w['dies']} dies",
                    pos_x=m.orientation["pos_x"],
                    pos_y=m.orientation["pos_y"],
                    flat=m.orientation["flat"],
                    width=thumb * 2,
                    height=int(thumb * 1.3),
                    fmt=fmt,
                )
            )
        good = sum(w["good"] for w in d["wafers"])
        dies = sum(w["dies"] for w in d["wafers"])
        return charts.gallery(
            thumbs,
            fmt=fmt,
            title=f"Lot {d['lot_id']} · {len(thumbs)} wafers",
            subtitle=[f"{dies} dies, yield {100 * good / max(dies, 1):.1f}%", f"snapshot {d['snapshot_job_id']}"],
            thumb_size=(thumb * 2, int(thumb * 1.3)),
            columns=max(1, columns // 2),
        )
