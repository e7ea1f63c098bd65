"""Pattern classification service: classify a die map, describe the taxonomy."""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np

from stratum.errors import BadRequest, NotFound, PayloadTooLarge, StratumError, Unprocessable
from stratum.patterns import calibration, verifier
from stratum.patterns import taxonomy as tx
from stratum.patterns.classifier import RULES_VERSION, Detection, Thresholds, analyse
from stratum.patterns.geometry import DieMap, Geometry, sin_cos
from stratum.patterns.store import pattern_rows
from stratum.settings import PatternSettings


def classifier_version() -> str:
    return f"stratum-patterns-{RULES_VERSION}+ver.{verifier.models()['version']}+cal.{calibration.tables()['version']}"


def _num(v: float) -> float | int:
    if type(v) is float:  # the common case first: the same value as below
        return round(v, 4) if math.isfinite(v) else 0.0
    if isinstance(v, (int, np.integer)):
        return int(v)
    v = float(v)
    return round(v, 4) if math.isfinite(v) else 0.0


def _theta_mean(g: Geometry, idx: np.ndarray) -> float | int:
    """Circular mean angle of the dies ``idx`` in degrees (sines and cosines of the layout's angles, once)."""
    sin, cos = sin_cos(g, idx)
    n = len(idx)
    return _num(math.degrees(math.atan2(float(np.add.reduce(sin)) / n, float(np.add.reduce(cos)) / n)))


def _explain(d: Detection, g: Geometry, dm: DieMap) -> dict:
    idx = d.region.nonzero()[0]  # np.flatnonzero of the 1-d mask
    n = len(idx)
    r = g.r[idx]
    sector = None
    if d.family in ("loc", "edge_loc", "gross_region") and n:
        ang = math.atan2(float(np.add.reduce(g.v[idx])) / n, float(np.add.reduce(g.u[idx])) / n)  # the means' bits
        sector = tx.octant_of(ang)
    return {
        "summary": d.summary,
        "features": {k: _num(v) for k, v in d.features.items()},
        "region": {
            "die_count": n,
            "fail_density": _num(d.density),
            "r_min": _num(np.minimum.reduce(r)) if n else 0.0,  # r.min(), without its wrapper
            "r_max": _num(np.maximum.reduce(r)) if n else 0.0,
            "theta_deg_mean": _theta_mean(g, idx) if n else 0.0,
            "octant": sector,
            "dies": _xy(dm, idx),
        },
        "orientation_assumed": True,
    }


def _xy(dm: DieMap, idx: np.ndarray) -> list[list[int]]:
    """``[[x, y], ...]`` of the dies ``idx`` (``np.stack((x, y), axis=1).astype(np.int64).tolist()``)."""
    xy = np.empty((len(idx), 2), dtype=np.int64)
    xy[:, 0] = dm.x[idx]
    xy[:, 1] = dm.y[idx]
    return xy.tolist()


#: a detection is reported only when its calibrated confidence reaches this (PatternSettings default)
MIN_CONFIDENCE = 0.05


def classify_diemap(
    dm: DieMap,
    *,
    wafer_id: str | None = None,
    thresholds: Thresholds | None = None,
    min_confidence: float = MIN_CONFIDENCE,
) -> dict:
    dets, g = analyse(dm, thresholds)
    out: list[dict[str, Any]] = []
    for d in dets:
        if d.family == "none":
            continue
        conf = calibration.confidence(d.family, d.score)
        if conf < min_confidence:
            continue
        out.append(
            {
                "class_id": d.class_id,
                "family": d.family,
                "location": d.location,
                "severity": d.severity,
                "refinement": d.refinement,
                "confidence": conf,
                "level_confidence": {
                    "location": calibration.level_confidence(d.family, "location", d.location),
                    "severity": calibration.level_confidence(d.family, "severity", d.severity),
                },
                "raw_score": _num(d.score),
                "explanation": _explain(d, g, dm),
            }
        )
    out.sort(key=lambda p: (-p["confidence"], p["class_id"]))
    return {"wafer_id": wafer_id, "pattern_classes": out, "classifier_version": classifier_version()}


