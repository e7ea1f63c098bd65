"""``make eval``: the pattern classifier on held-out synthetic maps.

Five test sets (``patterns_data.GENERATORS``), seeds disjoint from every fitting and calibration range:
profile A of the dev generator, profile B (a deliberately different parameterisation of it) and C, D and E,
independent generators each written from the taxonomy's definitions only (``wafergen_c``/``_d``/``_e``; E is
never fitted). ``--models DIR`` evaluates the whole-map model (dev tool) / verifier / calibration files in DIR
instead of the packaged ones (e.g. fitted without C: a held-out figure). Prints per-family
precision/recall/F1, macro-F1, location and severity accuracy on single-pattern maps, a family confusion
matrix, expected calibration error and maps/s (single core, 50-die-wide maps).
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from stratum.devtools.patterns_data import GENERATORS, SEED0, sample, use_models
from stratum.devtools.wafergen import generate
from stratum.patterns import taxonomy as tx
from stratum.patterns.service import classify_diemap

TEST_SEED0 = SEED0["test"]
SET_NAMES = {
    "A": "held-out seeds, profile A",
    "B": "different parameterisation, profile B",
    "C": "independent generator C",
    "D": "independent generator D",
    "E": "independent generator E",
}


def evaluate(profile: str, n: int, seed0: int | None = None) -> dict:
    seed0 = TEST_SEED0[profile] if seed0 is None else seed0
    fams = tx.FAMILIES
    tp = dict.fromkeys(fams, 0)
    fp = dict.fromkeys(fams, 0)
    fn = dict.fromkeys(fams, 0)
    conf = np.zeros((len(fams), len(fams) + 1), dtype=int)  # last column: nothing reported
    loc_ok = sev_ok = single_hit = singles = 0
    confs: list[float] = []
    rights: list[int] = []
    exact = 0
    errors: list[tuple[int, str, str, float]] = []  # single-pattern misses: seed, truth, top, visibility
    faint = [[0, 0], [0, 0]]  # [faint, clear] x [missed, found] over every labelled local pattern
    for i in range(n):
        smp = sample(profile, seed0 + i)
        res = classify_diemap(smp.dies)
        pred: dict[str, dict] = {}
        for p in res["pattern_classes"]:
            pred.setdefault(p["family"], p)
            confs.append(p["confidence"])
            rights.append(int(p["family"] in smp.families))
        if not res["pattern_classes"]:
            pred["none"] = {"family": "none", "location": "global", "severity": "low"}
        truth = smp.families
        exact += int(set(pred) == set(truth))
        for lab, z in zip(smp.labels, visibility(smp), strict=True):
            if math.isfinite(z):
                faint[0 if z < FAINT_Z else 1][int(lab.family in pred)] += 1
        tally(fams, pred, truth, tp, fp, fn)
        if len(smp.labels) == 1:
            lab = smp.labels[0]
            singles += 1
            top = res["pattern_classes"][0]["family"] if res["pattern_classes"] else "none"
            conf[fams.index(lab.family), fams.index(top)] += 1
            if top != lab.family:
                errors.append((seed0 + i, lab.family, top, visibility(smp)[0]))
            if lab.family in pred:
                single_hit += 1
                loc_ok += int(pred[lab.family]["location"] == lab.location)
                sev_ok += int(pred[lab.family]["severity"] == lab.severity)
    per = prf(fams, tp, fp, fn)
    return {
        "per": per,
        "macro_f1": float(np.mean([v[2] for v in per.values()])),
        "loc_acc": loc_ok / max(single_hit, 1),
        "sev_acc": sev_ok / max(single_hit, 1),
        "single_recall": single_hit / max(singles, 1),
        "exact_set": exact / n,
        "confusion": conf,
        "ece": calibration_error(confs, rights),
        "n": n,
        "errors": errors,
        "faint": faint,
    }


def tally(fams, pred, truth, tp: dict, fp: dict, fn: dict) -> None:
    """Count one map's reported families (``pred``) against its labelled ones (``truth``) per family."""
    for f in fams:
        if f in pred and f in truth:
            tp[f] += 1
        elif f in pred:
            fp[f] += 1
        elif f in truth:
            fn[f] += 1


def prf(fams, tp: dict, fp: dict, fn: dict) -> dict[str, tuple[float, float, float, int]]:
    """Per family: precision, recall, F1 and support (0.0 where undefined)."""
    per = {}
    for f in fams:
        p = tp[f] / (tp[f] + fp[f]) if tp[f] + fp[f] else 0.0
        r = tp[f] / (tp[f] + fn[f]) if tp[f] + fn[f] else 0.0
        per[f] = (p, r, 2 * p * r / (p + r) if p + r else 0.0, tp[f] + fn[f])
    return per


def calibration_error(confs: list[float], rights: list[int]) -> float:
    """Expected calibration error over 10 equal-width confidence bins."""
    c = np.array(confs)
    y = np.array(rights)
    ece = 0.0
    for b in range(10):
        m = (c >= b / 10) & ((c < (b + 1) / 10) if b < 9 else (c <= 1.0))
        if m.any():
            ece += m.sum() / len(c) * abs(c[m].mean() - y[m].mean())
    return float(ece)


