"""Fit the pattern classifier's candidate verifier (``stratum/patterns/verifier.json``) on synthetic maps.

Profile A of the dev generator, fitting seeds disjoint from the calibration and evaluation seeds. Every
rule candidate becomes one example of its family's tree set: label 1 when its family is on the map.

    python -m stratum.devtools.patterns_train [-n 8000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from stratum.devtools.wafergen import generate
from stratum.patterns import verifier
from stratum.patterns.classifier import candidates

FIT_SEED0 = 2_000_000
MIN_EXAMPLES = 40


def collect(n: int, seed0: int = FIT_SEED0) -> dict[str, list[tuple[dict[str, float], int]]]:
    rows: dict[str, list[tuple[dict[str, float], int]]] = defaultdict(list)
    for i in range(n):
        smp = generate(seed0 + i, profile="A")
        dets, feats = candidates(smp.dies)
        for d, x in zip(dets, feats, strict=True):
            rows[d.family].append((x, int(d.family in smp.families)))
    return rows


def fit(rows: dict[str, list[tuple[dict[str, float], int]]], n: int, rounds: int) -> dict:
    fams = {}
    for fam in sorted(rows):
        ex = rows[fam]
        ys = np.array([y for _, y in ex], dtype=np.float64)
        if len(ex) < MIN_EXAMPLES or ys.min() == ys.max():
            continue
        keys = sorted({k for x, _ in ex for k in x})
        X = np.array([[x.get(k, verifier.MISSING) for k in keys] for x, _ in ex], dtype=np.float64)
        fams[fam] = verifier.fit(X, ys, keys, rounds=rounds)
        fams[fam]["n"] = len(ex)
        fams[fam]["positives"] = int(ys.sum())
    body = {"families": fams, "fitted_on": {"profile": "A", "seed0": FIT_SEED0, "maps": n, "rounds": rounds}}
    version = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    return {"version": version, **body}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=8000)
    ap.add_argument("--rounds", type=int, default=150)
    a = ap.parse_args(argv)
    rows = collect(a.n)
    out = Path(verifier.__file__).with_name(verifier.FILE)
    out.write_text(json.dumps(fit(rows, a.n, a.rounds), separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {out.name}: " + ", ".join(f"{f} {len(v)}" for f, v in sorted(rows.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