# --------------------------------------------------------------------------------------------------
# Inputs: the four classify body forms -> DieMap
# --------------------------------------------------------------------------------------------------


class MapDataError(Unprocessable):
    code, title = "unprocessable_map", "Unprocessable map data"


FORMS = ("map_data (base64 STDF)", "dies", "grid", "lot_id + wafer_id (+ snapshot_job_id)")


def _dies_from_arrays(x, y, fail, site=None, hard_bin=None, *, limits: PatternSettings, where: str) -> DieMap:
    x = np.asarray(x, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    fail = np.asarray(fail, dtype=bool)
    if len(x) == 0:
        raise MapDataError(f"{where}: the map has no dies")
    if len(x) > limits.max_dies:
        raise PayloadTooLarge(f"{where}: {len(x)} dies; at most {limits.max_dies} per map")
    span = max(int(x.max() - x.min()), int(y.max() - y.min())) + 1
    if span > limits.max_span:
        raise MapDataError(f"{where}: the dies span {span} positions; at most {limits.max_span} across")
    # duplicate coordinates (retests): the last one wins
    key = (x - x.min()) * (int(y.max() - y.min()) + 1) + (y - y.min())
    _, last_rev = np.unique(key[::-1], return_index=True)
    keep = np.sort(len(key) - 1 - last_rev)
    s = None if site is None else np.asarray(site, dtype=np.int64)[keep]
    hb = None if hard_bin is None else np.asarray(hard_bin, dtype=np.int64)[keep]
    if len(keep) < 5:
        raise MapDataError(f"{where}: {len(keep)} distinct dies; a map needs at least 5")
    return DieMap(x=x[keep], y=y[keep], fail=fail[keep], site=s, hard_bin=hb)


def dies_from_list(dies: Any, limits: PatternSettings) -> DieMap:
    if not isinstance(dies, list):
        raise BadRequest("dies must be a list of {x, y, pass[, hard_bin, site]} objects")
    if len(dies) > limits.max_dies:
        raise PayloadTooLarge(f"dies: {len(dies)} dies; at most {limits.max_dies} per map")
    xs, ys, fails, sites, bins = [], [], [], [], []
    any_site = any_bin = False
    for i, d in enumerate(dies):
        if not isinstance(d, dict):
            raise BadRequest(f"dies[{i}] must be an object with x, y and pass")
        try:
            x, y = d["x"], d["y"]
        except KeyError as exc:
            raise BadRequest(f"dies[{i}] lacks {exc.args[0]!r}") from None
        if type(x) is not int or type(y) is not int:
            raise BadRequest(f"dies[{i}]: x and y must be integers")
        p = d.get("pass", d.get("passed"))
        hb = d.get("hard_bin")
        if hb is not None and type(hb) is not int:
            raise BadRequest(f"dies[{i}].hard_bin must be an integer")
        if p is None:
            if hb is None:
                raise BadRequest(f"dies[{i}] needs pass (true/false) or hard_bin")
            p = hb == 1
        if not isinstance(p, bool):
            raise BadRequest(f"dies[{i}].pass must be true or false")
        st = d.get("site")
        if st is not None and type(st) is not int:
            raise BadRequest(f"dies[{i}].site must be an integer")
        xs.append(x)
        ys.append(y)
        fails.append(not p)
        sites.append(-1 if st is None else st)
        bins.append(-1 if hb is None else hb)
        any_site |= st is not None
        any_bin |= hb is not None
    return _dies_from_arrays(
        xs, ys, fails, sites if any_site else None, bins if any_bin else None, limits=limits, where="dies"
    )


def dies_from_grid(grid: Any, limits: PatternSettings) -> DieMap:
    """WM-811K encoding: 0 off-wafer, 1 pass, 2 fail. Row 0 is the top row (y grows upwards)."""
    if not isinstance(grid, list) or not grid or not all(isinstance(r, list) for r in grid):
        raise BadRequest("grid must be a non-empty list of rows (lists of 0, 1, 2)")
    width = len(grid[0])
    if any(len(r) != width for r in grid):
        raise BadRequest("grid rows must all have the same length")
    if len(grid) > limits.max_span or width > limits.max_span:
        raise MapDataError(f"grid: {len(grid)} x {width}; at most {limits.max_span} per side")
    try:
        a = np.array(grid, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise BadRequest("grid cells must be the integers 0 (off-wafer), 1 (pass) or 2 (fail)") from None
    bad = ~np.isin(a, (0, 1, 2))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise BadRequest(f"grid[{r}][{c}] = {a[r, c]}: cells must be 0 (off-wafer), 1 (pass) or 2 (fail)")
    rows, cols = np.nonzero(a)
    return _dies_from_arrays(cols, (a.shape[0] - 1) - rows, a[rows, cols] == 2, limits=limits, where="grid")


def _decode_b64(data: Any, limits: PatternSettings) -> bytes:
    if not isinstance(data, str) or not data:
        raise BadRequest("map_data must be a non-empty base64 string")
    if len(data) > limits.max_map_bytes * 4 // 3 + 4:
        raise PayloadTooLarge(f"map_data: {len(data)} base64 characters; at most {limits.max_map_bytes} bytes")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("map_data is not valid base64") from None


def stdf_wafers(raw: bytes, limits: PatternSettings) -> list[tuple[str, DieMap, str]]:
    """Every wafer of an STDF byte string (plain or gzip/bz2/zip), as (id, DieMap). ``id`` is the
    WAFER_ID; the lot-qualified ``LOT_WAFER`` also selects it."""
    from stratum.stdf.dies import die_columns as _die_columns
    from stratum.stdf.errors import StdfError
    from stratum.stdf.reader import ReaderOptions, parse

    class _Parts:
        def __init__(self):
            self.cols: list[dict] = []
            self.hbin_pass: dict[int, bool] = {}

        def begin(self, header):
            pass

        def rows(self, table, cols):
            if table == "parts":
                self.cols.append(_die_columns(cols, len(next(iter(cols.values())))))
            elif table == "bins":
                for t, b, pf in zip(cols["bin_type"], cols["bin_num"], cols["pass_fail"], strict=True):
                    if t == "H" and pf in ("P", "F") and b is not None:
                        self.hbin_pass[int(b)] = pf == "P"

    sink = _Parts()
    try:
        res = parse(raw, sink, ReaderOptions(chunk_bytes=8 << 20))
    except StdfError as exc:
        raise MapDataError(f"map_data: {exc}") from None
    if res.bytes_decompressed > limits.max_map_bytes:
        raise PayloadTooLarge(f"map_data: {res.bytes_decompressed} bytes of STDF; at most {limits.max_map_bytes}")
    if not sink.cols:
        raise MapDataError("map_data: the STDF holds no parts (PRR records)")
    c = {k: np.concatenate([b[k] for b in sink.cols]) for k in sink.cols[0]}
    unknown = ~c.pop("passed_known")
    if unknown.any():
        c["passed"][unknown] = [sink.hbin_pass.get(int(b), int(b) == 1) for b in c["hard_bin"][unknown]]
    lot = (res.mir or {}).get("LOT_ID") or ""
    out = []
    valid = (c["x"] != -32768) & (c["y"] != -32768)
    for w in res.wafers:
        m = valid & (c["wafer_seq"] == w["wafer_seq"])
        if m.sum() < 5:
            continue
        wid = str(w.get("wafer_id") or w["wafer_seq"])
        dm = _dies_from_arrays(
            c["x"][m],
            c["y"][m],
            ~c["passed"][m].astype(bool),
            c["site_num"][m],
            c["hard_bin"][m],
            limits=limits,
            where=f"wafer {wid}",
        )
        if dm.site is not None and len(np.unique(dm.site)) < 2:
            dm = DieMap(dm.x, dm.y, dm.fail, None, dm.hard_bin)
        out.append((wid, dm, f"{lot}_{wid}" if lot else wid))
    if not out:
        raise MapDataError("map_data: the STDF holds no wafer with die coordinates (wafer sort data needs WIR/PRR X,Y)")
    return out


@dataclass
class ClassifyRequest:
    wafer_id: str | None
    dies: DieMap | None
    lake: tuple[str, str, str | None] | None  # lot_id, wafer_id, snapshot_job_id


@overload
def _str(body: Mapping, key: str, required: Literal[True]) -> str: ...
@overload
def _str(body: Mapping, key: str, required: bool = False) -> str | None: ...
def _str(body: Mapping, key: str, required: bool = False) -> str | None:
    v = body.get(key)
    if v is None:
        if required:
            raise BadRequest(f"{key} is required")
        return None
    if not isinstance(v, str) or not v or len(v) > 255:
        raise BadRequest(f"{key} must be a non-empty string of at most 255 characters")
    return v


def parse_body(body: Any, limits: PatternSettings) -> ClassifyRequest:
    if not isinstance(body, Mapping):
        raise BadRequest("the body must be a JSON object")
    wafer_id = _str(body, "wafer_id")
    given = [k for k in ("map_data", "dies", "grid") if k in body]
    if len(given) > 1:
        raise BadRequest(f"give one map form, not {' and '.join(given)}")
    if given == ["map_data"]:
        fmt = body.get("format", "stdf")
        if fmt != "stdf":
            raise BadRequest(f"unsupported format {fmt!r}: only 'stdf' (optionally gzip'd) is accepted")
        wafers = stdf_wafers(_decode_b64(body["map_data"], limits), limits)
        if wafer_id is None:
            if len(wafers) > 1:
                ids = ", ".join(w[0] for w in wafers[:20])
                raise BadRequest(f"the STDF holds {len(wafers)} wafers ({ids}); pick one with wafer_id")
            return ClassifyRequest(wafers[0][0], wafers[0][1], None)
        for wid, dm, lot_wafer in wafers:
            if wafer_id in (wid, lot_wafer):
                return ClassifyRequest(wafer_id, dm, None)
        ids = ", ".join(w[0] for w in wafers[:20])
        raise MapDataError(f"wafer_id {wafer_id!r} is not in the STDF (it holds {ids})")
    if given == ["dies"]:
        return ClassifyRequest(wafer_id, dies_from_list(body["dies"], limits), None)
    if given == ["grid"]:
        return ClassifyRequest(wafer_id, dies_from_grid(body["grid"], limits), None)
    if "lot_id" in body:
        lot = _str(body, "lot_id", True)
        if wafer_id is None:
            raise BadRequest("wafer_id is required with lot_id (or use POST /v1/batch with {lot_id} for a whole lot)")
        return ClassifyRequest(wafer_id, None, (lot, wafer_id, _str(body, "snapshot_job_id")))
    raise BadRequest(f"no map in the body: give one of {', '.join(FORMS)}")


# --------------------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------------------


PROBLEM_TYPE_BASE = "https://stratum.dev/problems/"  # equals stratum.api.problems.TYPE_BASE (test)


def problem_of(exc: StratumError, instance: str) -> dict:
    return {
        "type": PROBLEM_TYPE_BASE + exc.code,
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "instance": instance,
        "code": exc.code,
    }


class PatternService:
    """Classify maps (single, batch, lake wafers) and describe the taxonomy. ``lake_map`` loads a lake
    wafer as (DieMap, snapshot_job_id); ``lake_wafers`` lists a lot's wafer ids; both are optional."""

    def __init__(
        self,
        settings: PatternSettings | None = None,
        *,
        lake_map: Callable[[str, str, str, str | None], tuple[DieMap, str]] | None = None,
        lake_wafers: Callable[[str, str, str | None], list[str]] | None = None,
        store: Callable[[str, str, str, str, dict, int], None] | None = None,
        job_wafers: Callable[[str, str, str], list[str]] | None = None,
        lake_maps: Callable[[str, str, str], dict[str, tuple[DieMap, str]]] | None = None,
        meter: Any = None,
    ) -> None:
        self.settings = settings or PatternSettings()
        self.meter = meter  # stratum.auth.usage.UsageMeter: quotas and classification counts
        self.lake_map = lake_map
        self.lake_wafers = lake_wafers
        self.store = store  # (ws, lot, wafer, snapshot job, answer, dies): keep a lake wafer's classification
        self.job_wafers = job_wafers  # (ws, lot, job) -> the wafers the job's file tested
        # (ws, lot, job) -> {wafer: lake_map(ws, lot, wafer, job)} for the job_wafers, in one query (on publish)
        self.lake_maps = lake_maps
        self.thresholds = Thresholds(severity_splits=(self.settings.severity_low_max, self.settings.severity_med_max))

    def _run(self, dm: DieMap, wafer_id: str | None) -> dict:
        return classify_diemap(
            dm, wafer_id=wafer_id, thresholds=self.thresholds, min_confidence=self.settings.min_confidence
        )

    def _charge(self, ws: str, key: Any, n: int, route: str) -> None:
        """Take ``n`` classifications from the key's monthly quota (QuotaExceeded: nothing taken) and count them."""
        if self.meter is None or key is None:
            return
        self.meter.consume(key.key_id, key.limits, n)
        self.meter.record(ws, key.key_id, route, "classifications", n)

    def classify(self, ws: str, body: Any, *, key: Any = None, _charged: bool = False) -> dict:
        """``key``: the caller's principal (key_id, limits) for quotas and usage; None: not metered."""
        t0 = time.perf_counter()
        req = parse_body(body, self.settings)
        if not _charged:
            self._charge(ws, key, 1, "/v1/classify")
        if req.lake is not None:
            if self.lake_map is None:
                raise BadRequest("lake wafers cannot be classified here (no lake configured)")
            lot, wid, snap = req.lake
            dm, job = self.lake_map(ws, lot, wid, snap)
            out = self._run(dm, wid)
            out = {"lot_id": lot, **out, "snapshot_job_id": job}
            if self.store is not None:
                self.store(ws, lot, wid, job, out, len(dm.x))
        else:
            assert req.dies is not None  # parse_body gives either a map or a lake reference
            out = self._run(req.dies, req.wafer_id)
        out["latency_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
        return out

    def batch(self, ws: str, body: Any, *, key: Any = None) -> dict:
        limit = key.limits.batch_max(self.settings.max_batch) if key is not None else self.settings.max_batch
        if not isinstance(body, Mapping):
            raise BadRequest("the body must be a JSON object with maps (a list) or lot_id")
        if "lot_id" in body and "maps" not in body:
            lot = _str(body, "lot_id", True)
            if self.lake_wafers is None:
                raise BadRequest("lake lots cannot be classified here (no lake configured)")
            snap = _str(body, "snapshot_job_id")
            wafers = self.lake_wafers(ws, lot, snap)
            maps: list = [{"lot_id": lot, "wafer_id": w, **({"snapshot_job_id": snap} if snap else {})} for w in wafers]
        else:
            given = body.get("maps")
            if not isinstance(given, list) or not given:
                raise BadRequest("maps must be a non-empty list of classify bodies")
            maps = given
        if len(maps) > limit:
            raise PayloadTooLarge(f"{len(maps)} maps in one batch; at most {limit} for this key")
        self._charge(ws, key, len(maps), "/v1/batch")  # the whole batch, up front: all or nothing
        results = []
        for i, item in enumerate(maps):
            wid = item.get("wafer_id") if isinstance(item, Mapping) else None
            try:
                results.append(self.classify(ws, item, key=key, _charged=True))
            except StratumError as exc:
                prob = problem_of(exc, f"/v1/batch#/maps/{i}")
                results.append({"wafer_id": wid if isinstance(wid, str) else None, "error": prob})
        return {"results": results, "classifier_version": classifier_version()}

    def classify_published(self, ws: str, lot_id: str, job_id: str, *, min_dies: int = 20) -> int:
        """On publish: classify and store the final die map (the snapshot's retest view) of every wafer the
        job's file tested. Wafers with fewer than ``min_dies`` located dies are skipped (as at ingest).
        Returns the number of wafers classified. The maps come from ``lake_maps`` (one query) when given, else
        ``lake_map`` per wafer of ``job_wafers``: the same maps."""
        if self.lake_maps is not None:
            maps = self.lake_maps(ws, lot_id, job_id)
            wafers: Iterable[tuple[str, tuple[DieMap, str]]] = maps.items()
        elif self.job_wafers is not None and self.lake_map is not None:
            lake_map = self.lake_map
            wafers = ((w, lake_map(ws, lot_id, w, job_id)) for w in self.job_wafers(ws, lot_id, job_id))
        else:
            return 0
        n = 0
        for wid, (dm, job) in wafers:
            if len(dm.x) < min_dies:
                continue
            out = {"lot_id": lot_id, **self._run(dm, wid), "snapshot_job_id": job}
            if self.store is not None:
                self.store(ws, lot_id, wid, job, out, len(dm.x))
            n += 1
        return n

    # ---- taxonomy --------------------------------------------------------------------------------

    def list_patterns(self, *, family: str | None, limit: int, cursor: str | None) -> tuple[list[dict], str | None]:
        if family is not None and family not in tx.FAMILIES:
            raise BadRequest(f"unknown family {family!r}; known: {', '.join(tx.FAMILIES)}")
        items = [c for c in tx.classes() if family is None or c.family == family]
        start = 0
        if cursor:
            ids = [c.class_id for c in items]
            if cursor not in ids:
                raise BadRequest("cursor is not valid for this listing")
            start = ids.index(cursor) + 1
        page = items[start : start + limit]
        nxt = page[-1].class_id if start + limit < len(items) and page else None
        return [self._pattern(c) for c in page], nxt

    def get_pattern(self, class_id: str) -> dict:
        c = tx.by_id().get(class_id)
        if c is None:
            raise NotFound(f"no pattern class {class_id!r} (GET /v1/patterns lists them)")
        return self._pattern(c)

    @staticmethod
    def _pattern(c: tx.PatternClass) -> dict:
        return {**c.as_dict(), "example_url": f"/v1/patterns/{c.class_id}/example.png"}

    def example_png(self, class_id: str) -> bytes:
        c = tx.by_id().get(class_id)
        if c is None:
            raise NotFound(f"no pattern class {class_id!r} (GET /v1/patterns lists them)")
        from stratum.patterns import examples
        from stratum.render import wafermap as wm

        dm = examples.example(class_id)
        bins = np.where(dm.fail, 2, 1)
        return wm.render_bin_map(
            dm.x,
            dm.y,
            bins,
            {1: ("pass", True), 2: ("fail", False)},
            fmt="png",
            title=f"{c.class_id}",
            subtitle=[c.description[:110]],
            width=640,
            height=520,
        )


def lake_adapters(service: Callable[[], Any], catalog=None, store=None, lake=None) -> dict:
    """``lake_map`` / ``lake_maps`` / ``lake_wafers`` / ``job_wafers`` (and ``store`` over a
    :class:`PatternStore`) for :class:`PatternService` over the analytics service ``service()`` returns (called
    only when a wafer is read through it): the final view, one die per coordinate as the lot's retest policy
    keeps it, the map GET .../wafers/{wafer_id}/map draws. With ``catalog`` and ``lake`` (the lake's object
    store), ``lake_maps`` reads the snapshot's files without DuckDB where it can (``stratum.query.final_dies``:
    the same maps), and every stored classification is also written as a lake object
    (``stratum.lake.final_patterns``), the one Athena's ``wafer_patterns`` reads."""

    def lake_map(ws: str, lot: str, wafer: str, snap: str | None) -> tuple[DieMap, str]:
        data = service().wafer_map(ws, lot, wafer, snapshot_job_id=snap)
        d = data.dies
        if len(d["x"]) < 5:
            raise MapDataError(f"wafer {wafer} of lot {lot} has {len(d['x'])} dies with coordinates; a map needs 5")
        sites = [s if s is not None else -1 for s in d["site_num"]]
        dm = DieMap(
            x=np.asarray(d["x"], np.int64),
            y=np.asarray(d["y"], np.int64),
            fail=~np.asarray([bool(p) for p in d["passed"]]),
            site=np.asarray(sites, np.int64) if len(set(sites)) > 1 else None,
            hard_bin=np.asarray([b if b is not None else -1 for b in d["hard_bin"]], np.int64),
        )
        return dm, data.job_id

    def lake_maps(ws: str, lot: str, job_id: str) -> dict[str, tuple[DieMap, str]]:
        """``lake_map(ws, lot, w, job_id)`` of every wafer ``w`` in ``job_wafers(ws, lot, job_id)``, from one
        query; a wafer with fewer than 5 dies (where lake_map raises) is left out."""
        got = None
        if catalog is not None and lake is not None:
            from stratum.query.final_dies import final_dies

            got = final_dies(catalog, lake, ws, lot, job_id)
        snap, wafers = got if got is not None else service().job_final_dies(ws, lot, job_id)
        out = {}
        for wafer, d in wafers.items():
            if len(d["x"]) < 5:
                continue
            site = d["site_num"]
            multi = len(site) > 0 and bool((site != site[0]).any())
            dm = DieMap(x=d["x"], y=d["y"], fail=~d["passed"], site=site if multi else None, hard_bin=d["hard_bin"])
            out[wafer] = (dm, snap)
        return out

    def lake_wafers(ws: str, lot: str, snap: str | None) -> list[str]:
        return [w["wafer_id"] for w in service().wafers(ws, lot, snap) if w.get("wafer_id")]

    def job_wafers(ws: str, lot: str, job_id: str) -> list[str]:
        return service().job_wafers(ws, lot, job_id)

    out: dict[str, Any] = {
        "lake_map": lake_map,
        "lake_wafers": lake_wafers,
        "job_wafers": job_wafers,
        "lake_maps": lake_maps,
    }
    if catalog is not None and store is not None:

        def save(ws: str, lot: str, wafer: str, job: str, answer: dict, dies: int) -> None:
            store.save(ws, lot, wafer, job, catalog.get_job(ws, job).publish_seq or 0, answer, dies)
            if lake is None:
                return
            # the stored item (the first write's), also when it existed: a retry completes a lake write a
            # crash cut short, and every writer writes the same rows
            item = store.get(ws, lot, wafer, job, answer["classifier_version"])
            if item is not None:
                from datetime import datetime

                from stratum.lake import final_patterns

                final_patterns.write(
                    lake,
                    ws,
                    lot_id=item["lot_id"],
                    wafer_id=item["wafer_id"],
                    job_id=item["job_id"],
                    classifier_version=item["classifier_version"],
                    publish_seq=int(item["publish_seq"]),
                    classified_at=datetime.fromisoformat(item["classified_at"]),
                    rows=item["rows"],
                )

        out["store"] = save
    return out


def wafer_pattern_rows(wafers: list[dict], dies: dict[str, np.ndarray], min_dies: int = 20) -> dict[str, list]:
    """``wafer_patterns`` rows for the wafers of one STDF file (ingest). ``dies``: x, y, wafer_seq,
    site_num, hard_bin, passed per PRR. A wafer with fewer than ``min_dies`` located dies is skipped; a
    wafer without a pattern gets one 'none' row."""
    limits = PatternSettings()
    cols: dict[str, list] = {
        k: []
        for k in (
            "wafer_seq",
            "wafer_id",
            "rank",
            "class_id",
            "family",
            "location",
            "severity",
            "refinement",
            "confidence",
            "die_count",
            "summary",
            "classifier_version",
            "wafer_dies",
        )
    }
    version = classifier_version()
    ok = (dies["x"] != -32768) & (dies["y"] != -32768)
    for w in wafers:
        m = ok & (dies["wafer_seq"] == w["wafer_seq"])
        if int(m.sum()) < min_dies:
            continue
        try:
            dm = _dies_from_arrays(
                dies["x"][m],
                dies["y"][m],
                ~dies["passed"][m],
                dies["site_num"][m],
                dies["hard_bin"][m],
                limits=limits,
                where=f"wafer {w.get('wafer_id')}",
            )
        except StratumError:
            continue
        if dm.site is not None and len(np.unique(dm.site)) < 2:
            dm = DieMap(dm.x, dm.y, dm.fail, None, dm.hard_bin)
        rows = pattern_rows(classify_diemap(dm, min_confidence=limits.min_confidence), len(dm.x))
        for rank, r in enumerate(rows, 1):
            for k, v in zip(
                ("class_id", "family", "location", "severity", "refinement", "confidence", "die_count", "summary"),
                r,
                strict=True,
            ):
                cols[k].append(v)
            cols["wafer_seq"].append(w["wafer_seq"])
            cols["wafer_id"].append(w.get("wafer_id"))
            cols["rank"].append(rank)
            cols["classifier_version"].append(version)
            cols["wafer_dies"].append(len(dm.x))
    return cols
