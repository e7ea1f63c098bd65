"""Fit the pattern classifier's whole-map model (``stratum/devtools/patterns_global.json``) on synthetic maps.

Maps drawn round-robin from several generators (default ``FIT_GENERATORS``), each from its own whole-map seed range,
disjoint from the verifier's fitting seeds (the verifier learns from the model's probabilities on maps the
model never saw, so it learns how far to trust them), from the calibration and from the evaluation seeds.
One example per map, one tree set per family: label 1 when the family is on the map. Fit this before
``patterns_train``; ``--gens A,B --out DIR`` fits without C into DIR (then ``patterns_train --out DIR``).

    python -m stratum.devtools.patterns_globaltrain [-n MAPS] [--gens A,B,C] [--out DIR]

``-n`` defaults to ``PER_GENERATOR`` maps per generator fitted on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from stratum.devtools import patterns_global as globalmodel
from stratum.devtools.patterns_data import FIT_GENERATORS, SEED0, mixed
from stratum.patterns import verifier
from stratum.patterns.geometry import geometry

ROUNDS = 50
PER_GENERATOR = 3400
LR = 0.16  # fewer, larger steps than the verifier's: the model runs once per map, inside its time budget


def collect(n: int, gens: tuple[str, ...] = FIT_GENERATORS) -> tuple[list[dict[str, float]], list[frozenset[str]]]:
    xs, ys = [], []
    for _, smp in mixed("global", gens, n):
        f = np.asarray(smp.dies.fail, dtype=bool)
        xs.append(globalmodel.features(geometry(smp.dies), f))
        ys.append(frozenset(smp.families))
    return xs, ys


def fit(xs: list[dict[str, float]], ys: list[frozenset[str]], n: int, rounds: int, gens: tuple[str, ...]) -> dict:
    keys = sorted(xs[0])
    X = np.array([[x[k] for k in keys] for x in xs], dtype=np.float64)
    fams = {}
    q = 2.0**globalmodel.QUANT
    for fam in globalmodel.FAMILIES:
        y = np.array([float(fam in s) for s in ys])
        if y.min() == y.max():
            continue
        t = verifier.fit(X, y, keys, rounds=rounds, lr=LR)
        t["leaf"] = [[round(v * q) / q for v in tree] for tree in t["leaf"]]  # exact sums at run time
        t["base"] = round(t["base"] * q) / q
        t["positives"] = int(y.sum())
        fams[fam] = t
    seeds = {g: SEED0["global"][g] for g in gens}
    body = {"families": fams, "fitted_on": {"generators": list(gens), "seed0": seeds, "maps": n, "rounds": rounds}}
    version = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    return {"version": version, **body}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, help=f"maps (default {PER_GENERATOR} per generator)")
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--gens", default=",".join(FIT_GENERATORS), help="generators to fit on, e.g. A,B")
    ap.add_argument("--out", help="folder to write patterns_global.json to (default: the package's)")
    a = ap.parse_args(argv)
    gens = tuple(a.gens.split(","))
    n = a.n or PER_GENERATOR * len(gens)
    xs, ys = collect(n, gens)
    out = Path(a.out) / globalmodel.FILE if a.out else Path(globalmodel.__file__).with_name(globalmodel.FILE)
    out.parent.mkdir(parents=True, exist_ok=True)
    spec = fit(xs, ys, n, a.rounds, gens)
    out.write_text(json.dumps(spec, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {out.name}: {len(spec['families'])} families from {n} maps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
