"""Drawing primitives: what a planned figure holds besides the dies; the PNG and SVG backends draw them."""

from __future__ import annotations

from dataclasses import dataclass

from stratum.render.palette import TEXT


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    size: int
    fill: str = TEXT
    anchor: str = "la"  # Pillow anchors: l/m/r horizontally, a (top)/m (middle)/s (baseline) vertically
    bold: bool = False  # PNG: faux bold via a thin stroke (the built-in font has no bold face)


@dataclass(frozen=True)
class Rect:
    x0: float
    y0: float
    x1: float
    y1: float
    fill: str | None
    outline: str | None = None


@dataclass(frozen=True)
class Line:
    points: tuple[tuple[float, float], ...]
    fill: str
    width: int = 1


@dataclass(frozen=True)
class Polygon:
    points: tuple[tuple[float, float], ...]
    fill: str


@dataclass(frozen=True)
class ColorBar:
    """Vertical colour ramp: top = 1, bottom = 0."""

    x0: int
    y0: int
    x1: int
    y1: int


Primitive = Text | Rect | Line | Polygon | ColorBar
