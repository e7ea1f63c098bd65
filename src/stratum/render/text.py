"""Text: cleaning STDF strings and the metrics of Pillow's built-in font (no system font is read)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from PIL import ImageFont

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
# Glyphs the built-in font lacks, with ASCII stand-ins (others fall back to "?").
_PNG_SUBSTITUTES = str.maketrans(
    {"µ": "u", "μ": "u", "–": "-", "—": "-", "×": "x", "σ": "s", "±": "+/-", "≤": "<=", "≥": ">="}
)


def clean_text(text: Any) -> str:
    """Text from STDF can hold anything: drop characters XML cannot carry, collapse whitespace."""
    return " ".join(_XML_INVALID.sub("", str(text)).split())


@lru_cache(maxsize=32)
def load_font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # type: ignore[return-value]


@lru_cache(maxsize=1)
def _notdef_mask() -> bytes:
    return bytes(load_font(20).getmask("\uffff"))


@lru_cache(maxsize=4096)
def _has_glyph(ch: str) -> bool:
    return bytes(load_font(20).getmask(ch)) != _notdef_mask()


def png_text(text: str) -> str:
    text = text.translate(_PNG_SUBSTITUTES)
    if text.isascii():
        return text
    return "".join(c if c.isascii() or _has_glyph(c) else "?" for c in text)


def word_gap(size: int) -> int:
    """Extra pixels per space: the built-in font's space is only 0.2 em, which runs words together."""
    return max(1, round(size * 0.1))


def text_width(text: str, size: int) -> float:
    t = png_text(text)
    return float(load_font(size).getlength(t)) + t.count(" ") * word_gap(size)


def font_metrics(size: int) -> tuple[int, int]:
    """(ascent, descent) in pixels, descent positive."""
    asc, desc = load_font(size).getmetrics()
    return int(asc), int(desc)


def fit_text(text: str, size: int, width: float) -> str:
    """Truncate with an ellipsis so the text fits the width."""
    if text_width(text, size) <= width:
        return text
    ell = "…"
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text_width(text[:mid].rstrip() + ell, size) <= width:
            lo = mid
        else:
            hi = mid - 1
    return (text[:lo].rstrip() + ell) if lo else ""


def fmt_count(n: int) -> str:
    return f"{int(n):,}"


def fmt_pct(p: float) -> str:
    if p <= 0:
        return "0%"
    if p < 0.1:
        return "<0.1%"
    if 99.95 <= p < 100:
        return ">99.9%"
    return f"{p:.1f}%"
