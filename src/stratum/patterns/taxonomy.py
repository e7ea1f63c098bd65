"""The Stratum wafer-pattern taxonomy: 15 families x location x severity, refined by octant, orientation,
direction or side where a family needs it to be told apart. Only reachable classes are listed.

``class_id`` is a stable path: ``family/location/severity[/refinement]`` (e.g. ``edge_loc/edge/high/ne``).
Location and severity follow the labelling rules: equal-area radial thirds split at normalised radius
sqrt(1/3) and sqrt(2/3); severity is the fail density inside the pattern region (low < 20 % <= med < 50 %
<= high). Whole-wafer families are always ``global`` and their region is the whole wafer.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

FAMILIES: tuple[str, ...] = (
    "none",
    "random",
    "center",
    "donut",
    "edge_ring",
    "edge_loc",
    "loc",
    "scratch",
    "near_full",
    "gross_region",
    "radial_gradient",
    "row_stripe",
    "column_stripe",
    "reticle_repeat",
    "site_pattern",
)
LOCATIONS: tuple[str, ...] = ("global", "center", "mid", "edge")
SEVERITIES: tuple[str, ...] = ("low", "med", "high")
WHOLE_WAFER: frozenset[str] = frozenset(
    {"none", "random", "near_full", "radial_gradient", "reticle_repeat", "site_pattern", "gross_region"}
)
#: whole-wafer families whose severity region is not the whole wafer (failing offsets; the bad site)
OWN_REGION: frozenset[str] = frozenset({"reticle_repeat", "site_pattern"})
#: the radius splits of the equal-area thirds
THIRD_SPLITS: tuple[float, float] = (3**-0.5, (2 / 3) ** 0.5)
#: severity thresholds on the fail density inside the region (defaults; PatternSettings may override)
SEVERITY_SPLITS: tuple[float, float] = (0.20, 0.50)

OCTANTS: tuple[str, ...] = ("e", "ne", "n", "nw", "w", "sw", "s", "se")
ORIENTATIONS: tuple[str, ...] = ("h", "d45", "v", "d135")  # scratch direction, degrees from +x, mod 180
SIDES: tuple[str, ...] = ("ne", "nw", "sw", "se", "n", "w", "s", "e")  # gross_region: 4 quadrants, 4 halves
DIRECTIONS: tuple[str, ...] = ("rising", "falling")  # radial_gradient: density rising/falling with radius

_SHAPE = {
    "none": "no spatial pattern: few fails (at most ~9 %) with no structure",
    "random": "spatially random fails, clearly more than a clean wafer (>= 12 %), no structure",
    "center": "a blob of fails around the wafer centre",
    "donut": "a ring of fails at mid radius with a passing centre",
    "edge_ring": "a full ring of fails along the wafer edge",
    "edge_loc": "an arc of fails along part of the wafer edge",
    "loc": "a local cluster of fails away from the edge",
    "scratch": "a thin line or arc of fails, 1-2 dies wide, possibly with gaps",
    "near_full": "almost every die fails",
    "gross_region": "a quadrant or a half of the wafer fails",
    "radial_gradient": "fail density rising or falling steadily with radius",
    "row_stripe": "whole rows of dies fail",
    "column_stripe": "whole columns of dies fail",
    "reticle_repeat": "fails repeat at fixed positions inside every reticle (exposure field)",
    "site_pattern": "one test site of a multi-site probe card fails more than the others",
}
_CAUSES = {
    "none": ["no systematic issue"],
    "random": ["particles", "random defect density", "marginal test limits"],
    "center": ["deposition or CMP non-uniformity at the centre", "spin coat / resist centre defects"],
    "donut": ["deposition or etch ring at mid radius", "thermal (hot plate) non-uniformity"],
    "edge_ring": ["etch or clamp ring at the edge", "edge bead removal", "edge thickness roll-off"],
    "edge_loc": ["wafer handling at the edge (clamp, robot)", "local edge etch non-uniformity"],
    "loc": ["local contamination or particle cluster", "local process or mask defect"],
    "scratch": ["mechanical handling scratch", "CMP scratch"],
    "near_full": ["wrong test program or probe card", "gross process failure", "setup error"],
    "gross_region": ["chuck or tool zone failure", "partial exposure or process step on part of the wafer"],
    "radial_gradient": ["radial film thickness or temperature gradient", "implant or etch uniformity drift"],
    "row_stripe": ["stepper or prober row stepping fault", "scan-direction exposure fault"],
    "column_stripe": ["stepper or prober column stepping fault", "scan-direction exposure fault"],
    "reticle_repeat": ["reticle (mask) defect repeated at every exposure", "stepper field issue"],
    "site_pattern": ["a bad probe-card site or tester channel", "site-specific contact resistance"],
}
_LOC_TEXT = {
    "global": "spread over the whole wafer",
    "center": "in the inner third of the wafer area (r < 0.577 R)",
    "mid": "in the middle third of the wafer area (0.577 R <= r < 0.816 R)",
    "edge": "in the outer third of the wafer area (r >= 0.816 R)",
}
_SEV_TEXT = {"low": "fail density in the region below 20 %", "med": "fail density 20-50 %", "high": ">= 50 %"}
_REF_TEXT = {
    **{o: f"towards {o.upper()}" for o in OCTANTS},
    "h": "running horizontally",
    "d45": "running diagonally (SW-NE)",
    "v": "running vertically",
    "d135": "running diagonally (NW-SE)",
    "rising": "density rising towards the edge",
    "falling": "density falling towards the edge",
}
_SIDE_TEXT = {
    "ne": "NE quadrant",
    "nw": "NW quadrant",
    "sw": "SW quadrant",
    "se": "SE quadrant",
    "n": "northern half",
    "w": "western half",
    "s": "southern half",
    "e": "eastern half",
}

# family -> (reachable locations, reachable severities, refinement axis or None)
REACHABLE: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...] | None]] = {
    "none": (("global",), ("low",), None),
    "random": (("global",), SEVERITIES, None),
    "center": (("center", "global"), SEVERITIES, None),
    "donut": (("center", "mid"), SEVERITIES, None),
    "edge_ring": (("edge",), SEVERITIES, None),
    "edge_loc": (("edge",), SEVERITIES, OCTANTS),
    "loc": (("center", "mid", "edge"), SEVERITIES, OCTANTS),
    "scratch": (LOCATIONS, SEVERITIES, ORIENTATIONS),
    "near_full": (("global",), ("high",), None),
    "gross_region": (("global",), SEVERITIES, SIDES),
    "radial_gradient": (("global",), SEVERITIES, DIRECTIONS),
    "row_stripe": (LOCATIONS, SEVERITIES, None),
    "column_stripe": (LOCATIONS, SEVERITIES, None),
    "reticle_repeat": (("global",), SEVERITIES, None),
    "site_pattern": (("global",), SEVERITIES, None),
}


#: combinations that cannot be produced: a quadrant is at most a quarter of the wafer (whole-wafer density
#: < 50 %); a density falling with radius averages below a third of its peak; a line (scratch, stripe) or
#: reticle position is only told from noise when at least ~25-55 % of its dies fail, so never 'low'
IMPOSSIBLE: frozenset[tuple[str, str, str | None]] = frozenset(
    {("gross_region", "high", q) for q in ("ne", "nw", "sw", "se")}
    | {("radial_gradient", "high", "falling")}
    | {("scratch", "low", o) for o in ORIENTATIONS}
    | {("row_stripe", "low", None), ("column_stripe", "low", None), ("reticle_repeat", "low", None)}
)


@dataclass(frozen=True)
class PatternClass:
    class_id: str
    family: str
    location: str
    severity: str
    refinement: str | None
    parent: str  # the class_id one level up (family/location/severity, or family/location, or family)
    description: str
    likely_causes: tuple[str, ...]

    def as_dict(self) -> dict:
        return {
            "class_id": self.class_id,
            "family": self.family,
            "location": self.location,
            "severity": self.severity,
            "refinement": self.refinement,
            "parent": self.parent,
            "description": self.description,
            "likely_causes": list(self.likely_causes),
        }


def class_id(family: str, location: str, severity: str, refinement: str | None = None) -> str:
    base = f"{family}/{location}/{severity}"
    return f"{base}/{refinement}" if refinement else base


def _describe(family: str, location: str, severity: str, ref: str | None) -> str:
    text = _SHAPE[family]
    if ref is not None:
        text += ", " + (_SIDE_TEXT[ref] if family == "gross_region" else _REF_TEXT[ref])
    if family != "none":
        text += f"; {_LOC_TEXT[location]}; {_SEV_TEXT[severity]}"
    return text


@lru_cache(maxsize=1)
def _build() -> tuple[PatternClass, ...]:
    out: list[PatternClass] = []
    for fam in FAMILIES:
        locs, sevs, refs = REACHABLE[fam]
        for loc in locs:
            for sev in sevs:
                for ref in refs or (None,):
                    if (fam, sev, ref) in IMPOSSIBLE:
                        continue
                    parent = class_id(fam, loc, sev) if ref else f"{fam}/{loc}"
                    out.append(
                        PatternClass(
                            class_id=class_id(fam, loc, sev, ref),
                            family=fam,
                            location=loc,
                            severity=sev,
                            refinement=ref,
                            parent=parent,
                            description=_describe(fam, loc, sev, ref),
                            likely_causes=tuple(_CAUSES[fam]),
                        )
                    )
    return tuple(out)


def classes() -> tuple[PatternClass, ...]:
    """Every leaf class, in taxonomy order (family order, then location, severity, refinement)."""
    return _build()


@lru_cache(maxsize=1)
def by_id() -> MappingProxyType:
    return MappingProxyType({c.class_id: c for c in _build()})


def location_of(fractions: tuple[float, float, float]) -> str:
    """Location from the share of a region's dies in the inner/middle/outer third (labelling rule)."""
    a, b, c = fractions
    if min(a, b, c) >= 0.15:
        return "global"
    # the third holding the largest share, the innermost on a tie
    return "center" if a >= b and a >= c else "mid" if b >= c else "edge"


def severity_of(density: float, splits: tuple[float, float] = SEVERITY_SPLITS) -> str:
    if density < splits[0]:
        return "low"
    return "med" if density < splits[1] else "high"


def octant_of(angle_rad: float) -> str:
    import math

    k = int(math.floor((angle_rad % (2 * math.pi)) / (math.pi / 4) + 0.5)) % 8
    return OCTANTS[k]


def orientation_of(angle_rad: float) -> str:
    import math

    k = int(math.floor((angle_rad % math.pi) / (math.pi / 4) + 0.5)) % 4
    return ORIENTATIONS[k]
