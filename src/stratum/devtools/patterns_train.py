"""Fit the pattern classifier's candidate verifier (``stratum/patterns/verifier.json``) on synthetic maps.

Maps drawn round-robin from several generators (default A, B and C), each from its fitting seed range,
disjoint from the calibration and evaluation seeds. Every rule candidate becomes one example of its
family's tree set: label 1 when its family is on the map where the candidate is (its region overlaps the
labelled region). ``--gens A,B --out DIR`` fits without C into
DIR (a leave-one-generator-out check with ``patterns_eval --models DIR --sets C``).

    python -m stratum.devtools.patterns_train [-n 24000] [--lr 0.3] [--gens A,B,C] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from stratum.devtools.patterns_data import FIT_GENERATORS, SEED0, mixed, use_models
from stratum.patterns import verifier
from stratum.patterns.classifier import candidates

MIN_EXAMPLES = 40


def collect(n: int, gens: tuple[str, ...] = FIT_GENERATORS) -> dict[str, list[tuple[dict[str, float], int]]]:
    rows: dict[str, list[tuple[dict[str, float], int]]] = defaultdict(list)
    for _, smp in mixed("fit", gens, n):
        dets, feats = candidates(smp.dies)
        for d, x in zip(dets, feats, strict=True):
            hit = any(_matches(d.region, lab) for lab in smp.labels if lab.family == d.family)
            rows[d.family].append((x, int(hit)))
    return rows


def _matches(region: np.ndarray, lab) -> bool:
    """A candidate is a positive example when its family is on the map *where the candidate is*: a quarter of
    the candidate's dies, or of the labelled region, lie in the other (a noise cluster beside a real blob of
    the same family is a negative)."""
    inter = int(np.count_nonzero(region & lab.region))
    return inter >= 0.25 * min(int(region.sum()), int(lab.region.sum())) and inter > 0


def fit(
    rows: dict[str, list[tuple[dict[str, float], int]]], n: int, rounds: int, gens: tuple[str, ...], lr: float = 0.3
) -> dict:
    fams = {}
    for fam in sorted(rows):
        ex = rows[fam]
        ys = np.array([y for _, y in ex], dtype=np.float64)
        if len(ex) < MIN_EXAMPLES or ys.min() == ys.max():
            continue
        keys = sorted({k for x, _ in ex for k in x})
        X = np.array([[x.get(k, verifier.MISSING) for k in keys] for x, _ in ex], dtype=np.float64)
        fams[fam] = verifier.fit(X, ys, keys, rounds=rounds, lr=lr)
        fams[fam]["n"] = len(ex)
        fams[fam]["positives"] = int(ys.sum())
    seeds = {g: SEED0["fit"][g] for g in gens}
    body = {
        "families": fams,
        "fitted_on": {"generators": list(gens), "seed0": seeds, "maps": n, "rounds": rounds, "lr": lr},
    }
    version = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    return {"version": version, **body}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=24000)
    ap.add_argument("--rounds", type=int, default=150)
    ap.add_argument("--lr", type=float, default=0.3, help="boosting learning rate (shrinkage per tree)")
    ap.add_argument("--gens", default=",".join(FIT_GENERATORS), help="generators to fit on, e.g. A,B")
    ap.add_argument("--out", help="folder to write verifier.json to (default: the package's)")
    a = ap.parse_args(argv)
    gens = tuple(a.gens.split(","))
    if a.out:
        use_models(a.out)  # a calibration already there is irrelevant to fitting; keeps one code path
    rows = collect(a.n, gens)
    out = Path(a.out) / verifier.FILE if a.out else Path(verifier.__file__).with_name(verifier.FILE)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fit(rows, a.n, a.rounds, gens, a.lr), separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {out.name}: " + ", ".join(f"{f} {len(v)}" for f, v in sorted(rows.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
