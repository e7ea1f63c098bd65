"""Replay the classifier's reporting decision offline: classify each map ONCE with verification, keep every
candidate's verified probability, then score other decision rules (``Thresholds.accept`` / ``fallback`` and
the service's minimum calibrated confidence) over the cached candidates without classifying again.

    python -m stratum.devtools.patterns_decide collect --set D -n 2000 --seed-offset 500000 --cache FILE
    python -m stratum.devtools.patterns_decide replay FILE [FILE ...]

``collect`` checks that the replay of the packaged thresholds reproduces ``analyse`` on every map;
``--regions`` also keeps every candidate's region and the fail mask (for rules on overlaps; ~50 kB a map).
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
from typing import Any

import numpy as np

from stratum.devtools.patterns_data import SEED0, sample
from stratum.devtools.patterns_eval import calibration_error, prf, tally
from stratum.patterns import calibration
from stratum.patterns import taxonomy as tx
from stratum.patterns.classifier import (
    Detection,
    Thresholds,
    _Ctx,
    _detect_all,
    _in_centre,
    _verify,
    analyse,
    report,
)
from stratum.patterns.service import MIN_CONFIDENCE

_EMPTY = np.zeros(0, dtype=bool)


def _slim(d: Detection, regions: bool = False) -> Detection:
    return dataclasses.replace(
        d, region=d.region if regions else _EMPTY, features={k: v for k, v in d.features.items() if k == "rule_score"}
    )


def collect_one(smp: Any, regions: bool = False) -> dict:
    """One map's cached candidates (every one, in detector order, with its verified probability)."""
    th = Thresholds()
    c = _Ctx(smp.dies, dataclasses.replace(th, accept=-1.0))  # keep every verified candidate, in order
    rec: dict[str, Any] = {
        "truth": [(lab.family, lab.location, lab.severity) for lab in smp.labels],
        "fail_ratio": float(c.fail_ratio),
    }
    ref, _ = analyse(smp.dies)
    if float(c.fail_ratio) >= th.near_full:
        rec["fixed"] = [_slim(d) for d in ref]
        return rec
    _detect_all(c)
    _verify(c)
    rec["cands"] = [_slim(d, regions) for d in c.dets]
    # the centre-fringe test of every (loc, center) pair, by candidate index (it needs the map's geometry)
    rec["in_centre"] = {
        (i, j)
        for i, lo in enumerate(c.dets)
        for j, ce in enumerate(c.dets)
        if lo.family == "loc" and ce.family == "center" and _in_centre(c, lo, ce)
    }
    if regions:
        rec["fail"] = np.asarray(c.f, dtype=bool)
    got = [(d.family, d.score) for d in decide(rec, th)]
    want = [(d.family, d.score) for d in ref if d.family not in ("none",)]
    assert got == want, (got, want)
    return rec


def decide(rec: dict, th: Thresholds) -> list[Detection]:
    """The detections ``analyse`` reports for this map under ``th`` (no ``none`` row)."""
    if "fixed" in rec:
        return rec["fixed"]
    cands = rec["cands"]

    def keep(d: Detection) -> bool:
        return "rule_score" not in d.features or d.family == "random" or d.score >= th.accept

    at = {id(d): i for i, d in enumerate(cands)}
    pairs = rec.get("in_centre", set())

    def in_centre(lo: Detection, ce: Detection) -> bool:
        return (at[id(lo)], at[id(ce)]) in pairs

    return report([d for d in cands if keep(d)], [d for d in cands if not keep(d)], rec["fail_ratio"], th, in_centre)


