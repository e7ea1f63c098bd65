"""Same-output check and CPU timing for speed work on the pattern classifier.

``hash``: classifies maps of every eval generator's test set (A-E) (20-300 dies across, mixed, 1-16 sites) and
fixed 50-die-wide maps, and prints a sha256 per set of the full classify JSON (every field) and of the
verifier's candidate features. ``--save FILE`` keeps each map's digests; ``--against FILE`` names the maps
whose output changed. ``time``: median CPU seconds per map over repeated passes of fixed map sets.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

from stratum.devtools.patterns_data import GENERATORS, SEED0, sample
from stratum.devtools.wafergen import generate
from stratum.patterns.classifier import candidates
from stratum.patterns.geometry import DieMap
from stratum.patterns.service import classify_diemap

#: the 50-die-wide maps of ``make eval``'s throughput figure
W50_SEED0 = 9_000_000


def maps(name: str, n: int) -> list[tuple[int, DieMap]]:
    if name in GENERATORS:
        s0 = SEED0["test"][name]
        return [(s0 + i, sample(name, s0 + i).dies) for i in range(n)]
    if name == "W50":
        return [(W50_SEED0 + i, generate(W50_SEED0 + i, diameter=50).dies) for i in range(n)]
    raise ValueError(f"unknown map set {name!r} ({', '.join(GENERATORS)} or W50)")


def digests(dm: DieMap) -> tuple[str, str]:
    """(classify JSON, candidate features) of one map, each as a sha256 hex digest."""
    out = json.dumps(classify_diemap(dm, wafer_id="W"), sort_keys=True)
    dets, feats = candidates(dm)
    cand = json.dumps(
        [[d.family, d.source, d.score, repr(sorted(f.items()))] for d, f in zip(dets, feats, strict=True)],
        sort_keys=True,
    )
    return hashlib.sha256(out.encode()).hexdigest(), hashlib.sha256(cand.encode()).hexdigest()


def run_hash(sets: dict[str, int], save: str | None, against: str | None) -> int:
    per_map: dict[str, list[str]] = {}
    for name, n in sets.items():
        hj, hc = hashlib.sha256(), hashlib.sha256()
        for seed, dm in maps(name, n):
            dj, dc = digests(dm)
            per_map[f"{name}:{seed}"] = [dj, dc]
            hj.update(dj.encode())
            hc.update(dc.encode())
        print(f"{name:>4} {n:5d} maps  classify {hj.hexdigest()[:16]}  candidates {hc.hexdigest()[:16]}")
    if save:
        Path(save).write_text(json.dumps(per_map, indent=0))
    if against:
        ref = json.loads(Path(against).read_text())
        diff = [k for k, v in per_map.items() if k in ref and ref[k] != v]
        missing = [k for k in per_map if k not in ref]
        for k in diff[:20]:
            pairs = zip(("classify", "candidates"), ref[k], per_map[k], strict=True)
            what = " and ".join(w for w, a, b in pairs if a != b)
            print(f"changed {k}: {what}")
        same = len(per_map) - len(diff) - len(missing)
        print(f"{same} identical, {len(diff)} changed, {len(missing)} not in reference")
        return 1 if diff else 0
    return 0


def run_time(name: str, n: int, repeats: int) -> None:
    ms = [dm for _, dm in maps(name, n)]
    classify_diemap(ms[0])  # one-off loading out of the figure
    per = []
    for _ in range(repeats):
        c0 = time.process_time()
        for dm in ms:
            classify_diemap(dm)
        per.append((time.process_time() - c0) / n)
    print(
        f"{name} {n} maps x {repeats}: median {statistics.median(per) * 1e3:.3f} ms CPU per map "
        f"(min {min(per) * 1e3:.3f}, max {max(per) * 1e3:.3f})"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hash", help="digests of the classifier's output")
    h.add_argument("--a", type=int, default=450, help="maps of set A")
    h.add_argument("--b", type=int, default=0, help="maps of set B")
    h.add_argument("--c", type=int, default=450, help="maps of set C")
    h.add_argument("--d", type=int, default=0, help="maps of set D")
    h.add_argument("--e", type=int, default=0, help="maps of set E")
    h.add_argument("--w50", type=int, default=100, help="50-die-wide maps")
    h.add_argument("--save", help="write each map's digests to this JSON file")
    h.add_argument("--against", help="compare each map's digests with this file (exit 1 on a change)")
    t = sub.add_parser("time", help="median CPU seconds per map")
    t.add_argument("--set", default="W50", choices=(*GENERATORS, "W50"))
    t.add_argument("-n", type=int, default=200)
    t.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    if a.cmd == "hash":
        sets = {"A": a.a, "B": a.b, "C": a.c, "D": a.d, "E": a.e, "W50": a.w50}
        return run_hash({k: n for k, n in sets.items() if n}, a.save, a.against)
    run_time(a.set, a.n, a.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
