"""Per-record decoding with ``struct`` for the low-volume record types.

Presence is decided by REC_LEN alone (stdf-parsing R1): when the body ends on a field boundary, that
field and every later one are *absent* (left out of the returned dict). A field that starts inside the
body but runs past its end is a format error: the record is corrupt, not shortened.
"""

from __future__ import annotations

import struct
from typing import Any

from .errors import RecordFormatError
from .spec import BY_NAME, GDR_TYPES, RecordType

_FIXED = {
    "U1": ("B", 1),
    "U2": ("H", 2),
    "U4": ("I", 4),
    "U8": ("Q", 8),
    "I1": ("b", 1),
    "I2": ("h", 2),
    "I4": ("i", 4),
    "I8": ("q", 8),
    "R4": ("f", 4),
    "R8": ("d", 8),
    "B1": ("B", 1),
}
_UF = {1: "B", 2: "H", 4: "I", 8: "Q"}


def text(raw: bytes) -> str:
    """Decode an STDF string: UTF-8 when valid, else Latin-1 (never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class _Cursor:
    __slots__ = ("buf", "pos", "end", "e", "rec", "offset")

    def __init__(self, buf: bytes, be: bool, rec: str, offset: int) -> None:
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.e = ">" if be else "<"
        self.rec = rec
        self.offset = offset

    def need(self, n: int, field: str) -> None:
        if self.pos + n > self.end:
            raise RecordFormatError(
                f"field runs past the end of the record (needs {n} bytes at body position {self.pos}, "
                f"REC_LEN is {self.end})",
                offset=self.offset,
                record=self.rec,
                field=field,
            )

    def fixed(self, t: str, field: str) -> Any:
        fmt, n = _FIXED[t]
        self.need(n, field)
        (v,) = struct.unpack_from(self.e + fmt, self.buf, self.pos)
        self.pos += n
        return v

    def uint(self, width: int, field: str) -> int:
        if width not in _UF:
            raise RecordFormatError(
                f"unsupported element width {width}", offset=self.offset, record=self.rec, field=field
            )
        self.need(width, field)
        (v,) = struct.unpack_from(self.e + _UF[width], self.buf, self.pos)
        self.pos += width
        return v

    def raw(self, n: int, field: str) -> bytes:
        self.need(n, field)
        v = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(v)

    def cn(self, field: str) -> str:
        self.need(1, field)
        n = self.buf[self.pos]
        self.pos += 1
        return text(self.raw(n, field))

    def sn(self, field: str) -> str:
        n = self.fixed("U2", field)
        return text(self.raw(n, field))

    def bn(self, field: str) -> bytes:
        self.need(1, field)
        n = self.buf[self.pos]
        self.pos += 1
        return self.raw(n, field)

    def dn(self, field: str) -> dict:
        bits = self.fixed("U2", field)
        return {"bit_count": bits, "bit_data": self.raw((bits + 7) // 8, field)}


def _nibbles(data: bytes, n: int) -> list[int]:
    out = []
    for i in range(n):
        b = data[i >> 1]
        out.append(b & 0x0F if i % 2 == 0 else b >> 4)
    return out


def _scalar(cur: _Cursor, t: str, name: str, size: int | None = None) -> Any:
    if t in _FIXED:
        return cur.fixed(t, name)
    if t == "C1":
        return text(cur.raw(1, name))
    if t == "Cn":
        return cur.cn(name)
    if t == "Sn":
        return cur.sn(name)
    if t == "Bn":
        return cur.bn(name)
    if t == "Dn":
        return cur.dn(name)
    if t == "Uf":
        return cur.uint(size or 0, name)
    if t == "Cf":
        return text(cur.raw(size or 0, name))
    if t == "V1":
        return _gdr_value(cur, name)
    raise AssertionError(f"unknown STDF type {t}")


def _gdr_value(cur: _Cursor, name: str) -> dict:
    code = cur.fixed("U1", name)
    t = GDR_TYPES.get(code)
    if t is None:
        raise RecordFormatError(f"unknown GDR data type code {code}", offset=cur.offset, record=cur.rec, field=name)
    if t == "B0":
        return {"type": "B0", "value": None}
    if t == "N1":
        return {"type": "N1", "value": cur.fixed("U1", name) & 0x0F}
    v = _scalar(cur, t, name)
    if isinstance(v, bytes):
        v = v.hex()
    elif isinstance(v, dict):
        v = {"bit_count": v["bit_count"], "bit_data": v["bit_data"].hex()}
    return {"type": t, "value": v}


# GDR value codes read with one struct call each: code -> (type name, little-endian struct, big-endian struct)
_GDR_NUM = {
    code: (t, struct.Struct("<" + _FIXED[t][0]), struct.Struct(">" + _FIXED[t][0]))
    for code, t in GDR_TYPES.items()
    if t in _FIXED
}


def gdr_values(body: bytes, be: bool, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """A GDR's ``GEN_DATA`` as ``{"type", "value"}`` items ready for JSON (bytes as hex, NaN as None), and the
    number of body bytes used: what ``decode_counted`` gives for a GDR, in one loop (a GDR can hold thousands
    of values). Errors are the same as ``decode_counted``'s."""
    cur = _Cursor(body, be, "GDR", offset)
    end, buf = cur.end, cur.buf
    if end == 0:
        return [], 0
    n = cur.fixed("U2", "FLD_CNT")
    out: list[dict[str, Any]] = []
    if cur.pos >= end:
        return out, cur.pos
    pos = cur.pos
    num = {code: (t, s_be if be else s_le, s_le.size) for code, (t, s_le, s_be) in _GDR_NUM.items()}
    append = out.append
    for _ in range(n):
        if pos >= end:
            cur.pos = pos
            cur.need(1, "GEN_DATA")
        code = buf[pos]
        pos += 1
        hit = num.get(code)
        if hit is not None:
            t, st, w = hit
            if pos + w > end:
                cur.pos = pos
                cur.need(w, "GEN_DATA")
            (v,) = st.unpack_from(buf, pos)
            pos += w
            append({"type": t, "value": None if v != v else v})
        elif code == 10:  # Cn
            if pos >= end:
                cur.pos = pos
                cur.need(1, "GEN_DATA")
            k = buf[pos]
            if pos + 1 + k > end:
                cur.pos = pos + 1
                cur.need(k, "GEN_DATA")
            append({"type": "Cn", "value": text(bytes(buf[pos + 1 : pos + 1 + k]))})
            pos += 1 + k
        elif code == 0:
            append({"type": "B0", "value": None})
        else:  # Bn, Dn, N1 and unknown codes: the general path
            cur.pos = pos - 1
            append(_gdr_item(_gdr_value(cur, "GEN_DATA")))
            pos = cur.pos
    return out, pos


