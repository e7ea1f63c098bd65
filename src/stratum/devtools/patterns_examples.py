"""Draw one example map per taxonomy class with the dev generator and store them in
``stratum/patterns/examples.json`` (``python -m stratum.devtools.patterns_examples [--missing-only]``;
``--missing-only`` keeps the stored examples and draws the rest).

A class's example is the first generated single-pattern map labelled exactly that class; the classifier
must also report that class for it (so the picture shows what the service calls it)."""

from __future__ import annotations

import json
from pathlib import Path

from stratum.devtools.wafergen import generate, hash_str
from stratum.patterns import examples
from stratum.patterns import taxonomy as tx
from stratum.patterns.service import classify_diemap

Q = {"low": (0.06, 0.17), "med": (0.25, 0.45), "high": (0.6, 1.0)}


def _q(cls: tx.PatternClass) -> tuple[float, float] | None:
    if cls.family in ("none", "random", "near_full", "radial_gradient"):
        return None
    if cls.family == "gross_region":  # severity is the whole wafer's density: a half at 30 % is 'low'
        return {"low": (0.2, 0.36), "med": (0.45, 0.95), "high": (0.95, 1.0)}[cls.severity]
    return Q[cls.severity]


def find(cls: tx.PatternClass, tries: int = 3000):
    fallback = None
    for s in range(tries):
        smp = generate(
            20_000_000 + hash_str(cls.class_id) * 1000 + s,
            family=cls.family,
            diameter=(36, 48),
            n_sites=4 if cls.family == "site_pattern" else None,
            q_range=_q(cls),
        )
        lab = smp.labels[0]
        if (lab.location, lab.severity, lab.refinement) != (cls.location, cls.severity, cls.refinement):
            continue
        got = {p["class_id"] for p in classify_diemap(smp.dies, min_confidence=0.0)["pattern_classes"]}
        if cls.family == "none" and not got:
            return smp, True
        if cls.class_id in got:
            return smp, True
        fallback = fallback or smp
    return fallback, False


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    path = Path(examples.__file__).with_name(examples.FILE)
    out = json.loads(path.read_text()) if "--missing-only" in argv and path.exists() else {}
    missing = []
    unconfirmed = []
    for cls in tx.classes():
        if cls.class_id in out:
            continue
        smp, ok = find(cls)
        if smp is None:
            missing.append(cls.class_id)
            continue
        if not ok:
            unconfirmed.append(cls.class_id)
        out[cls.class_id] = examples.pack(smp.dies)
    out = {k: out[k] for k in sorted(out) if k in tx.by_id()}
    path.write_text(json.dumps(out, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"{len(out)} examples; generator never drew {len(missing)}: {missing}")
    print(f"{len(unconfirmed)} examples not reported as exactly their class by the classifier: {unconfirmed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
