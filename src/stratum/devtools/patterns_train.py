"""Fit the pattern classifier's candidate verifier (``stratum/patterns/verifier.json``) on synthetic maps.

Maps drawn round-robin from several generators (default A, B and C), each from its fitting seed range,
disjoint from the calibration and evaluation seeds. Every rule candidate becomes one example of its
family's tree set: label 1 when its family is on the map where the candidate is (its region overlaps the
labelled region). ``--gens A,B --out DIR`` fits without C into
DIR (a leave-one-generator-out check with ``patterns_eval --models DIR --sets C``).

Collecting the candidates is most of the work; ``--cache FILE.npz`` keeps them (per family: feature names,
matrix, labels, generator of each row) and a later run with the same maps, generators and detector rules
refits from the file. The cache knows ``RULES_VERSION`` only: delete it
after changing the detectors or their features without bumping it.

    python -m stratum.devtools.patterns_train [-n 24000] [--lr 0.3] [--gens A,B,C] [--out DIR] [--cache F]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from stratum.devtools.patterns_data import FIT_GENERATORS, SEED0, mixed, use_models
from stratum.patterns import verifier
from stratum.patterns.classifier import RULES_VERSION, candidates

MIN_EXAMPLES = 40

#: per family: feature names, feature matrix (a row per candidate), labels (0/1), generator of each row
Table = tuple[list[str], np.ndarray, np.ndarray, np.ndarray]


def collect(n: int, gens: tuple[str, ...] = FIT_GENERATORS) -> dict[str, Table]:
    rows: dict[str, list[tuple[dict[str, float], int, str]]] = defaultdict(list)
    for gen, smp in mixed("fit", gens, n):
        dets, feats = candidates(smp.dies)
        for d, x in zip(dets, feats, strict=True):
            hit = any(_matches(d.region, lab) for lab in smp.labels if lab.family == d.family)
            rows[d.family].append((x, int(hit), gen))
    tables = {}
    for fam, ex in sorted(rows.items()):
        keys = sorted({k for x, _, _ in ex for k in x})
        X = np.array([[x.get(k, verifier.MISSING) for k in keys] for x, _, _ in ex], dtype=np.float64)
        tables[fam] = (keys, X, np.array([y for _, y, _ in ex], dtype=np.float64), np.array([g for *_, g in ex]))
    return tables


def cached(path: Path, n: int, gens: tuple[str, ...]) -> dict[str, Table]:
    """``collect(n, gens)``, from ``path`` when it holds the same maps under the same rules, else collected
    and saved there."""
    meta = json.dumps({"maps": n, "generators": list(gens), "rules": RULES_VERSION}, sort_keys=True)
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            if str(z["meta"]) == meta:
                fams = [str(f) for f in z["families"]]
                return {f: ([str(k) for k in z[f + "/keys"]], z[f + "/X"], z[f + "/y"], z[f + "/gen"]) for f in fams}
    tables = collect(n, gens)
    arrays: dict[str, Any] = {"meta": np.array(meta), "families": np.array(sorted(tables))}
    for f, (keys, X, y, g) in tables.items():
        arrays |= {f + "/keys": np.array(keys), f + "/X": X, f + "/y": y, f + "/gen": g}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        np.savez(fh, allow_pickle=False, **arrays)
    return tables


def _matches(region: np.ndarray, lab) -> bool:
    """A candidate is a positive example when its family is on the map *where the candidate is*: a quarter of
    the candidate's dies, or of the labelled region, lie in the other (a noise cluster beside a real blob of
    the same family is a negative)."""
    inter = int(np.count_nonzero(region & lab.region))
    return inter >= 0.25 * min(int(region.sum()), int(lab.region.sum())) and inter > 0


def fit(tables: dict[str, Table], n: int, rounds: int, gens: tuple[str, ...], lr: float = 0.3) -> dict:
    fams = {}
    for fam in sorted(tables):
        keys, X, ys, _ = tables[fam]
        if len(ys) < MIN_EXAMPLES or ys.min() == ys.max():
            continue
        fams[fam] = verifier.fit(X, ys, keys, rounds=rounds, lr=lr)
        fams[fam]["n"] = len(ys)
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
    ap.add_argument("--cache", help=".npz file keeping the collected candidates (reused when it matches)")
    a = ap.parse_args(argv)
    gens = tuple(a.gens.split(","))
    if a.out:
        use_models(a.out)  # a calibration already there is irrelevant to fitting; keeps one code path
    rows = cached(Path(a.cache), a.n, gens) if a.cache else collect(a.n, gens)
    out = Path(a.out) / verifier.FILE if a.out else Path(verifier.__file__).with_name(verifier.FILE)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fit(rows, a.n, a.rounds, gens, a.lr), separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {out.name}: " + ", ".join(f"{f} {len(v[2])}" for f, v in sorted(rows.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