#: a pattern region whose fails stand less than this many standard errors above the rest of the map is faint
FAINT_Z = 5.0


def visibility(smp) -> list[float]:
    """Per label: z of the region's fails against the fail rate outside every labelled region (NaN for a
    whole-wafer region). Separates misses of faint patterns (label ambiguity) from classifier failures."""
    union = np.zeros(len(smp.dies.fail), dtype=bool)
    for lab in smp.labels:
        union |= lab.region
    f = np.asarray(smp.dies.fail, dtype=bool)
    p = min(max(float(f[~union].mean()) if (~union).any() else 0.0, 0.01), 0.99)
    out = []
    for lab in smp.labels:
        n = int(lab.region.sum())
        if n == len(f) or n == 0:
            out.append(float("nan"))
        else:
            out.append((float(f[lab.region].sum()) - n * p) / math.sqrt(n * p * (1 - p)))
    return out


def throughput(n: int = 300, diameter: int = 50) -> tuple[float, float]:
    """(maps per CPU second of this process, maps per wall second): one thread, so CPU seconds are one
    core's; the wall figure also counts time other processes took from this core."""
    maps = [generate(9_000_000 + i, diameter=diameter).dies for i in range(n)]
    classify_diemap(maps[0])  # one-off loading (calibration tables) out of the figure
    c0, t0 = time.process_time(), time.perf_counter()
    for dm in maps:
        classify_diemap(dm)
    return n / (time.process_time() - c0), n / (time.perf_counter() - t0)


def report(name: str, r: dict, out=sys.stdout) -> None:
    w = out.write
    w(f"\n== {name}: {r['n']} maps ==\n")
    w(f"{'family':<16}{'prec':>7}{'recall':>8}{'F1':>7}{'support':>9}\n")
    for f, (p, rc, f1, s) in r["per"].items():
        w(f"{f:<16}{p:7.3f}{rc:8.3f}{f1:7.3f}{s:9d}\n")
    w(f"family macro-F1: {r['macro_f1']:.4f}\n")
    w(f"exact family set: {r['exact_set']:.4f}\n")
    w(
        f"single-pattern maps: family recall {r['single_recall']:.4f}, location accuracy {r['loc_acc']:.4f}, "
        f"severity accuracy {r['sev_acc']:.4f} (on maps whose family was found)\n"
    )
    w(f"ECE (10 bins, family correctness): {r['ece']:.4f}\n")
    (fm, ff), (cm, cf) = r["faint"]
    w(
        f"local patterns found: {cf}/{cf + cm} clear (region z >= {FAINT_Z:.0f} over the rest of the map), "
        f"{ff}/{ff + fm} faint\n"
    )
    ab = [
        "none",
        "rand",
        "cent",
        "donu",
        "ering",
        "eloc",
        "loc",
        "scr",
        "nfull",
        "gross",
        "grad",
        "row",
        "col",
        "retic",
        "site",
        "(no)",
    ]
    w("confusion (rows: true family of single-pattern maps; cols: top reported family)\n")
    w(" " * 7 + "".join(f"{a:>6}" for a in ab) + "\n")
    for i, row in enumerate(r["confusion"]):
        w(f"{ab[i]:>7}" + "".join(f"{v:6d}" for v in row) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=1500, help="maps per test set")
    ap.add_argument("--speed-maps", type=int, default=300)
    ap.add_argument("--sets", default=",".join(GENERATORS), help="test sets, e.g. A,B,C")
    ap.add_argument("--models", help="folder with globalmodel.json / verifier.json / calibration.json to use instead")
    ap.add_argument("--errors", action="store_true", help="list the misclassified single-pattern maps")
    ap.add_argument(
        "--seed-offset",
        type=int,
        default=0,
        help="start each set this far into its test seed range (500000: the dev seeds for tuning)",
    )
    a = ap.parse_args(argv)
    unknown = sorted(set(a.sets.split(",")) - set(GENERATORS))
    if unknown:
        ap.error(f"--sets: unknown test set {', '.join(unknown)} (choose from {', '.join(GENERATORS)})")
    if a.models:
        use_models(a.models)
    for prof in a.sets.split(","):
        r = evaluate(prof, a.n, TEST_SEED0[prof] + a.seed_offset)
        report(SET_NAMES[prof] + (f" (seeds +{a.seed_offset})" if a.seed_offset else ""), r)
        if a.errors:
            for seed, truth, top, vis in r["errors"]:
                print(f"  miss seed {seed}: {truth} -> {top} (visibility z {vis:.1f})")
    if a.speed_maps <= 0:
        return 0
    cpu, wall = throughput(a.speed_maps)
    print(
        f"\nthroughput (50 dies across, classify incl. calibration): {cpu:.0f} maps per CPU-second on one core "
        f"({wall:.0f} maps/s wall clock on this machine now)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
