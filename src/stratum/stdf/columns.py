"""Column containers the reader emits (numpy only: the reader never imports pyarrow).

The lake writer turns these into Arrow arrays without copying where it can.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(slots=True)
class Masked:
    """Values with a validity mask (False = null)."""

    values: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def take(self, idx: np.ndarray) -> Masked:
        return Masked(self.values[idx], self.valid[idx])


@dataclass(slots=True)
class Ragged:
    """A list column: ``values[offsets[i]:offsets[i+1]]`` is row i; ``valid`` False = null list."""

    offsets: np.ndarray  # int64, len n+1
    values: np.ndarray
    valid: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def take(self, idx: np.ndarray) -> Ragged:
        idx = np.asarray(idx, np.int64)
        starts = self.offsets[idx]
        lens = self.offsets[idx + 1] - starts
        new_off = np.zeros(len(idx) + 1, np.int64)
        np.cumsum(lens, out=new_off[1:])
        total = int(new_off[-1])
        if total:
            rel = np.arange(total, dtype=np.int64) - np.repeat(new_off[:-1], lens)
            vals = self.values[np.repeat(starts, lens) + rel]
        else:
            vals = self.values[:0]
        return Ragged(new_off, vals, None if self.valid is None else self.valid[idx])


@dataclass(slots=True)
class Strings(Ragged):
    """A string (or binary) column stored as byte offsets + uint8 data; ``binary`` keeps raw bytes."""

    binary: bool = False

    def take(self, idx: np.ndarray) -> Strings:
        r = Ragged.take(self, idx)
        return Strings(r.offsets, r.values, r.valid, self.binary)

    def to_list(self) -> list[str | bytes | None]:
        out: list[str | bytes | None] = []
        data = self.values.tobytes()
        for i in range(len(self)):
            if self.valid is not None and not self.valid[i]:
                out.append(None)
                continue
            raw = data[self.offsets[i] : self.offsets[i + 1]]
            if self.binary:
                out.append(raw)
            else:
                try:
                    out.append(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    out.append(raw.decode("latin-1"))
        return out


def gather_bytes(
    b: np.ndarray, start: np.ndarray, length: np.ndarray, present: np.ndarray | None = None, binary=False
) -> Strings:
    """Strings ``b[start[i]:start[i]+length[i]]`` for every row, vectorised."""
    length = np.asarray(length, np.int64)
    if present is not None:
        length = np.where(present, length, 0)
    off = np.zeros(len(length) + 1, np.int64)
    np.cumsum(length, out=off[1:])
    total = int(off[-1])
    if total:
        rel = np.arange(total, dtype=np.int64) - np.repeat(off[:-1], length)
        data = b[np.repeat(np.asarray(start, np.int64), length) + rel]
    else:
        data = np.zeros(0, np.uint8)
    return Strings(off, data, None if present is None else np.asarray(present, bool), binary)


def concat_columns(parts: list) -> Any:
    """Concatenate batches of one column (all of the same kind)."""
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    if isinstance(first, list):
        return [x for p in parts for x in p]
    if isinstance(first, Masked):
        return Masked(np.concatenate([p.values for p in parts]), np.concatenate([p.valid for p in parts]))
    if isinstance(first, Ragged):
        offs = [first.offsets]
        base = first.offsets[-1]
        for p in parts[1:]:
            offs.append(p.offsets[1:] + base)
            base += p.offsets[-1]
        valid = None if first.valid is None else np.concatenate([p.valid for p in parts])
        vals = np.concatenate([p.values for p in parts])
        if isinstance(first, Strings):
            return Strings(np.concatenate(offs), vals, valid, first.binary)
        return Ragged(np.concatenate(offs), vals, valid)
    raise TypeError(type(first))
