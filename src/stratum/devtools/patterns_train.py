"""Fit the pattern classifier's candidate verifier (``stratum/patterns/verifier.json``) on synthetic maps.

Maps drawn round-robin from several generators (default A, B and C), each from its fitting seed range,
disjoint from the calibration and evaluation seeds. Every rule candidate becomes one example of its
family's tree set: label 1 when its family is on the map where the candidate is (its region overlaps the
labelled region). ``--gens A,B --out DIR`` fits without C into
DIR (a leave-one-generator-out check with ``patterns_eval --models DIR --sets C``).

Collecting the candidates is most of the work; ``--cache cands.npz`` keeps them in a file per generator
(``cands.A.npz``; per family: feature names, matrix, labels, generator and map of each row) and a later run
under the same detector rules refits from the files: a file of more maps is sliced (a generator's first maps
are the same in every run, so ``-n 32000`` on four generators is a subset of ``-n 48000``), one of fewer is
extended. The cache knows ``RULES_VERSION`` only: delete it after changing the detectors or their features
without bumping it. ``--upweight small:2,mix3:2`` counts the candidates of maps under 40 dies across / of
mixtures of 3+ patterns twice (repeated rows: a sample weight).

    python -m stratum.devtools.patterns_train [-n 64000] [--lr 0.3] [--gens A,B,C] [--out DIR] [--cache F]
        [--upweight GROUP:TIMES,...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from stratum.devtools.patterns_data import FIT_GENERATORS, SEED0, sample, use_models
from stratum.patterns import verifier
from stratum.patterns.classifier import RULES_VERSION, candidates

MIN_EXAMPLES = 40

#: per family: feature names, feature matrix (a row per candidate), labels (0/1), generator of each row, and
#: per row the map it came from: (seed index in its generator's fit range, dies across, patterns on the map)
Table = tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]
#: (group of ``GROUPS``, times its rows count) pairs
Upweight = tuple[tuple[str, int], ...]
#: map groups that ``--upweight`` can count more than once (a row per candidate is repeated)
GROUPS = {
    "small": lambda info: info[:, 1] < 40,  # maps under 40 dies across
    "mix3": lambda info: info[:, 2] >= 3,  # mixtures of three or more patterns
    "mix2": lambda info: info[:, 2] >= 2,
}


def collect_gen(gen: str, start: int, stop: int) -> dict[str, Table]:
    """The candidates of generator ``gen``'s fit maps with seed index ``start`` to ``stop - 1``."""
    rows: dict[str, list[tuple[dict[str, float], int, tuple[int, int, int]]]] = defaultdict(list)
    for i in range(start, stop):
        smp = sample(gen, SEED0["fit"][gen] + i)
        dets, feats = candidates(smp.dies)
        info = (i, int(smp.diameter), len(smp.labels))
        for d, x in zip(dets, feats, strict=True):
            hit = any(_matches(d.region, lab) for lab in smp.labels if lab.family == d.family)
            rows[d.family].append((x, int(hit), info))
    tables = {}
    for fam, ex in sorted(rows.items()):
        keys = sorted({k for x, _, _ in ex for k in x})
        X = np.array([[x.get(k, verifier.MISSING) for k in keys] for x, _, _ in ex], dtype=np.float64)
        y = np.array([y for _, y, _ in ex], dtype=np.float64)
        info_ = np.array([i for *_, i in ex], dtype=np.int64).reshape(-1, 3)
        tables[fam] = (keys, X, y, np.full(len(ex), gen), info_)
    return tables


def _concat(parts: list[Table]) -> Table:
    keys = sorted({k for p in parts for k in p[0]})
    Xs = []
    for pk, X, *_ in parts:
        col = {k: j for j, k in enumerate(pk)}
        out = np.full((len(X), len(keys)), verifier.MISSING)
        for j, k in enumerate(keys):
            if k in col:
                out[:, j] = X[:, col[k]]
        Xs.append(out)
    return (
        keys,
        np.concatenate(Xs),
        np.concatenate([p[2] for p in parts]),
        np.concatenate([p[3] for p in parts]),
        np.concatenate([p[4] for p in parts]),
    )


def _merge(tables: list[dict[str, Table]]) -> dict[str, Table]:
    fams = sorted({f for t in tables for f in t})
    return {f: _concat([t[f] for t in tables if f in t]) for f in fams}


def per_gen(n: int, gens: tuple[str, ...]) -> dict[str, int]:
    """Maps of each generator among the first ``n`` of the round-robin (the first seeds of each range)."""
    return {g: len(range(j, n, len(gens))) for j, g in enumerate(gens)}


def select(
    by_gen: dict[str, dict[str, Table]], n: int, gens: tuple[str, ...], upweight: Upweight = ()
) -> dict[str, Table]:
    """The candidates of ``mixed("fit", gens, n)``'s maps, in its order, from per-generator candidates that
    may hold more maps; features no kept row reports are dropped (as a plain collection never sees them).
    ``upweight``: (group, times) pairs; rows of a map in the group are repeated ``times`` times."""
    tables = _merge([by_gen[g] for g in gens])
    pos = {g: j for j, g in enumerate(gens)}
    out = {}
    for fam, (keys, X, y, gen, info) in tables.items():
        i = info[:, 0] * len(gens) + np.array([pos[g] for g in gen], dtype=np.int64)
        order = np.argsort(i, kind="stable")
        order = order[i[order] < n]
        if not len(order):
            continue
        X, y, gen, info = X[order], y[order], gen[order], info[order]
        seen = (X != verifier.MISSING).any(axis=0)
        if upweight:
            times = np.ones(len(y), dtype=np.int64)
            for group, k in upweight:
                times = np.where(GROUPS[group](info), times * k, times)
            X, y, gen, info = (np.repeat(a, times, axis=0) for a in (X, y, gen, info))
        out[fam] = ([k for k, s in zip(keys, seen, strict=True) if s], X[:, seen], y, gen, info)
    return out


