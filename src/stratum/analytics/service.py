"""Lot analytics over a snapshot: lots, wafers and die maps, tests, results, capability, bins.

Every method takes ``snapshot_job_id`` to pin a published job's snapshot instead of the lot's active
one, and works through the public views (``stratum.query.views``), so the API, the CLI and SQL agree
on every number. Defaults: the *final* view of each die (retests resolved by the snapshot's policy),
valid results only for statistics, test limits (not spec limits) for capability.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, Literal

import numpy as np

from stratum.catalog import Catalog
from stratum.errors import BadRequest, NotFound
from stratum.query.engine import QueryEngine, Scope, Session, check_wafer_ids
from stratum.query.floats import float32_value
from stratum.query.sql import jsonable
from stratum.render.diemap import MapData

from . import capability as cap
from . import snapstats

View = Literal["final", "first_pass", "all"]


def _view_filter(view: View, alias: str = "") -> str:
    a = f"{alias}." if alias else ""
    return {"final": f"{a}is_final", "first_pass": f"NOT {a}is_retest", "all": "true"}[view]


# an optional wafer filter with the named parameter $wafer (NULL = every wafer)
_WAFER = "($wafer::VARCHAR IS NULL OR wafer_id = $wafer)"


# TST_SUMS and TST_SQRS are R*4: each carries a relative rounding error up to 2**-24, so Σx² − (Σx)²/n is
# noise once it falls within a few such errors of Σx² (float32 sums of nearly equal values cancel).
_TSR_CANCELLATION = 4 * 2.0**-24


def tsr_moments(n: float, sx: float, sxx: float) -> tuple[float, float, float | None]:
    """(n, mean, sample variance) from TSR sums, in float64. The variance is None, never 0, when the sums cannot
    give one: n < 2, a non-finite sum, or a numerator at or below the float32 rounding of the sums."""
    n, sx, sxx = float(n), float(sx), float(sxx)
    mean = sx / n
    if n < 2 or not (math.isfinite(sx) and math.isfinite(sxx)):
        return n, mean, None
    num = sxx - sx * sx / n
    if not math.isfinite(num) or num <= _TSR_CANCELLATION * abs(sxx):
        return n, mean, None
    return n, mean, num / (n - 1)


def _finite_or_none(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _iso_time(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.isoformat()
    return datetime.fromtimestamp(int(v), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") if v else None


class AnalyticsService:
    def __init__(self, engine: QueryEngine, catalog: Catalog) -> None:
        self.engine = engine
        self.catalog = catalog

    def _session(self, ws: str, lot_id: str, snapshot_job_id: str | None = None) -> Session:
        """The lot's snapshot session (cached by the engine). Wafer filters go into the queries, so every
        wafer of a lot shares one session instead of each building its own."""
        return self.engine.session(ws, Scope(lot_id=lot_id, snapshot_job_id=snapshot_job_id))

    @staticmethod
    def _check_wafer(s: Session, lot_id: str, wafer_id: str | None) -> None:
        check_wafer_ids([wafer_id] if wafer_id else None)
        if wafer_id is None:
            return
        wafers = s.memo("wafer_ids", lambda: {r[0] for r in s.rows("SELECT DISTINCT wafer_id FROM wafer_runs")})
        if wafer_id not in wafers:
            raise NotFound(f"wafer {wafer_id!r} not found in lot {lot_id!r}")

    # -- lots ----------------------------------------------------------------------------------
    def list_lots(
        self,
        ws: str,
        *,
        q: str | None = None,
        part_type: str | None = None,
        program: str | None = None,
        start_from: int | None = None,
        start_to: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Lots from the catalog, filtered (``q``, ``part_type``, ``program``: case-insensitive substrings)
        and paginated; each with its counts and yields from its active snapshot's ``lots`` row."""

        def has(text: str | None, sub: str | None) -> bool:
            return not sub or sub.lower() in (text or "").lower()

        def want(lot) -> bool:
            if not (has(lot.lot_id, q) and has(lot.part_type, part_type) and has(lot.program, program)):
                return False
            if start_from is not None and (lot.start_time is None or lot.start_time < start_from):
                return False
            return not (start_to is not None and (lot.start_time is None or lot.start_time > start_to))

        lots, nxt = self.catalog.list_lots(ws, limit=limit, cursor=cursor, want=want)
        return [{**self._lot_summary(lot), **self._lot_counts(ws, lot.lot_id)} for lot in lots], nxt

    def _lot_counts(self, ws: str, lot_id: str) -> dict[str, Any]:
        """Wafer and part counts, final and first-pass yield (0-1) of the lot's active snapshot."""
        with self._session(ws, lot_id) as s:
            row = s.dicts("SELECT wafer_count, part_count, good_count, yield, first_pass_yield FROM lots")
        return {k: _finite_or_none(v) for k, v in row[0].items()} if row else {}

    @staticmethod
    def _lot_summary(lot) -> dict[str, Any]:
        return {
            "lot_id": lot.lot_id,
            "part_type": lot.part_type,
            "program": lot.program,
            "tester_type": lot.tester_type,
            "node_name": lot.node_name,
            "test_code": lot.test_code,
            "start_time": _iso_time(lot.start_time),
            "finish_time": _iso_time(lot.finish_time),
            "active_job_id": lot.active_job_id,
            "file_count": len(lot.members),
            "updated_at": lot.updated_at.isoformat(),
        }

    def lot(self, ws: str, lot_id: str, snapshot_job_id: str | None = None) -> dict[str, Any]:
        with self._session(ws, lot_id, snapshot_job_id) as s:
            lot = s.resolved.lot or self.catalog.get_lot(ws, lot_id)  # a pinned snapshot did not read the lot
            row = s.dicts("SELECT * FROM lots")[0]
            wafers = s.dicts("SELECT * FROM wafers ORDER BY start_time NULLS LAST, wafer_id")
            files = s.dicts(
                "SELECT job_id, file_name, file_order, start_time, finish_time, sublot_id, test_code, "
                "records, partial FROM lot_files ORDER BY file_order"
            )
            members = [m.job_id for m in s.resolved.members]
        jobs, _ = self.catalog.list_jobs(ws, lot_id=lot_id, limit=200)
        by_id = {j.job_id: j for j in jobs}
        for job_id in members:  # the snapshot's files, even beyond the listed page
            if job_id not in by_id:
                by_id[job_id] = self.catalog.get_job(ws, job_id)
        warnings = [
            {"job_id": job_id, "file_name": by_id[job_id].file_name, **w.model_dump()}
            for job_id in members
            for w in by_id[job_id].warnings
        ]
        out = {k: jsonable(_finite_or_none(v)) for k, v in row.items()}
        out.update(
            {
                "active_job_id": lot.active_job_id,
                "snapshot_job_id": row["job_id"],
                "wafers": [{k: jsonable(_finite_or_none(v)) for k, v in w.items()} for w in wafers],
                "files": [{k: jsonable(v) for k, v in f.items()} for f in files],
                "jobs": [
                    {
                        "job_id": j.job_id,
                        "status": j.status,
                        "file_name": j.file_name,
                        "created_at": j.created_at.isoformat(),
                        "duplicate_of": j.duplicate_of,
                        "error": j.error.message if j.error else None,
                    }
                    for j in jobs
                ],
                "annotations": self.catalog.lot_notes(ws, lot_id),
                "warnings": warnings,
            }
        )
        return out

    # -- wafers ---------------------------------------------------------------------------------
    def wafers(self, ws: str, lot_id: str, snapshot_job_id: str | None = None) -> list[dict[str, Any]]:
        with self._session(ws, lot_id, snapshot_job_id) as s:
            rows = s.dicts("SELECT * FROM wafers ORDER BY start_time NULLS LAST, wafer_id")
        return [{k: jsonable(_finite_or_none(v)) for k, v in r.items()} for r in rows]

    def job_wafers(self, ws: str, lot_id: str, job_id: str) -> list[str]:
        """The wafers (with die coordinates) that job ``job_id``'s file tested, in its snapshot."""
        with self._session(ws, lot_id, job_id) as s:
            rows = s.rows(
                "SELECT DISTINCT wafer_id FROM parts WHERE job_id = ? AND wafer_id IS NOT NULL AND x IS NOT NULL "
                "AND y IS NOT NULL ORDER BY wafer_id",
                [job_id],
            )
        return [r[0] for r in rows]

    def job_final_dies(self, ws: str, lot_id: str, job_id: str) -> tuple[str, dict[str, dict[str, np.ndarray]]]:
        """The dies ``wafer_map`` draws (final view, with coordinates, ordered by y, x) of every wafer that job
        ``job_id``'s file tested (``job_wafers``), in its snapshot, in one query: (snapshot job id, {wafer_id:
        x, y, hard_bin, site_num (NULL: -1), passed (NULL: False)}), wafers in ``job_wafers`` order."""
        with self._session(ws, lot_id, job_id) as s:
            cols = s.execute(
                f"""SELECT wafer_id, x::BIGINT AS x, y::BIGINT AS y, coalesce(hard_bin, -1)::BIGINT AS hard_bin,
                           coalesce(site_num, -1)::BIGINT AS site_num, coalesce(passed, false) AS passed
                    FROM parts WHERE {_view_filter("final")} AND x IS NOT NULL AND y IS NOT NULL
                      AND wafer_id IN (SELECT wafer_id FROM parts WHERE job_id = ? AND wafer_id IS NOT NULL
                                       AND x IS NOT NULL AND y IS NOT NULL)
                    ORDER BY wafer_id, y, x""",
                [job_id],
            ).fetchnumpy()
            snap = s.resolved.snapshot_job_ids.get(lot_id, "")
        wafer = cols.pop("wafer_id")
        cuts = [0, *(np.flatnonzero(wafer[1:] != wafer[:-1]) + 1).tolist(), len(wafer)]
        return snap, {
            str(wafer[a]): {k: np.asarray(v[a:b]) for k, v in cols.items()} for a, b in pairwise(cuts) if b > a
        }

    def wafer_map(
        self,
        ws: str,
        lot_id: str,
        wafer_id: str,
        *,
        snapshot_job_id: str | None = None,
        test_num: int | None = None,
        test_name: str | None = None,
        view: View = "final",
    ) -> MapData:
        with self._session(ws, lot_id, snapshot_job_id) as s:
            check_wafer_ids([wafer_id])
            # the snapshot is immutable: a wafer's dies and a test's values on it are read once per process;
            # its patterns are not (classified on publish and again by newer classifiers): read every time
            dies, bins, ori = s.memo(f"map#{wafer_id}#{view}", lambda: self._map_base(s, lot_id, wafer_id, view))
            patterns = s.dicts(
                "SELECT class_id, confidence FROM wafer_patterns WHERE wafer_id = ? AND family <> 'none' ORDER BY rank",
                [wafer_id],
            )
            job_id = s.resolved.snapshot_job_ids.get(lot_id, "")
            test = None
            values = None
            if test_num is not None:
                test, values = s.memo(
                    f"map_values#{wafer_id}#{view}#{test_num}#{test_name!r}",
                    lambda: self._map_values(s, wafer_id, view, dies, test_num, test_name),
                )
        o = ori[0] if ori else {}
        pos_x, pos_y = o.get("pos_x"), o.get("pos_y")
        orientation = {
            "pos_x": pos_x if pos_x in ("L", "R") else "R",
            "pos_y": pos_y if pos_y in ("U", "D") else "U",
            "orientation_assumed": pos_x not in ("L", "R") or pos_y not in ("U", "D"),
            "pos_x_from_file": pos_x in ("L", "R"),
            "pos_y_from_file": pos_y in ("U", "D"),
            "flat": o.get("wafer_flat") if o.get("wafer_flat") in ("U", "D", "L", "R") else None,
            "center_x": o.get("center_x"),
            "center_y": o.get("center_y"),
            "die_width": _finite_or_none(o.get("die_width")),
            "die_height": _finite_or_none(o.get("die_height")),
            "units": o.get("wafer_units"),
        }
        cols: dict[str, list] = {
            k: [d[k] for d in dies] for k in ("x", "y", "hard_bin", "soft_bin", "passed", "part_id", "site_num")
        }
        if values is not None:
            cols["value"] = [None if v is None or not math.isfinite(v) else v for v in values]
        table: dict[str, dict[int, dict[str, Any]]] = {"H": {}, "S": {}}
        for b in bins:
            table[b["bin_type"]][b["bin_num"]] = {"name": b["bin_name"], "pass_fail": b["pass_fail"]}
        _pass_fail_from_parts(table, cols)
        good = sum(1 for p in cols["passed"] if p)
        counts = {"dies": len(dies), "good": good, "yield": (good / len(dies)) if dies else None, "view": view}
        return MapData(lot_id, wafer_id, cols, table, orientation, test, counts, job_id, patterns)

    def wafer_map_image(
        self,
        ws: str,
        lot_id: str,
        wafer_id: str,
        *,
        fmt: Literal["png", "svg"],
        bin_type: Literal["H", "S"] = "H",
        snapshot_job_id: str | None = None,
        test_num: int | None = None,
        test_name: str | None = None,
        view: View = "final",
    ) -> bytes:
        """The die map drawn as PNG or SVG (``render_die_map``). A snapshot never changes, so neither does its
        picture: the bytes are kept per snapshot like its other derived values (``QueryEngine.memo``)."""
        from stratum.render.diemap import render_die_map

        check_wafer_ids([wafer_id])
        snap = self.engine.resolve(ws, Scope(lot_id=lot_id, snapshot_job_id=snapshot_job_id)).snapshot_job_ids[lot_id]

        def draw() -> bytes:
            data = self.wafer_map(
                ws, lot_id, wafer_id, snapshot_job_id=snap, test_num=test_num, test_name=test_name, view=view
            )
            return render_die_map(data, fmt=fmt, bin_type=bin_type)

        name = f"map_image#{wafer_id}#{view}#{test_num}#{test_name!r}#{fmt}#{bin_type}#{self._caption_key(ws, lot_id)}"
        return self.engine.memo(("map_image", ws, lot_id, snap), name, draw)

    def _caption_key(self, ws: str, lot_id: str) -> str:
        """What the picture's pattern caption depends on beyond the snapshot: the lot's stored classifications
        (metadata store; one read, no DuckDB). Empty when there are none (the lake's per-file rows are immutable)."""
        rows_of = self.engine.row_sources.get("wafer_pattern_history")
        rows = rows_of(ws, {lot_id}) if rows_of is not None else []
        return hashlib.blake2b(repr(sorted(rows)).encode(), digest_size=8).hexdigest() if rows else ""

    def _map_base(self, s: Session, lot_id: str, wafer_id: str, view: View) -> tuple:
        dies = s.dicts(
            f"""SELECT x, y, hard_bin, soft_bin, passed, part_id, site_num, job_id, part_seq
                           FROM parts WHERE wafer_id = ? AND {_view_filter(view)} AND x IS NOT NULL
                           AND y IS NOT NULL ORDER BY y, x""",
            [wafer_id],
        )
        if not dies:
            self._check_wafer(s, lot_id, wafer_id)
        # names and pass/fail for the legend: the bin records of the files, newest file first
        bins = s.dicts("""SELECT b.bin_type, b.bin_num, arg_max(b.bin_name, m.file_order) AS bin_name,
                                 arg_max(b.pass_fail, m.file_order) AS pass_fail
                          FROM _bin_names b JOIN _members m ON m.file_num = b.file_num GROUP BY ALL""")
        ori = s.dicts(
            "SELECT pos_x, pos_y, wafer_flat, center_x, center_y, die_width, die_height, wafer_units "
            "FROM lot_files ORDER BY file_order DESC LIMIT 1"
        )
        return dies, bins, ori

    def _map_values(
        self, s: Session, wafer_id: str, view: View, dies: list[dict], test_num: int, test_name: str | None
    ) -> tuple[dict, list]:
        test = self._pick_test(s, test_num, test_name)
        if test["test_type"] == "P":
            sql = f"""SELECT x, y, result FROM results WHERE wafer_id = ? AND test_num = ?
                      AND test_name = ? AND valid AND {_view_filter(view)}"""
        else:  # functional (FTR) or multi-pin (MPR, every pin must pass): 1.0 pass, 0.0 fail
            rel = "ftr_results" if test["test_type"] == "F" else "mpr_results"
            sql = f"""SELECT x, y, CASE WHEN bool_and(passed) THEN 1.0::DOUBLE ELSE 0.0::DOUBLE END FROM {rel}
                      WHERE wafer_id = ? AND test_num = ? AND test_name = ? AND passed IS NOT NULL
                        AND {_view_filter(view)} GROUP BY x, y"""
        vals = s.rows(sql, [wafer_id, test_num, test["test_name"]])
        by_xy = {(x, y): r for x, y, r in vals}
        return test, [by_xy.get((d["x"], d["y"])) for d in dies]

    # -- tests ----------------------------------------------------------------------------------
    @staticmethod
    def _pick_test(s: Session, test_num: int, test_name: str | None, types: tuple[str, ...] = ("P", "M", "F")) -> dict:
        rows = s.dicts(
            "SELECT * FROM tests WHERE test_num = ? AND (? IS NULL OR test_name = ?) ORDER BY test_type",
            [test_num, test_name, test_name],
        )
        rows = [r for r in rows if r["test_type"] in types]
        if not rows:
            raise NotFound(f"test {test_num}{f' {test_name!r}' if test_name else ''} not found")
        if len(rows) > 1:
            names = ", ".join(repr(r["test_name"]) for r in rows)
            raise BadRequest(f"test number {test_num} names several tests ({names}); pass test_name to choose one")
        return {k: jsonable(_finite_or_none(v)) for k, v in rows[0].items()}

    def tests(
        self,
        ws: str,
        lot_id: str,
        *,
        snapshot_job_id: str | None = None,
        wafer_id: str | None = None,
        view: View = "final",
    ) -> list[dict[str, Any]]:
        with self._session(ws, lot_id, snapshot_job_id) as s:
            self._check_wafer(s, lot_id, wafer_id)
            # the snapshot is immutable: its per-test rows are built once per (view, wafer) from its statistics
            rows = s.memo(f"tests#{view}#{wafer_id!r}", lambda: self._test_stats(ws, s, lot_id, view, wafer_id))
        out = []
        for r in rows:
            r = {k: jsonable(_finite_or_none(v)) for k, v in r.items()}
            r["n"] = r["n"] or 0
            r["fails"] = r["fails"] or 0
            r["fail_rate"] = (r["fails"] / r["n"]) if r["n"] else None
            out.append(r)
        return out

    def _snapshot_stats(self, ws: str, s: Session, lot_id: str) -> snapstats.SnapshotStats:
        """The snapshot's sufficient statistics (materialised in the lake on first use; read once per process)."""
        return s.memo("snapshot_stats", lambda: snapstats.load(self.engine.lake, ws, s, lot_id))

    def _test_stats(self, ws: str, s: Session, lot_id: str, view: View, wafer_id: str | None) -> list[dict[str, Any]]:
        """Per test: counts, mean, sigma, min, max of valid results and fails, in ``view`` (and on ``wafer_id``):
        every parametric test (empty when it has no result in scope), multi-pin and functional tests with rows."""
        stats = self._snapshot_stats(ws, s, lot_id).rows(view, wafer_id)
        meta = s.memo(
            "tests_meta",
            lambda: s.dicts(
                "SELECT test_num, test_name, test_type, units, lo_limit, hi_limit, lo_spec, hi_spec, res_scal, "
                "scale_mismatch FROM tests WHERE test_type IN ('P', 'M', 'F')"
            ),
        )
        out = []
        for t in meta:
            got = stats.get((t["test_type"], t["test_num"], t["test_name"]))
            if got is None and t["test_type"] != "P":
                continue
            n, n_valid, fails, mean, m2, lo, hi = got or (None, None, None, None, None, None, None)
            var = snapstats.variance(n_valid, m2)
            d = dict(t)
            if t["test_type"] == "F":
                d.update(units=None, lo_limit=None, hi_limit=None, lo_spec=None, hi_spec=None, res_scal=None)
                d["scale_mismatch"] = False
            d.update(
                n=n,
                n_valid=n_valid,
                mean=mean,
                sigma=None if var is None else math.sqrt(max(var, 0.0)),
                min=float32_value(lo),  # the results are R*4: shown at float32 precision
                max=float32_value(hi),
                fails=fails,
            )
            out.append(d)
        return sorted(out, key=lambda r: (r["test_num"], r["test_name"] or "", r["test_type"]))

    def test_results(
        self,
        ws: str,
        lot_id: str,
        test_num: int,
        *,
        test_name: str | None = None,
        snapshot_job_id: str | None = None,
        wafer_id: str | None = None,
        site_num: int | None = None,
        view: View = "final",
        limit: int = 1000,
        offset: int = 0,
    ) -> tuple[dict, list[dict], bool]:
        with self._session(ws, lot_id, snapshot_job_id) as s:
            self._check_wafer(s, lot_id, wafer_id)
            test = self._pick_test(s, test_num, test_name)
            if test["test_type"] != "P":
                rows = self._pin_or_functional_results(s, test, wafer_id, site_num, view, limit, offset)
                more = len(rows) > limit
                return test, [{k: jsonable(_finite_or_none(v)) for k, v in r.items()} for r in rows[:limit]], more
            rows = s.dicts(
                f"""
                SELECT wafer_id, x, y, part_id, head_num, site_num, result, valid, passed, lo_limit, hi_limit,
                       is_final, is_retest, hard_bin, soft_bin, job_id
                FROM results WHERE test_num = $num AND test_name = $name AND {_view_filter(view)} AND {_WAFER}
                  AND ($site::INTEGER IS NULL OR site_num = $site)
                ORDER BY job_id, part_seq LIMIT $limit OFFSET $offset""",
                {
                    "num": test_num,
                    "name": test["test_name"],
                    "wafer": wafer_id,
                    "site": site_num,
                    "limit": limit + 1,
                    "offset": offset,
                },
            )
        more = len(rows) > limit
        return test, [{k: jsonable(_finite_or_none(v)) for k, v in r.items()} for r in rows[:limit]], more

    @staticmethod
    def _pin_or_functional_results(
        s: Session, test: dict, wafer_id: str | None, site_num: int | None, view: View, limit: int, offset: int
    ) -> list[dict]:
        """Rows of an FTR (one per part) or MPR (one per pin and part) test, shaped like PTR result rows."""
        if test["test_type"] == "F":
            cols = """NULL::DOUBLE AS result, passed IS NOT NULL AS valid, NULL::DOUBLE AS lo_limit,
                      NULL::DOUBLE AS hi_limit, num_fail, cycl_cnt, vect_nam, rslt_txt, test_flg"""
            table, order = "ftr_results", ""
        else:
            cols = "result, valid, lo_limit, hi_limit, pin_seq, pin_name, rtn_stat"
            table, order = "mpr_results", ", pin_seq"
        return s.dicts(
            f"""
            SELECT wafer_id, x, y, part_id, head_num, site_num, passed, is_final, is_retest, job_id, {cols}
            FROM {table} WHERE test_num = $num AND test_name = $name AND {_view_filter(view)} AND {_WAFER}
              AND ($site::INTEGER IS NULL OR site_num = $site)
            ORDER BY job_id, wafer_id NULLS FIRST, y, x, part_id, site_num, is_retest{order}
            LIMIT $limit OFFSET $offset""",
            {
                "num": test["test_num"],
                "name": test["test_name"],
                "wafer": wafer_id,
                "site": site_num,
                "limit": limit + 1,
                "offset": offset,
            },
        )

    # -- capability -----------------------------------------------------------------------------
    def capability(
        self,
        ws: str,
        lot_id: str,
        *,
        snapshot_job_id: str | None = None,
        wafer_id: str | None = None,
        source: Literal["exact", "auto"] = "exact",
        limits: Literal["test", "spec"] = "test",
        unbias: bool = False,
        estimator: str = "pooled",
        test_num: int | None = None,
    ) -> dict[str, Any]:
        if estimator not in cap.ESTIMATORS:
            raise BadRequest(f"unknown estimator {estimator!r}; one of {', '.join(cap.ESTIMATORS)}")
        with self._session(ws, lot_id, snapshot_job_id) as s:
            self._check_wafer(s, lot_id, wafer_id)
            # the whole answer once per immutable snapshot and request: callers get the same object (read-only),
            # so the API renders its JSON once too (routes.lots.capability_response)
            return s.memo(
                f"capability#{wafer_id!r}#{source}#{limits}#{unbias}#{estimator}#{test_num}",
                lambda: self._capability(s, ws, lot_id, wafer_id, source, limits, unbias, estimator, test_num),
            )

    def _capability(
        self,
        s: Session,
        ws: str,
        lot_id: str,
        wafer_id: str | None,
        source: str,
        limits: str,
        unbias: bool,
        estimator: str,
        test_num: int | None,
    ) -> dict[str, Any]:
        use_tsr = source == "auto" and wafer_id is None
        # computed once per immutable snapshot and request shape; estimator and unbias only change the formula
        tests, (n, mean, var, used, subgroups, lsl, usl) = s.memo(
            f"capability_inputs#{wafer_id!r}#{limits}#{test_num}#{use_tsr}",
            lambda: self._capability_inputs(
                s, self._snapshot_stats(ws, s, lot_id), wafer_id, limits, test_num, use_tsr
            ),
        )
        n_t = len(tests)
        job_id = s.resolved.snapshot_job_ids.get(lot_id)
        shown = s.memo(f"capability_limits#{limits}#{test_num}", lambda: _shown_limits(tests))
        batch = (
            cap.compute_many(n, mean, var, lsl, usl, subgroups=subgroups, unbias=unbias, estimator=estimator)
            if n_t
            else None
        )
        results = []
        rows = batch.to_dicts() if batch is not None else []  # column-wise: one pass, not a dataclass per test
        # every value is JSON-ready already: to_dicts gives finite floats or None, the tests' ints and strings
        for i, t in enumerate(tests):
            d = rows[i]
            d.update(test_num=t[0], test_name=t[1], units=t[2], source=used[i], lsl=shown[i][0], usl=shown[i][1])
            results.append(d)
        return {
            "lot_id": lot_id,
            "wafer_id": wafer_id,
            "snapshot_job_id": job_id,
            "limits": limits,
            "estimator": estimator,
            "unbias": unbias,
            "source": source,
            "tests": results,
        }

    @staticmethod
    def _capability_inputs(
        s: Session,
        stats: snapstats.SnapshotStats,
        wafer_id: str | None,
        limits: str,
        test_num: int | None,
        use_tsr: bool,
    ) -> tuple[list[tuple], tuple]:
        """The tests and the arrays ``cap.compute_many`` takes: (n, mean, var, source per test, subgroups,
        lsl, usl). Read-only once built (they are kept per snapshot)."""
        lo_col, hi_col = ("lo_limit", "hi_limit") if limits == "test" else ("lo_spec", "hi_spec")
        # the snapshot is immutable: its sufficient statistics per (test, wafer) and per test are computed
        # once per wafer filter and kept (Session.memo); a test filter picks their rows
        tests = s.memo(
            f"capability_tests#{limits}",
            lambda: s.rows(
                f"SELECT test_num, test_name, units, {lo_col}, {hi_col} FROM tests WHERE test_type = 'P' "
                "ORDER BY test_num, test_name"
            ),
        )
        sub, tot = AnalyticsService._capability_stats(stats, wafer_id)
        if test_num is not None:
            tests = [t for t in tests if t[0] == test_num]
            sub = [r for r in sub if r[0] == test_num]
            tot = [r for r in tot if r[0] == test_num]
            if not tests:
                raise NotFound(f"test {test_num} not found")
        tsr = s.memo("tsr_stats", lambda: AnalyticsService._tsr_stats(s)) if use_tsr else None
        index = {(t[0], t[1]): i for i, t in enumerate(tests)}
        n_t = len(tests)
        n = np.zeros(n_t)
        mean = np.full(n_t, np.nan)
        var = np.full(n_t, np.nan)
        for tn, name, cnt, m, v in tot:
            i = index.get((tn, name))
            if i is not None:
                n[i], mean[i], var[i] = cnt, m, (np.nan if v is None else v)
        used = ["exact"] * n_t
        rows_i, rows_n, rows_m, rows_v, rows_min, rows_max = [], [], [], [], [], []
        for tn, name, _w, cnt, m, v, lo, hi in sub:
            i = index.get((tn, name))
            if i is not None:
                rows_i.append(i)
                rows_n.append(cnt)
                rows_m.append(m)
                rows_v.append(np.nan if v is None else v)
                rows_min.append(np.nan if lo is None else lo)
                rows_max.append(np.nan if hi is None else hi)
        if tsr:  # only for tests without raw results in scope: raw results, when present, are exact
            for key, (tn_, tm, tv) in tsr.items():
                i = index.get(key)
                if i is not None and tn_ >= 2 and n[i] == 0:
                    n[i], mean[i], var[i] = tn_, tm, (np.nan if tv is None else tv)
                    used[i] = "tsr"
        subgroups = (
            cap.SubgroupStats.from_long(rows_i, rows_n, rows_v, rows_m, rows_min, rows_max, n_rows=n_t) if n_t else None
        )
        if subgroups is not None:
            for i, u in enumerate(used):  # TSR gives no per-wafer statistics: within sigma falls back
                if u == "tsr":
                    subgroups.n[i, :] = 0
        lsl = np.array([np.nan if t[3] is None else t[3] for t in tests], dtype=np.float64)
        usl = np.array([np.nan if t[4] is None else t[4] for t in tests], dtype=np.float64)
        arrays = [n, mean, var, lsl, usl]
        if subgroups is not None:
            arrays += [a for a in vars(subgroups).values() if isinstance(a, np.ndarray)]
        for a in arrays:  # kept and shared between calls: a write would fail, not leak into the next answer
            a.flags.writeable = False
        return tests, (n, mean, var, tuple(used), subgroups, lsl, usl)

    @staticmethod
    def _capability_stats(stats: snapstats.SnapshotStats, wafer_id: str | None) -> tuple[list[tuple], list[tuple]]:
        """Sufficient statistics of the final valid results: (test, wafer) subgroups of dies on a wafer (n, mean,
        variance, min, max; an empty WAFER_ID is one null-id wafer, final-test parts form none), and per test
        over every final part (n, mean, variance); only ``wafer_id``'s when given."""
        by_wafer = stats.wafer_rows("final")
        if wafer_id is not None:
            by_wafer = {wafer_id: by_wafer.get(wafer_id, {})}
        sub = [
            (tn, name, w, nv, mean, snapstats.variance(nv, m2), lo, hi)
            for w, rows in by_wafer.items()
            for (tt, tn, name), (_n, nv, _f, mean, m2, lo, hi) in rows.items()
            if tt == "P" and nv
        ]
        tot = [
            (tn, name, nv, mean, snapstats.variance(nv, m2))
            for (tt, tn, name), (_n, nv, _f, mean, m2, _lo, _hi) in stats.rows("final", wafer_id).items()
            if tt == "P" and nv
        ]
        return sub, tot

    @staticmethod
    def _tsr_stats(s: Session) -> dict[tuple[int, str], tuple[float, float, float | None]]:
        """(n, mean, variance) per test from TSR sums, only when every file of the snapshot has them. The R*4
        sums are added and used in float64; the variance is None when they cannot give one (see tsr_moments)."""
        rows = s.rows("""
            WITH t AS (
                SELECT ts.*, count(*) OVER (PARTITION BY ts.test_num) AS recs FROM test_summaries ts
                WHERE (ts.test_type = 'P' OR ts.test_type IS NULL) AND ts.test_sum IS NOT NULL
                  AND ts.test_sum_squares IS NOT NULL AND ts.exec_count IS NOT NULL),
            per_file AS (
                SELECT file_num, test_num,
                       CASE WHEN bool_or(head_num = 255) THEN sum(exec_count) FILTER (WHERE head_num = 255)
                            ELSE sum(exec_count) END AS n,
                       CASE WHEN bool_or(head_num = 255) THEN sum(test_sum::DOUBLE) FILTER (WHERE head_num = 255)
                            ELSE sum(test_sum::DOUBLE) END AS sx,
                       CASE WHEN bool_or(head_num = 255)
                            THEN sum(test_sum_squares::DOUBLE) FILTER (WHERE head_num = 255)
                            ELSE sum(test_sum_squares::DOUBLE) END AS sxx
                FROM t GROUP BY ALL)
            SELECT p.test_num, k.test_name, sum(p.n)::DOUBLE, sum(p.sx), sum(p.sxx), count(DISTINCT p.file_num)
            FROM per_file p
            JOIN (SELECT DISTINCT test_num, test_name FROM tests WHERE test_type = 'P') k USING (test_num)
            GROUP BY ALL""")
        files = s.rows("SELECT count(*) FROM lot_files")[0][0]
        out = {}
        for tn, name, n, sx, sxx, nf in rows:
            if nf != files or not n or n < 2:
                continue
            out[(tn, name)] = tsr_moments(n, sx, sxx)
        return out

    # -- bins -----------------------------------------------------------------------------------
    def bins(
        self,
        ws: str,
        lot_id: str,
        *,
        snapshot_job_id: str | None = None,
        by: Literal["lot", "wafer", "site"] = "lot",
        bin_type: Literal["H", "S"] | None = None,
        wafer_id: str | None = None,
    ) -> dict[str, Any]:
        group = {"lot": "", "wafer": "wafer_id", "site": "head_num, site_num"}[by]
        gsel = f"{group}, " if group else ""
        # wafers group null-safely (an empty WAFER_ID is a null wafer id, still a wafer); only parts on a wafer
        join_g = {
            "lot": "CROSS JOIN g",
            "wafer": "JOIN g ON g.wafer_id IS NOT DISTINCT FROM c.wafer_id",
            "site": "JOIN g USING (head_num, site_num)",
        }[by]
        on = f"{_WAFER} AND on_wafer" if by == "wafer" else _WAFER
        w = {"wafer": wafer_id}
        with self._session(ws, lot_id, snapshot_job_id) as s:
            self._check_wafer(s, lot_id, wafer_id)
            types = [bin_type] if bin_type else ["H", "S"]
            counts = []
            for bt in types:
                col = "hard_bin" if bt == "H" else "soft_bin"
                counts += s.dicts(
                    f"""
                    WITH g AS (SELECT {gsel} count(*) FILTER (WHERE is_final) AS total,
                                      count(*) FILTER (WHERE NOT is_retest) AS total_first
                               FROM parts WHERE {on} {"GROUP BY " + group if group else ""}),
                    c AS (SELECT {gsel} {col} AS bin_num, count(*) FILTER (WHERE is_final) AS part_count,
                                 count(*) FILTER (WHERE NOT is_retest) AS first_pass_count
                          FROM parts WHERE {col} IS NOT NULL AND {on} GROUP BY ALL)
                    SELECT '{bt}' AS bin_type, c.*, round(100.0 * c.part_count / nullif(g.total, 0), 4) AS percent,
                           round(100.0 * c.first_pass_count / nullif(g.total_first, 0), 4) AS first_pass_percent
                    FROM c {join_g}
                    ORDER BY {gsel} part_count DESC, bin_num""",
                    w,
                )
            names = {(r["bin_type"], r["bin_num"]): r for r in s.dicts("SELECT * FROM bins")}
            y = s.dicts(
                f"""SELECT {gsel} count(*) FILTER (WHERE is_final) AS parts,
                                   count(*) FILTER (WHERE is_final AND passed) AS good,
                                   count(*) FILTER (WHERE NOT is_retest) AS first_pass_parts,
                                   count(*) FILTER (WHERE NOT is_retest AND passed) AS first_pass_good,
                                   count(*) FILTER (WHERE is_retest) AS retests
                            FROM parts WHERE {on} {"GROUP BY " + group if group else ""}
                            {"ORDER BY " + group if group else ""}""",
                w,
            )
            job_id = s.resolved.snapshot_job_ids.get(lot_id)
        for r in counts:
            nm = names.get((r["bin_type"], r["bin_num"]), {})
            r["bin_name"] = nm.get("bin_name")
            r["pass_fail"] = nm.get("pass_fail")
            r["summary_count"] = nm.get("summary_count") if by == "lot" else None
        yields = []
        for r in y:
            r = dict(r)
            r["yield"] = r["good"] / r["parts"] if r["parts"] else None
            r["first_pass_yield"] = r["first_pass_good"] / r["first_pass_parts"] if r["first_pass_parts"] else None
            yields.append({k: jsonable(v) for k, v in r.items()})
        return {
            "lot_id": lot_id,
            "snapshot_job_id": job_id,
            "by": by,
            "wafer_id": wafer_id,
            "yield": yields,
            "bins": [{k: jsonable(_finite_or_none(v)) for k, v in r.items()} for r in counts],
        }


