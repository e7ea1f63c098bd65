"""STDF V4 / V4-2007 record encoder and file writer.

``encode_record`` is the exact inverse of :func:`stratum.stdf.decode.decode_fields`: the same field
names and value forms (B1 as int, C1 as a 1-character str, Bn as bytes, Dn as
``{"bit_count", "bit_data"}``, N1 arrays as lists of ints, GDR ``V1`` as ``{"type", "value"}``).

Fields are written in specification order and writing stops at the first field missing from the dict,
which is how testers write short records (stdf-parsing R1). A field given after a missing one is an
error, as is an unknown field name. Array counts are filled from the array length when left out.

Each record type is compiled once per byte order: generated straight-line code for the common case
(runs of fixed-width fields packed by one ``struct.Struct``), backed by a step interpreter for the rest
(partial runs, value conversions, precise errors). Encoding never re-reads the spec.
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import struct
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from stratum.stdf.spec import BY_NAME, GDR_TYPES, Field, RecordType

__all__ = ["MAX_BODY", "StdfWriter", "encode_body", "encode_record"]

MAX_BODY = 65535

_FMT = {
    "U1": "B",
    "U2": "H",
    "U4": "I",
    "U8": "Q",
    "I1": "b",
    "I2": "h",
    "I4": "i",
    "I8": "q",
    "R4": "f",
    "R8": "d",
    "B1": "B",
    "C1": "c",
}
_UF = {1: "B", 2: "H", 4: "I", 8: "Q"}
_GDR_CODE = {t: c for c, t in GDR_TYPES.items()}

# A step appends the bytes of one or more fields to ``out`` and returns how many keys of the field
# dict it consumed; it returns ``~consumed`` (a negative number) when writing stops at a missing field.
_Step = Callable[[Mapping[str, Any], list], int]


# ---------------------------------------------------------------------------------------------- values


def _b1(v: Any) -> int:
    if isinstance(v, bytes | bytearray):
        if len(v) != 1:
            raise ValueError(f"B1 value must be 1 byte, got {len(v)}")
        return v[0]
    return v


def _c1(v: Any) -> bytes:
    if isinstance(v, bytes | bytearray):
        b = bytes(v)
    else:
        try:
            b = v.encode("latin-1")
        except UnicodeEncodeError:
            b = v.encode("utf-8")
    if len(b) != 1:
        raise ValueError(f"C1 value must be exactly 1 byte, got {v!r}")
    return b


def _raw_text(v: Any) -> bytes:
    return bytes(v) if isinstance(v, bytes | bytearray) else v.encode("utf-8")


_LEN1 = [bytes((i,)) for i in range(256)]


def _cn(v: Any) -> bytes:
    b = v.encode("utf-8") if type(v) is str else bytes(v)
    if len(b) > 255:
        raise ValueError(f"Cn string is {len(b)} bytes (max 255)")
    return _LEN1[len(b)] + b


def _sn(v: Any, e: str) -> bytes:
    b = _raw_text(v)
    if len(b) > 65535:
        raise ValueError(f"Sn string is {len(b)} bytes (max 65535)")
    return struct.pack(e + "H", len(b)) + b


def _bytes_or_hex(v: Any) -> bytes:
    return bytes.fromhex(v) if isinstance(v, str) else bytes(v)


def _bn(v: Any) -> bytes:
    b = _bytes_or_hex(v)
    if len(b) > 255:
        raise ValueError(f"Bn value is {len(b)} bytes (max 255)")
    return bytes((len(b),)) + b


def _dn(v: Any, e: str) -> bytes:
    bits = v["bit_count"]
    data = _bytes_or_hex(v["bit_data"])
    if not 0 <= bits <= 65535:
        raise ValueError(f"Dn bit_count {bits} out of range")
    if len(data) != (bits + 7) // 8:
        raise ValueError(f"Dn bit_data is {len(data)} bytes, bit_count {bits} needs {(bits + 7) // 8}")
    return struct.pack(e + "H", bits) + data


def _n1(values: Any) -> bytes:
    vals = list(values)
    if any(not 0 <= x <= 15 for x in vals):
        raise ValueError("N1 values must be 0..15")
    if len(vals) % 2:
        vals.append(0)
    return bytes(lo | (hi << 4) for lo, hi in zip(vals[0::2], vals[1::2], strict=True))


def _gdr_item(item: Mapping[str, Any], e: str) -> bytes:
    t = item["type"]
    code = _GDR_CODE.get(t)
    if code is None:
        raise ValueError(f"unknown GDR data type {t!r}")
    v: Any = item.get("value")
    if t == "B0":
        return b"\x00"
    if t == "N1":
        if not 0 <= v <= 15:
            raise ValueError("GDR N1 value must be 0..15")
        return bytes((code, v))
    if t == "Cn":
        return bytes((code,)) + _cn(v)
    if t == "Bn":
        return bytes((code,)) + _bn(v)
    if t == "Dn":
        return bytes((code,)) + _dn(v, e)
    return bytes((code,)) + struct.pack(e + _FMT[t], v)


# ------------------------------------------------------------------------------------------ compiling


def _fixed_run(names: tuple[str, ...], types: tuple[str, ...], e: str) -> _Step:
    packer = struct.Struct(e + "".join(_FMT[t] for t in types)).pack
    n = len(names)
    needs_conv = any(t in ("B1", "C1") for t in types)

    def convert(vals: list) -> list:
        return [_b1(v) if t == "B1" else _c1(v) if t == "C1" else v for v, t in zip(vals, types, strict=False)]

    def step(d: Mapping[str, Any], out: list) -> int:
        try:
            vals = [d[k] for k in names]
        except KeyError:
            vals = []
            for k in names:
                if k not in d:
                    break
                vals.append(d[k])
            if vals:
                vals = convert(vals)
                out.append(struct.pack(e + "".join(_FMT[t] for t in types[: len(vals)]), *vals))
            return ~len(vals)
        try:
            out.append(packer(*vals))
        except struct.error:
            if not needs_conv:
                raise
            out.append(packer(*convert(vals)))
        return n

    return step


def _scalar(name: str, enc: Callable[[Any], bytes]) -> _Step:
    def step(d: Mapping[str, Any], out: list) -> int:
        if name not in d:
            return ~0
        out.append(enc(d[name]))
        return 1

    return step


def _put_array(d: Mapping[str, Any], out: list, name: str, count: str, enc: Callable[[Any, int], bytes]) -> int:
    """Step result of an array field: its count must be given; a zero-length array may be left out."""
    n = d.get(count)
    if n is None:
        return ~0
    if name not in d:
        return 0 if n == 0 else ~0
    values = d[name]
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} elements but {count} is {n}")
    out.append(enc(values, n))
    return 1


def _array(name: str, count: str, enc: Callable[[Any, int], bytes]) -> _Step:
    """An array field; ``enc(values, n)`` returns its bytes."""

    def step(d: Mapping[str, Any], out: list) -> int:
        return _put_array(d, out, name, count, enc)

    return step


def _sized(name: str, size: str, enc: Callable[[Any, int], bytes], count: str | None) -> _Step:
    """``Uf``/``Cf`` fields, whose element width is another field's value."""

    def step(d: Mapping[str, Any], out: list) -> int:
        if size not in d:
            return ~0
        width = d[size]
        if count is None:
            if name not in d:
                return ~0
            out.append(enc(d[name], width))
            return 1
        return _put_array(d, out, name, count, lambda values, _n: b"".join(enc(v, width) for v in values))

    return step


