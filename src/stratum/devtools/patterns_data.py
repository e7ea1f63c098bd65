"""The labelled-map sources of the pattern classifier's dev tools (fitting, calibration, evaluation) and
their seed ranges, kept disjoint across purposes so no test map was ever fitted or calibrated on.

Generators: ``A`` and ``B`` are the two parameterisations of ``wafergen``; ``C`` (``wafergen_c``), ``D``
(``wafergen_d``) and ``E`` (``wafergen_e``) are independent generators, each written from the taxonomy's
generator spec and labelling rules only, without reading the others or the classifier. ``FIT_GENERATORS``
are what the weights are fitted and calibrated on; a generator left out of them is a held-out test of how
the classifier does on maps from an interpretation of the spec it has never seen. ``E`` is NEVER fitted (its
fit/cal seed ranges stay unused): it is the honest held-out figure and must not be added to ``FIT_GENERATORS``.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from stratum.devtools import patterns_global as globalmodel
from stratum.devtools import wafergen
from stratum.patterns import calibration, verifier

GENERATORS: tuple[str, ...] = ("A", "B", "C", "D", "E")
#: the generators the verifier, calibration and whole-map model are fitted on (the default of their scripts);
#: never "E": the held-out generator no weight is fitted or calibrated on
FIT_GENERATORS: tuple[str, ...] = ("A", "B", "C", "D")
#: independent generators, each a module with ``generate(seed) -> wafergen.Sample``
_MODULES = {"C": "wafergen_c", "D": "wafergen_d", "E": "wafergen_e"}
#: first seed of each (purpose, generator); every range is used for at most 1,000,000 maps
SEED0: dict[str, dict[str, int]] = {
    "fit": {"A": 2_000_000, "B": 3_000_000, "C": 12_000_000, "D": 22_000_000, "E": 32_000_000},
    "cal": {"A": 1_000_000, "B": 4_000_000, "C": 13_000_000, "D": 23_000_000, "E": 33_000_000},
    "test": {"A": 5_000_000, "B": 7_000_000, "C": 11_000_000, "D": 21_000_000, "E": 31_000_000},
    "global": {"A": 6_000_000, "B": 8_000_000, "C": 14_000_000, "D": 24_000_000, "E": 34_000_000},
}


def sample(gen: str, seed: int) -> wafergen.Sample:
    if gen in _MODULES:
        return importlib.import_module(f"stratum.devtools.{_MODULES[gen]}").generate(seed)
    return wafergen.generate(seed, profile=gen)


def mixed(purpose: str, gens: tuple[str, ...], n: int):
    """``n`` maps for ``purpose`` drawn round-robin from ``gens`` (each from its own seed range)."""
    for i in range(n):
        g = gens[i % len(gens)]
        yield g, sample(g, SEED0[purpose][g] + i // len(gens))


def use_models(folder: str | Path) -> None:
    """Make this process use the whole-map model (dev tool), verifier and calibration files in ``folder``
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
