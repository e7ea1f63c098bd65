"""A wafer's die map as the analytics service returns it, and its rendering as a PNG or SVG figure.

The route asks the analytics service for the data, then renders it here; the drawing code
(``stratum.render.wafermap``, with Pillow) is imported only when a picture is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class MapData:
    lot_id: str
    wafer_id: str
    dies: dict[str, list]
    bins: dict[str, dict[int, dict[str, Any]]]  # 'H'/'S' -> bin number -> name, pass_fail
    orientation: dict[str, Any]
    test: dict[str, Any] | None
    counts: dict[str, Any]
    job_id: str
    patterns: list[dict[str, Any]] = field(default_factory=list)  # wafer_patterns rows, by rank


def die_aspect(data: MapData) -> tuple[float, str]:
    """Die width / height: from the file's WCR (DIE_WID, DIE_HT; same units, so the ratio needs no WF_UNITS),
    else the ratio that makes the die-covered area as wide as it is tall (a round wafer), and where it came
    from ('wcr' or 'inferred')."""
    o = data.orientation
    w, h = o.get("die_width"), o.get("die_height")
    if w and h and w > 0 and h > 0:
        return float(w) / float(h), "wcr"
    x, y = data.dies["x"], data.dies["y"]
    if not x:
        return 1.0, "inferred"
    span_x = max(x) - min(x) + 1
    span_y = max(y) - min(y) + 1
    return span_y / span_x, "inferred"


def orientation_note(o: dict[str, Any]) -> str:
    """How the map is oriented and whether the file said so: 'X right, Y down (from the file)'."""
    names = {"L": "left", "R": "right", "U": "up", "D": "down"}
    axes = f"X {names[o['pos_x']]}, Y {names[o['pos_y']]}"
    if not o["orientation_assumed"]:
        return f"{axes} (from the file's WCR)"
    assumed = [a for a, ok in (("X", o.get("pos_x_from_file")), ("Y", o.get("pos_y_from_file"))) if not ok]
    return f"{axes} ({' and '.join(assumed)} assumed: not in the file's WCR)"


def render_die_map(data: MapData, *, fmt: Literal["png", "svg"], bin_type: Literal["H", "S"] = "H") -> bytes:
    """The die map as a heat map of the test's values (when it carries a test), else as a bin map."""
    import numpy as np  # loaded by the first map, not on the API's import path

    from stratum.render import wafermap as wm

    x = np.array(data.dies["x"], dtype=np.int64)
    y = np.array(data.dies["y"], dtype=np.int64)
    o = data.orientation
    yield_txt = f"yield {data.counts['yield'] * 100:.1f}%" if data.counts["yield"] is not None else ""
    sub = [
        f"{data.counts['dies']} dies, {data.counts['good']} good, {yield_txt} ({data.counts['view']} view)",
        f"snapshot {data.job_id}  ·  {orientation_note(o)}",
    ]
    aspect, _ = die_aspect(data)
    from_prr = sorted(
        n
        for n, b in data.bins["H" if data.test is not None else bin_type].items()
        if b.get("pass_fail_source") == "prr"
    )
    if from_prr:
        sub.append(
            "pass/fail of bins "
            + ", ".join(map(str, from_prr[:8]))
            + ("…" if len(from_prr) > 8 else "")
            + " from the PRR part flags (the bin records do not state it)"
        )
    if data.patterns:  # the wafer's spatial patterns (wafer_patterns), as a caption
        sub.append("patterns: " + ", ".join(f"{p['class_id']} ({p['confidence']:.2f})" for p in data.patterns[:3]))
    if data.test is not None:
        t = data.test
        vals = np.array([np.nan if v is None else v for v in data.dies.get("value", [])], dtype=np.float64)
        return wm.render_value_map(
            x,
            y,
            vals,
            title=f"Lot {data.lot_id} · Wafer {data.wafer_id} · {t['test_name']}",
            subtitle=[f"Test {t['test_num']} {t['test_name']}"] + sub,
            label=t["test_name"],
            units=t.get("units") or "",
            lo=t.get("lo_limit"),
            hi=t.get("hi_limit"),
            robust=True,
            pos_x=o["pos_x"],
            pos_y=o["pos_y"],
            flat=o["flat"],
            die_aspect=aspect,
            fmt=fmt,
        )
    key = "hard_bin" if bin_type == "H" else "soft_bin"
    bins = np.array([b if b is not None else -1 for b in data.dies[key]], dtype=np.int64)
    table = {n: (b["name"] or "", b["pass_fail"]) for n, b in data.bins[bin_type].items()}
    return wm.render_bin_map(
        x,
        y,
        bins,
        table,
        title=f"Lot {data.lot_id} · Wafer {data.wafer_id} · {'Hard' if bin_type == 'H' else 'Soft'} bins",
        subtitle=sub,
        legend_title="Hard bins" if bin_type == "H" else "Soft bins",
        pos_x=o["pos_x"],
        pos_y=o["pos_y"],
        flat=o["flat"],
        die_aspect=aspect,
        fmt=fmt,
    )