def _cf(e: str) -> Callable[[Any, int], bytes]:
    def enc(v: Any, width: int) -> bytes:
        b = _raw_text(v)
        if len(b) != width:
            raise ValueError(f"Cf string is {len(b)} bytes, its size field says {width}")
        return b

    return enc


def _uf(e: str) -> Callable[[Any, int], bytes]:
    def enc(v: Any, width: int) -> bytes:
        if width not in _UF:
            raise ValueError(f"unsupported Uf element width {width}")
        return struct.pack(e + _UF[width], v)

    return enc


def _split_ref(f: Field) -> tuple[str | None, str | None]:
    """(count field, size field) of ``f``; also accepts a size left inside the count (``CNT#SIZE``)."""
    count, size = f.count, f.size
    if count and "#" in count:
        count, size = count.split("#", 1)
    return count, size


class _Plan:
    """The compiled encoder of one record type in one byte order.

    ``fast`` is generated straight-line code for the common cases (whole fixed runs present, plain
    values); it returns ``None`` whenever anything is unusual, and the step interpreter (``slow``)
    then encodes the record or raises the precise error.
    """

    __slots__ = ("rt", "steps", "counts", "names", "head", "fast", "order")

    def __init__(self, rt: RecordType, be: bool) -> None:
        e = ">" if be else "<"
        self.rt = rt
        refs = [(f, *_split_ref(f)) for f in rt.fields]
        self.order = [f.name for f in rt.fields]
        self.names = frozenset(self.order)
        self.head = struct.Struct(e + "HBB")
        # count field -> the array fields it counts
        self.counts: dict[str, tuple[str, ...]] = {}
        for f, count, _ in refs:
            if count:
                self.counts[count] = (*self.counts.get(count, ()), f.name)
        # groups: ("run", [(name, type)]) or ("one", name, type, count, size)
        groups: list[tuple] = []
        for f, count, size in refs:
            if count is None and size is None and f.type in _FMT:
                if groups and groups[-1][0] == "run":
                    groups[-1][1].append((f.name, f.type))
                else:
                    groups.append(("run", [(f.name, f.type)]))
            else:
                groups.append(("one", f.name, f.type, count, size))
        self.steps = tuple(
            _fixed_run(tuple(n for n, _ in g[1]), tuple(t for _, t in g[1]), e)
            if g[0] == "run"
            else self._step(g[1], g[2], g[3], g[4], e)
            for g in groups
        )
        self.fast = self._compile(groups, e)

    @staticmethod
    def _step(name: str, t: str, count: str | None, size: str | None, e: str) -> _Step:
        if t in ("Uf", "Cf"):
            return _sized(name, size or "", _uf(e) if t == "Uf" else _cf(e), count)
        if count is None:
            return _scalar(name, _encoder(t, e))
        return _array(name, count, _array_encoder(t, e))

    def _compile(self, groups: list[tuple], e: str) -> Callable[[Mapping[str, Any]], bytes | None]:
        ns: dict[str, Any] = {"_c1": _c1, "_L": _LEN1, "_h": self.head.pack}
        lines = ["  out = []", "  ap = out.append", "  n = 0", "  try:", "    while True:"]
        for i, g in enumerate(groups):
            if g[0] == "run":
                names = [nm for nm, _ in g[1]]
                ns[f"_p{i}"] = struct.Struct(e + "".join(_FMT[t] for _, t in g[1])).pack
                args = ", ".join(f"_c1(d[{nm!r}])" if t == "C1" else f"d[{nm!r}]" for nm, t in g[1])
                lines += [f"      if {names[0]!r} not in d: break", f"      ap(_p{i}({args}))"]
                lines.append(f"      n += {len(names)}")
                continue
            _, name, t, count, size = g
            if t in ("Uf", "Cf"):
                lines.append("      return None")  # STR: rare, left to the interpreter
                break
            if count is None and t == "Cn":
                # inlined: a non-str value or a string over 255 bytes raises and falls back
                lines += [f"      if {name!r} not in d: break", f"      b = d[{name!r}].encode()"]
                lines += ["      ap(_L[len(b)])", "      ap(b)", "      n += 1"]
            elif count is None:
                ns[f"_e{i}"] = _encoder(t, e)
                lines += [f"      if {name!r} not in d: break", f"      ap(_e{i}(d[{name!r}]))", "      n += 1"]
            else:
                ns[f"_e{i}"] = _array_encoder(t, e)
                lines += [
                    f"      k = d.get({count!r})",
                    "      if k is None: break",
                    f"      if {name!r} in d:",
                    f"        v = d[{name!r}]",
                    "        if len(v) != k: return None",
                    f"        ap(_e{i}(v, k))",
                    "        n += 1",
                    "      elif k: break",
                ]
        lines += ["      break", "  except Exception:", "    return None", "  if n != len(d): return None"]
        lines += ["  body = b''.join(out)", f"  if len(body) > {MAX_BODY}: return None"]
        lines += [f"  return _h(len(body), {self.rt.typ}, {self.rt.sub}) + body"]
        # helpers become default arguments: local lookups in the hot path
        helpers = ", ".join(f"{k}={k}" for k in ns)
        src = "\n".join([f"def fast(d, *, {helpers}):", *lines])
        exec(compile(src, f"<stdf encoder {self.rt.name}>", "exec"), ns)  # noqa: S102
        return ns["fast"]

    def _resolve_counts(self, fields: Mapping[str, Any]) -> Mapping[str, Any]:
        filled = None
        for cname, arrays in self.counts.items():
            given = [a for a in arrays if a in fields]
            if not given:
                continue
            lengths = {len(fields[a]) for a in given}
            if cname in fields:
                n = fields[cname]
                if lengths != {n}:
                    raise ValueError(f"{self.rt.name}: {cname}={n} does not match the length of {', '.join(given)}")
            elif len(lengths) > 1:
                raise ValueError(f"{self.rt.name}: arrays counted by {cname} differ in length: {', '.join(given)}")
            else:
                if filled is None:
                    filled = dict(fields)
                filled[cname] = lengths.pop()
        return fields if filled is None else filled

    def encode(self, fields: Mapping[str, Any]) -> bytes:
        """The whole record, header included."""
        d = self._resolve_counts(fields) if self.counts else fields
        rec = self.fast(d)
        if rec is None:
            body = self.slow(d)
            if len(body) > MAX_BODY:
                raise ValueError(f"{self.rt.name} body is {len(body)} bytes (max {MAX_BODY})")
            rec = self.head.pack(len(body), self.rt.typ, self.rt.sub) + body
        return rec

    def slow(self, d: Mapping[str, Any]) -> bytes:
        out: list[bytes] = []
        used = 0
        for step in self.steps:
            try:
                n = step(d, out)
            except (struct.error, TypeError, ValueError, OverflowError, KeyError, AttributeError) as exc:
                raise ValueError(f"{self.rt.name}: {exc}") from exc
            if n < 0:
                used += ~n
                break
            used += n
        if used != len(d):
            self._bad_keys(d)
        return b"".join(out)

    def _bad_keys(self, d: Mapping[str, Any]) -> None:
        unknown = sorted(set(d) - self.names)
        if unknown:
            raise ValueError(f"{self.rt.name}: unknown field(s) {', '.join(unknown)}")
        missing = next((n for n in self.order if n not in d and not self._empty_array(d, n)), None)
        late = [n for n in self.order[self.order.index(missing) + 1 :] if n in d] if missing else []
        raise ValueError(f"{self.rt.name}: field(s) {', '.join(late)} given after missing field {missing}")

    def _empty_array(self, d: Mapping[str, Any], name: str) -> bool:
        for cname, arrays in self.counts.items():
            if name in arrays:
                return d.get(cname) == 0
        return False