def score(recs: list[dict], th: Thresholds, min_conf: float = MIN_CONFIDENCE) -> dict:
    """``patterns_eval.evaluate``'s figures for one rule over cached maps."""
    fams = tx.FAMILIES
    tp = dict.fromkeys(fams, 0)
    fp = dict.fromkeys(fams, 0)
    fn = dict.fromkeys(fams, 0)
    confs: list[float] = []
    rights: list[int] = []
    loc_ok = sev_ok = hit = 0
    for rec in recs:
        out = []
        for d in decide(rec, th):
            conf = calibration.confidence(d.family, d.score)
            if conf >= min_conf:
                out.append((-conf, d.class_id, d))
        out.sort(key=lambda t: (t[0], t[1]))
        truth = {f: (loc, sev) for f, loc, sev in rec["truth"]}
        pred: dict[str, Detection | None] = {}
        for negc, _, d in out:
            pred.setdefault(d.family, d)
            confs.append(-negc)
            rights.append(int(d.family in truth))
        if not out:
            pred["none"] = None
        tally(fams, pred, truth, tp, fp, fn)
        if len(rec["truth"]) == 1:
            f, loc, sev = rec["truth"][0]
            if f in pred:  # a `none` map read as none counts as location global, severity low (as in make eval)
                hd = pred[f]
                hit += 1
                loc_ok += int((hd.location if hd else "global") == loc)
                sev_ok += int((hd.severity if hd else "low") == sev)
    f1 = {f: v[:3] for f, v in prf(fams, tp, fp, fn).items()}
    return {
        "macro_f1": float(np.mean([v[2] for v in f1.values()])),
        "none": f1["none"],
        "loc": loc_ok / max(hit, 1),
        "sev": sev_ok / max(hit, 1),
        "ece": calibration_error(confs, rights),
        "per": f1,
    }


#: the rules compared: (name, thresholds, minimum calibrated confidence)
def rules() -> list[tuple[str, Thresholds, float]]:
    base = Thresholds()
    out = [
        ("packaged", base, MIN_CONFIDENCE),
        ("fallback 0.1", dataclasses.replace(base, fallback=0.1), MIN_CONFIDENCE),
    ]
    for fb in (0.15, 0.2, 0.25, 0.3, 0.4):
        out.append((f"fallback {fb}", dataclasses.replace(base, fallback=fb), MIN_CONFIDENCE))
    out.append(("fallback off", dataclasses.replace(base, fallback=2.0), MIN_CONFIDENCE))
    for acc in (0.4, 0.6):
        out.append((f"accept {acc}", dataclasses.replace(base, accept=acc), MIN_CONFIDENCE))
        out.append((f"accept {acc}, fallback off", dataclasses.replace(base, accept=acc, fallback=2.0), MIN_CONFIDENCE))
    for mc in (0.1, 0.2, 0.3, 0.4, 0.5):
        out.append((f"min conf {mc}", base, mc))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    co = sub.add_parser("collect")
    co.add_argument("--set", required=True)
    co.add_argument("-n", type=int, default=2000)
    co.add_argument("--seed-offset", type=int, default=500_000)
    co.add_argument("--cache", required=True)
    co.add_argument("--regions", action="store_true", help="keep candidate regions and the fail mask")
    re_ = sub.add_parser("replay")
    re_.add_argument("caches", nargs="+")
    a = ap.parse_args(argv)
    if a.cmd == "collect":
        s0 = SEED0["test"][a.set] + a.seed_offset
        recs = [collect_one(sample(a.set, s0 + i), a.regions) for i in range(a.n)]
        with open(a.cache, "wb") as fh:
            pickle.dump({"set": a.set, "seed0": s0, "recs": recs}, fh)
        return 0
    sets = []
    for path in a.caches:
        with open(path, "rb") as fh:
            sets.append(pickle.load(fh))  # noqa: S301 - caches this tool wrote itself
    names = [f"{s['set']}" for s in sets]
    print(
        f"{'rule':<42}"
        + "".join(f"{n + ' F1':>9}{n + ' none':>9}" for n in names)
        + f"{'ECEmax':>8}{'loc/sev min':>13}"
    )
    for name, th, mc in rules():
        rs = [score(s["recs"], th, mc) for s in sets]
        row = "".join(f"{r['macro_f1']:9.4f}{r['none'][2]:9.3f}" for r in rs)
        ece = max(r["ece"] for r in rs)
        ls = min(min(r["loc"], r["sev"]) for r in rs)
        print(f"{name:<42}{row}{ece:8.3f}{ls:13.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
