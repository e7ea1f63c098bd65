"""The labelled-map sources of the pattern classifier's dev tools (fitting, calibration, evaluation) and
their seed ranges, kept disjoint across purposes so no test map was ever fitted or calibrated on.

Generators: ``A`` and ``B`` are the two parameterisations of ``wafergen``; ``C`` is ``wafergen_c``, an
independent generator written from the taxonomy's generator spec and labelling rules only.
"""

from __future__ import annotations

import json
from pathlib import Path

from stratum.devtools import patterns_global as globalmodel
from stratum.devtools import wafergen, wafergen_c
from stratum.patterns import calibration, verifier

GENERATORS: tuple[str, ...] = ("A", "B", "C")
#: first seed of each (purpose, generator); every range is used for at most 1,000,000 maps
SEED0: dict[str, dict[str, int]] = {
    "fit": {"A": 2_000_000, "B": 3_000_000, "C": 12_000_000},
    "cal": {"A": 1_000_000, "B": 4_000_000, "C": 13_000_000},
    "test": {"A": 5_000_000, "B": 7_000_000, "C": 11_000_000},
    "global": {"A": 6_000_000, "B": 8_000_000, "C": 14_000_000},  # the whole-map model's fitting
}


def sample(gen: str, seed: int) -> wafergen.Sample:
    if gen == "C":
        return wafergen_c.generate(seed)
    return wafergen.generate(seed, profile=gen)


def mixed(purpose: str, gens: tuple[str, ...], n: int):
    """``n`` maps for ``purpose`` drawn round-robin from ``gens`` (each from its own seed range)."""
    for i in range(n):
        g = gens[i % len(gens)]
        yield g, sample(g, SEED0[purpose][g] + i // len(gens))


def use_models(folder: str | Path) -> None:
    """Make this process's classifier use the whole-map model, verifier and calibration files in ``folder``
    (any may be absent: then the packaged one stays), e.g. models fitted without one generator, for a
    held-out test."""
    folder = Path(folder)
    vf, cf, gf = folder / verifier.FILE, folder / calibration.FILE, folder / globalmodel.FILE
    if gf.exists():
        gloaded = globalmodel.load(json.loads(gf.read_text()))
        globalmodel.models = lambda: gloaded  # type: ignore[assignment]
    if vf.exists():
        spec = json.loads(vf.read_text())
        fams = {f: verifier.Trees(t) for f, t in spec["families"].items()}
        loaded = {
            "version": spec["version"],
            "families": fams,
            "stack": verifier.Stack(fams) if verifier.Stack.fits(fams) else None,
        }
        verifier.models = lambda: loaded  # type: ignore[assignment]
    if cf.exists():
        tables = json.loads(cf.read_text())
        calibration.tables = lambda: tables  # type: ignore[assignment]