def _encoder(t: str, e: str) -> Callable[[Any], bytes]:
    """Encoder of one variable-length value (Cn, Sn, Bn, Dn, V1) or a lone C1."""
    return {
        "Cn": _cn,
        "Sn": lambda v: _sn(v, e),
        "Bn": _bn,
        "Dn": lambda v: _dn(v, e),
        "V1": lambda v: _gdr_item(v, e),
        "C1": _c1,
    }[t]


def _array_encoder(t: str, e: str) -> Callable[[Any, int], bytes]:
    """Encoder of a ``kxTYPE`` array: ``enc(values, n)``."""
    if t == "N1":
        return lambda v, n: _n1(v)
    if t in _FMT and t not in ("C1", "B1"):
        fmt = _FMT[t]
        return lambda v, n: struct.pack(f"{e}{n}{fmt}", *v)
    if t == "B1":
        return lambda v, n: struct.pack(f"{e}{n}B", *map(_b1, v))
    one = _encoder(t, e)
    return lambda v, n: b"".join(map(one, v))


class _Plans(dict):
    """Record name -> compiled plan for one byte order, built on first use."""

    def __init__(self, be: bool) -> None:
        super().__init__()
        self.be = be

    def __missing__(self, name: str) -> _Plan:
        p = self[name] = _Plan(BY_NAME[name], self.be)
        return p


