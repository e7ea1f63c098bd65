"""Pattern classification service: classify a die map, describe the taxonomy."""

from __future__ import annotations

import math

import numpy as np

from stratum.patterns import calibration
from stratum.patterns import taxonomy as tx
from stratum.patterns.classifier import RULES_VERSION, Detection, Thresholds, analyse
from stratum.patterns.geometry import DieMap, Geometry


def classifier_version() -> str:
    return f"stratum-patterns-{RULES_VERSION}+cal.{calibration.tables()['version']}"


def _num(v: float) -> float | int:
    if isinstance(v, (int, np.integer)):
        return int(v)
    v = float(v)
    return round(v, 4) if math.isfinite(v) else 0.0


def _explain(d: Detection, g: Geometry, dm: DieMap) -> dict:
    idx = np.flatnonzero(d.region)
    r, th = g.r[idx], g.theta[idx]
    sector = None
    if d.family in ("loc", "edge_loc", "gross_region") and len(idx):
        ang = math.atan2(float(g.v[idx].mean()), float(g.u[idx].mean()))
        sector = tx.octant_of(ang)
    return {
        "summary": d.summary,
        "features": {k: _num(v) for k, v in d.features.items()},
        "region": {
            "die_count": len(idx),
            "fail_density": _num(d.density),
            "r_min": _num(r.min()) if len(idx) else 0.0,
            "r_max": _num(r.max()) if len(idx) else 0.0,
            "theta_deg_mean": _num(math.degrees(math.atan2(np.sin(th).mean(), np.cos(th).mean()))) if len(idx) else 0.0,
            "octant": sector,
            "dies": [[int(a), int(b)] for a, b in zip(dm.x[idx], dm.y[idx], strict=True)],
        },
        "orientation_assumed": True,
    }


#: a detection is reported only when its calibrated confidence reaches this (PatternSettings default)
MIN_CONFIDENCE = 0.4


def classify_diemap(
    dm: DieMap,
    *,
    wafer_id: str | None = None,
    thresholds: Thresholds | None = None,
    min_confidence: float = MIN_CONFIDENCE,
) -> dict:
    dets, g = analyse(dm, thresholds)
    out = []
    for d in dets:
        if d.family == "none" or calibration.confidence(d.family, d.score) < min_confidence:
            continue
        out.append(
            {
                "class_id": d.class_id,
                "family": d.family,
                "location": d.location,
                "severity": d.severity,
                "refinement": d.refinement,
                "confidence": calibration.confidence(d.family, d.score),
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