def collect(n: int, gens: tuple[str, ...] = FIT_GENERATORS, upweight: Upweight = ()) -> dict[str, Table]:
    return select({g: collect_gen(g, 0, m) for g, m in per_gen(n, gens).items()}, n, gens, upweight)


def cache_file(path: Path, gen: str) -> Path:
    return path.with_name(f"{path.stem}.{gen}{path.suffix or '.npz'}")


def cached(path: Path, n: int, gens: tuple[str, ...], upweight: Upweight = ()) -> dict[str, Table]:
    """``collect(n, gens)``, from a file per generator beside ``path`` (``cands.npz`` -> ``cands.A.npz``):
    the candidates of that generator's first fit maps under these detector rules. A file holding more maps
    is sliced (the first 8,000 maps of a generator are the same in any run); one holding fewer is extended."""
    by_gen = {}
    for g, need in per_gen(n, gens).items():
        f, have, t = cache_file(path, g), 0, {}
        if f.exists():
            with np.load(f, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta["rules"] == RULES_VERSION and meta["generator"] == g:
                    have = int(meta["maps"])
                    t = {
                        fam: (
                            [str(k) for k in z[fam + "/keys"]],
                            z[fam + "/X"],
                            z[fam + "/y"],
                            z[fam + "/gen"],
                            z[fam + "/info"],
                        )
                        for fam in (str(x) for x in z["families"])
                    }
        if have < need:
            t = _merge([t, collect_gen(g, have, need)]) if t else collect_gen(g, 0, need)
            have = need
            arrays: dict[str, Any] = {
                "meta": np.array(json.dumps({"generator": g, "maps": have, "rules": RULES_VERSION}, sort_keys=True)),
                "families": np.array(sorted(t)),
            }
            for fam, (keys, X, y, gg, info) in t.items():
                arrays |= {
                    fam + "/keys": np.array(keys),
                    fam + "/X": X,
                    fam + "/y": y,
                    fam + "/gen": gg,
                    fam + "/info": info,
                }
            f.parent.mkdir(parents=True, exist_ok=True)
            part = f.with_name(f.name + ".part")  # a run reading the file meanwhile sees the old or the new
            with part.open("wb") as fh:
                np.savez(fh, allow_pickle=False, **arrays)
            part.replace(f)
        by_gen[g] = t
    return select(by_gen, n, gens, upweight)


def _matches(region: np.ndarray, lab) -> bool:
    """A candidate is a positive example when its family is on the map *where the candidate is*: a quarter of
    the candidate's dies, or of the labelled region, lie in the other (a noise cluster beside a real blob of
    the same family is a negative)."""
    inter = int(np.count_nonzero(region & lab.region))
    return inter >= 0.25 * min(int(region.sum()), int(lab.region.sum())) and inter > 0


def fit(
    tables: dict[str, Table], n: int, rounds: int, gens: tuple[str, ...], lr: float = 0.3, upweight: Upweight = ()
) -> dict:
    fams = {}
    for fam in sorted(tables):
        keys, X, ys = tables[fam][:3]
        if len(ys) < MIN_EXAMPLES or ys.min() == ys.max():
            continue
        fams[fam] = verifier.fit(X, ys, keys, rounds=rounds, lr=lr)
        fams[fam]["n"] = len(ys)
        fams[fam]["positives"] = int(ys.sum())
    seeds = {g: SEED0["fit"][g] for g in gens}
    fitted_on: dict[str, Any] = {"generators": list(gens), "seed0": seeds, "maps": n, "rounds": rounds, "lr": lr}
    if upweight:
        fitted_on["upweight"] = dict(upweight)
    body = {"families": fams, "fitted_on": fitted_on}
    version = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    return {"version": version, **body}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=64000, help="fitting maps, round-robin over --gens (packaged: 64000)")
    ap.add_argument("--rounds", type=int, default=150)
    ap.add_argument("--lr", type=float, default=0.3, help="boosting learning rate (shrinkage per tree)")
    ap.add_argument("--gens", default=",".join(FIT_GENERATORS), help="generators to fit on, e.g. A,B")
    ap.add_argument("--out", help="folder to write verifier.json to (default: the package's)")
    ap.add_argument("--cache", help=".npz path; the candidates are kept per generator beside it and reused")
    ap.add_argument(
        "--upweight",
        default="",
        help=f"count the candidates of some maps more than once, e.g. small:2,mix3:2 (groups: {', '.join(GROUPS)})",
    )
    a = ap.parse_args(argv)
    gens = tuple(a.gens.split(","))
    up = tuple((g, int(k)) for g, k in (w.split(":") for w in a.upweight.split(",") if w))
    if any(g not in GROUPS or k < 1 for g, k in up):
        ap.error(f"--upweight: GROUP:TIMES with a group of {', '.join(GROUPS)} and TIMES >= 1")
    if a.out:
        use_models(a.out)  # a calibration already there is irrelevant to fitting; keeps one code path
    rows = cached(Path(a.cache), a.n, gens, up) if a.cache else collect(a.n, gens, up)
    out = Path(a.out) / verifier.FILE if a.out else Path(verifier.__file__).with_name(verifier.FILE)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(fit(rows, a.n, a.rounds, gens, a.lr, up), separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {out.name}: " + ", ".join(f"{f} {len(v[2])}" for f, v in sorted(rows.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