def _gdr_item(item: dict[str, Any]) -> dict[str, Any]:
    v = item["value"]
    return {"type": item["type"], "value": None if isinstance(v, float) and v != v else v}


def decode_fields(rt: RecordType, body: bytes, be: bool, offset: int = 0) -> dict[str, Any]:
    """Decode ``body`` (the record without its 4-byte header) into ``{FIELD: value}``.

    Absent trailing fields are left out. Arrays whose count field is absent are absent too.
    """
    return decode_counted(rt, body, be, offset)[0]


# Runs of two or more consecutive fixed-width scalar fields per record type: (first field, end field, little-
# and big-endian struct, positions of C1 fields in the run). A run the body holds whole is read with one
# ``unpack_from``; otherwise its fields are read one by one (absent at the body's end, errors as before).
_Run = tuple[int, int, struct.Struct, struct.Struct, tuple[int, ...]]
_RUNS: dict[str, dict[int, _Run]] = {}


def _runs(rt: RecordType) -> dict[int, _Run]:
    runs = _RUNS.get(rt.name)
    if runs is None:
        runs = {}
        fields = rt.fields

        def plain(k: int) -> bool:
            f = fields[k]
            return f.count is None and f.size is None and (f.type == "C1" or (f.type in _FIXED))

        i = 0
        while i < len(fields):
            j = i
            while j < len(fields) and plain(j):
                j += 1
            if j - i >= 2:
                fmt = "".join("c" if f.type == "C1" else _FIXED[f.type][0] for f in fields[i:j])
                c1 = tuple(k for k in range(j - i) if fields[i + k].type == "C1")
                runs[i] = (i, j, struct.Struct("<" + fmt), struct.Struct(">" + fmt), c1)
            i = max(j, i + 1)
        _RUNS[rt.name] = runs
    return runs


def decode_counted(rt: RecordType, body: bytes, be: bool, offset: int = 0) -> tuple[dict[str, Any], int]:
    """``decode_fields`` plus the number of body bytes the fields used (less than the body when a
    record carries bytes after its last field)."""
    if rt.name == "VUR":
        return decode_vur(body, be, offset), len(body)
    cur = _Cursor(body, be, rt.name, offset)
    out: dict[str, Any] = {}
    runs = _runs(rt)
    fields = rt.fields
    i = 0
    while i < len(fields):
        f = fields[i]
        if cur.pos >= cur.end:
            break
        run = runs.get(i)
        if run is not None:
            _, j, st_le, st_be, c1 = run
            st = st_be if be else st_le
            if cur.pos + st.size <= cur.end:
                vals = st.unpack_from(cur.buf, cur.pos)
                cur.pos += st.size
                for k in range(j - i):
                    v = vals[k]
                    out[fields[i + k].name] = text(v) if k in c1 else v
                i = j
                continue
        i += 1
        size = out.get(f.size) if f.size else None
        if f.count is not None:
            if f.count not in out:
                break
            n = out[f.count]
            if f.type == "N1":
                out[f.name] = _nibbles(cur.raw((n + 1) // 2, f.name), n)
            elif f.type in _FIXED and f.type != "B1":
                fmt, w = _FIXED[f.type]
                cur.need(n * w, f.name)
                out[f.name] = list(struct.unpack_from(f"{cur.e}{n}{fmt}", cur.buf, cur.pos))
                cur.pos += n * w
            else:
                out[f.name] = [_scalar(cur, f.type, f.name, size) for _ in range(n)]
        else:
            out[f.name] = _scalar(cur, f.type, f.name, size)
    return out, cur.pos


def decode_vur(body: bytes, be: bool, offset: int = 0) -> dict[str, Any]:
    """VUR comes in two layouts: V4-2007 (one UPD_NAM Cn) and 2007.1 (UPD_CNT U1 + UPD_CNT x Cn).

    Choose the one that consumes exactly REC_LEN bytes.
    """
    n = len(body)
    if n >= 1:
        # 2007.1 layout
        cnt = body[0]
        pos, names = 1, []
        ok = True
        for _ in range(cnt):
            if pos >= n or pos + 1 + body[pos] > n:
                ok = False
                break
            names.append(text(body[pos + 1 : pos + 1 + body[pos]]))
            pos += 1 + body[pos]
        if ok and pos == n:
            return {"UPD_CNT": cnt, "UPD_NAM": names}
        # single-name layout
        if 1 + body[0] == n:
            return {"UPD_CNT": 1, "UPD_NAM": [text(body[1:n])]}
        raise RecordFormatError("VUR matches neither the V4-2007 nor the 2007.1 layout", offset=offset, record="VUR")
    return {}


def decode(name: str, body: bytes, be: bool, offset: int = 0) -> dict[str, Any]:
    return decode_fields(BY_NAME[name], body, be, offset)