_PLANS = {False: _Plans(False), True: _Plans(True)}


def _plan(name_or_rt: str | RecordType, be: bool) -> _Plan:
    if isinstance(name_or_rt, str):
        return _PLANS[be][name_or_rt]
    p = _PLANS[be].get(name_or_rt.name)
    if p is None or p.rt is not name_or_rt:
        p = _Plan(name_or_rt, be)
        if BY_NAME.get(name_or_rt.name) is name_or_rt:
            _PLANS[be][name_or_rt.name] = p
    return p


def encode_body(name_or_rt: str | RecordType, fields: Mapping[str, Any], *, big_endian: bool) -> bytes:
    """Encode a record body (no header). See :func:`encode_record`."""
    return _plan(name_or_rt, big_endian).encode(fields)[4:]


def encode_record(name_or_rt: str | RecordType, fields: Mapping[str, Any], *, big_endian: bool) -> bytes:
    """Encode one record, header included: the inverse of ``decode_fields``.

    Raises ``ValueError`` for an unknown or out-of-order field, a count that contradicts its array,
    a value out of its type's range, a Cn over 255 bytes or a body over 65535 bytes.
    """
    return _plan(name_or_rt, big_endian).encode(fields)


# -------------------------------------------------------------------------------------------- writer


class StdfWriter:
    """Write an STDF file record by record.

    ``target`` is a path or a binary file object (left open on close). The FAR (CPU_TYPE 2 for
    little-endian, 1 for big-endian; STDF_VER 4) is written first unless ``far=False``, which leaves
    the whole byte stream to the caller (for deliberately malformed files).
    """

    _FLUSH_AT = 1 << 20

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        *,
        byte_order: str = "little",
        compression: str | None = None,
        compresslevel: int = 6,
        far: bool = True,
    ) -> None:
        if byte_order not in ("little", "big"):
            raise ValueError(f"byte_order must be 'little' or 'big', not {byte_order!r}")
        if compression not in (None, "gzip", "bzip2"):
            raise ValueError(f"compression must be None, 'gzip' or 'bzip2', not {compression!r}")
        self.big_endian = byte_order == "big"
        self._plans = _PLANS[self.big_endian]
        self.byte_order = byte_order
        self.compression = compression
        self.counts: Counter[str] = Counter()
        self.records = 0
        self.bytes_written = 0  # uncompressed
        self._own = not hasattr(target, "write")
        raw: Any = open(target, "wb") if self._own else target  # type: ignore[arg-type]  # noqa: SIM115
        self._raw = raw
        if compression == "gzip":
            # mtime=0 and no file name keep the output byte-identical for the same records.
            self._out: Any = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0)
        elif compression == "bzip2":
            self._out = bz2.BZ2File(raw, "wb", compresslevel=max(1, min(9, compresslevel)))
        else:
            self._out = raw
        self._buf: list[bytes] = []
        self._pending = 0
        self._closed = False
        if far:
            self.write("FAR", CPU_TYPE=1 if self.big_endian else 2, STDF_VER=4)

    def __enter__(self) -> StdfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, name: str, **fields: Any) -> int:
        """Encode and write one record; returns its size in bytes (header included)."""
        return self.write_record(name, fields)

    def write_record(self, name: str, fields: Mapping[str, Any]) -> int:
        """Like :meth:`write`, with the fields as a mapping."""
        rec = self._plans[name].encode(fields)
        self.counts[name] += 1
        self.records += 1
        n = len(rec)
        self.bytes_written += n
        self._buf.append(rec)
        self._pending += n
        if self._pending >= self._FLUSH_AT:
            self.flush()
        return n

    def write_raw(self, data: bytes | bytearray | memoryview) -> None:
        """Write bytes as they are (not counted as records)."""
        self._put(bytes(data))

    def write_encoded(self, data: bytes | bytearray | memoryview, counts: Mapping[str, int]) -> None:
        """Write records encoded elsewhere (e.g. numpy templates) and add ``counts`` to the tallies."""
        for k, v in counts.items():
            self.counts[k] += v
            self.records += v
        if len(data) < self._FLUSH_AT:
            data = bytes(data)  # the caller may reuse its buffer
        self._put(data)

    def _put(self, data: bytes | bytearray | memoryview) -> None:
        n = len(data)
        self.bytes_written += n
        if n >= self._FLUSH_AT:
            self.flush()
            self._out.write(data)
            return
        self._buf.append(data)  # type: ignore[arg-type]
        self._pending += n
        if self._pending >= self._FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Hand buffered bytes to the underlying stream."""
        if self._buf:
            self._out.write(b"".join(self._buf))
            self._buf.clear()
            self._pending = 0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.flush()
        if self._out is not self._raw:
            self._out.close()  # ends the compressed stream; leaves ``raw`` open
        if self._own:
            self._raw.close()
        elif isinstance(self._raw, io.IOBase):
            self._raw.flush()