def _shown_limits(tests: list[tuple]) -> list[tuple[Any, Any]]:
    """(lsl, usl) of each test as presented: the file's R*4 values at float32 precision, None when absent."""
    return [(float32_value(_finite_or_none(t[3])), float32_value(_finite_or_none(t[4]))) for t in tests]


def _pass_fail_from_parts(table: dict[str, dict[int, dict[str, Any]]], cols: dict[str, list]) -> None:
    """Bins whose HBR/SBR leave pass/fail blank (or that have no bin record) take it from the PRR part flags of
    the dies in them, when those agree (every die passed or every die failed); such entries say
    ``pass_fail_source: 'prr'``."""
    for bt, key in (("H", "hard_bin"), ("S", "soft_bin")):
        seen: dict[int, set[bool]] = {}
        for b, p in zip(cols[key], cols["passed"], strict=True):
            if b is not None and p is not None:
                seen.setdefault(b, set()).add(bool(p))
        for entry in table[bt].values():
            entry["pass_fail_source"] = "bin_record" if entry["pass_fail"] in ("P", "F") else None
        for b, flags in seen.items():
            entry = table[bt].setdefault(b, {"name": None, "pass_fail": None, "pass_fail_source": None})
            if entry["pass_fail_source"] is None and len(flags) == 1:
                entry["pass_fail"] = "P" if flags == {True} else "F"
                entry["pass_fail_source"] = "prr"  # noqa: S105 (not a secret)
