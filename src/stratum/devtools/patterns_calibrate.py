"""Fit the confidence calibration of the pattern classifier on synthetic maps (round-robin from the
generators, default A, B and C, calibration seeds disjoint from the fitting and evaluation seeds) and write
``stratum/patterns/calibration.json``. ``--gens A,B --out DIR`` calibrates the verifier in DIR without C.

    python -m stratum.devtools.patterns_calibrate [-n 3000] [--gens A,B,C] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from stratum.devtools.patterns_data import FIT_GENERATORS, SEED0, mixed, use_models
from stratum.patterns import calibration
from stratum.patterns import taxonomy as tx
from stratum.patterns.classifier import analyse


def fit(n: int, gens: tuple[str, ...] = FIT_GENERATORS) -> dict:
    scores: dict[str, list[tuple[float, int]]] = defaultdict(list)
    levels: dict[str, dict[str, dict[str, list[int]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for _, smp in mixed("cal", gens, n):
        dets, _ = analyse(smp.dies)
        truth = {lab.family: lab for lab in smp.labels}
        for d in dets:
            if d.family == "none":
                continue
            ok = int(d.family in truth)
            scores[d.family].append((d.score, ok))
            if ok and len(smp.labels) == 1:
                lab = truth[d.family]
                levels[d.family]["location"][d.location].append(int(lab.location == d.location))
                levels[d.family]["severity"][d.severity].append(int(lab.severity == d.severity))
    fams: dict[str, dict] = {}
    for fam in tx.FAMILIES:
        pts = scores.get(fam)
        if not pts or len(pts) < 5:
            continue
        x = np.array([p[0] for p in pts])
        y = np.array([p[1] for p in pts], dtype=float)
        # shrink towards the family's base rate so tiny blocks do not claim 0 or 1
        kx, ky = calibration.pav(x, y)
        base = float(y.mean())
        cnt = np.interp(kx, x[np.argsort(x)], np.arange(len(x)))  # rough
        del cnt
        ky = [round(0.9 * v + 0.1 * base, 4) for v in ky]
        fams[fam] = {"x": [round(v, 6) for v in kx], "y": ky, "n": len(pts)}
    lv: dict[str, dict[str, dict[str, float]]] = {}
    for fam, lvl in levels.items():
        lv[fam] = {}
        for level, vals in lvl.items():
            allv = [v for vs in vals.values() for v in vs]
            lv[fam][level] = {k: round(sum(v) / len(v), 4) for k, v in sorted(vals.items()) if len(v) >= 5}
            lv[fam][level]["*"] = round(sum(allv) / len(allv), 4)
    seeds = {g: SEED0["cal"][g] for g in gens}
    body = {"families": fams, "levels": lv, "fitted_on": {"generators": list(gens), "seed0": seeds, "maps": n}}
    version = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    return {"version": version, **body}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=4000, help="calibration maps, round-robin over --gens (packaged: 4000)")
    ap.add_argument("--gens", default=",".join(FIT_GENERATORS), help="generators to calibrate on, e.g. A,B")
    ap.add_argument("--out", help="folder with the verifier.json to calibrate, and to write calibration.json to")
    a = ap.parse_args(argv)
    if a.out:
        use_models(a.out)
    out = Path(a.out) / calibration.FILE if a.out else Path(calibration.__file__).with_name(calibration.FILE)
    out.write_text(json.dumps(fit(a.n, tuple(a.gens.split(","))), indent=1, sort_keys=True) + "\n")
    print(f"wrote {out.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
