"""Streaming STDF V4 / V4-2007 reader.

``parse(source, sink)`` walks the file in chunks (a few tens of MB of decompressed data) and hands
the sink column batches for each table as it goes, so memory stays flat however large the file.
Per chunk:

1. header walk (``walk``), record types from one numpy gather;
2. an ordered Python pass over the *structural* records (everything but PTR/MPR/FTR): FAR/MIR/...,
   wafers (WIR/WRR per head) and parts (PIR/PRR per (head, site)), with their state carried across
   chunks;
3. vectorised decoding of PTR, MPR and FTR at fixed offsets, each test record assigned to the part
   open on its (head, site) at its position (``searchsorted`` against the chunk's PIR/PRR markers of
   that (head, site), falling back to the part open when the chunk started);
4. test identity and default data through ``TestRegistry``.

Semantics follow ../shared/docs/stdf-semantics.md; deviations and choices are in docs/decisions.md.
"""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .columns import Masked, Ragged, Strings, gather_bytes
from .decode import decode_counted, decode_fields, gdr_values, text
from .errors import NotStdfError, RecordFormatError, StdfError, TruncatedError, UnsupportedVersionError
from .flags import (
    OPT_HI_LIMIT_DEFAULT,
    OPT_HI_LIMIT_UNUSABLE,
    OPT_LO_LIMIT_DEFAULT,
    OPT_LO_LIMIT_UNUSABLE,
    OPT_NO_HI_LIMIT,
    OPT_NO_HI_SPEC,
    OPT_NO_LO_LIMIT,
    OPT_NO_LO_SPEC,
    OPT_NO_RES_SCAL,
    OPT_NO_START_INCR,
    PARM_HI_EQ_PASS,
    PARM_INVALIDATING,
    PARM_LO_EQ_PASS,
    PART_ABNORMAL_END,
    PART_FAILED,
    PART_NO_PASS_FAIL,
    PART_SUPERSEDES_ID,
    PART_SUPERSEDES_XY,
    TEST_FAILED,
    TEST_INVALIDATING,
    TEST_NO_PASS_FAIL,
    TEST_NOT_EXECUTED,
)
from .source import ByteSource, DecompressionLimits
from .spec import BY_CODE, BY_NAME, FTR, MISSING_SOFT_BIN, MISSING_U4, MISSING_XY, MPR, PIR, PRR, PTR, WIR, WRR, name_of
from .testkeys import TestRegistry
from .walk import HEAD, OPT, PAD, Views, WalkState, ramp, walk_fast

DEFAULT_CHUNK = 4 * 1024 * 1024  # decompressed bytes per chunk (see Settings.chunk_bytes)


class Sink(Protocol):
    def begin(self, header: FileHeader) -> None: ...

    def rows(self, table: str, cols: dict[str, Any]) -> None: ...


@dataclass
class FileHeader:
    """What is known before the first rows are emitted."""

    lot_id: str
    lot_id_source: str  # 'MIR' | 'file name'
    byte_order: str  # 'little' | 'big'
    cpu_type: int
    stdf_ver: int
    mir: dict[str, Any] | None


@dataclass
class Warning_:
    code: str
    message: str
    count: int = 1
    offset: int | None = None

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "count": self.count, "offset": self.offset}


@dataclass
class ParseResult:
    header: FileHeader | None = None
    records: int = 0
    record_counts: dict[str, int] = field(default_factory=dict)
    unknown_counts: dict[str, int] = field(default_factory=dict)
    bytes_decompressed: int = 0
    warnings: list[Warning_] = field(default_factory=list)
    mir: dict[str, Any] | None = None
    mrr: dict[str, Any] | None = None
    far: dict[str, Any] | None = None
    wcr: dict[str, Any] | None = None
    parts: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    wafers: list[dict[str, Any]] = field(default_factory=list)
    tests: list[Any] = field(default_factory=list)
    truncated: TruncatedError | None = None
    partial: bool = False
    dropped_parts: list[int] = field(default_factory=list)  # part_seq of parts still open at the end (no PRR)
    # CPU seconds of the reading thread per stage: "walk" (record offsets), "decode" (every gather and the
    # structural pass, up to the columns handed to the sink); the sink's own work is in its thread
    cpu_s: dict[str, float] = field(default_factory=lambda: {"walk": 0.0, "decode": 0.0})


@dataclass
class ReaderOptions:
    chunk_bytes: int = DEFAULT_CHUNK
    accept_truncated: bool = False
    test_key: str = "number_and_name"  # or "number"
    fallback_lot_id: str = "UNKNOWN"
    progress: Callable[[ByteSource, ParseResult], None] | None = None


# empty records still decoded one by one: their presence means something (EPS never has a field)
_KEEP_EMPTY = np.array(sorted({PIR, PRR, WIR, WRR, *(BY_NAME[n].code for n in ("FAR", "MIR", "MRR", "BPS", "EPS"))}))
_PRR_FIXED = struct.Struct("<BBBHHHhhI")
_PRR_FIXED_BE = struct.Struct(">BBBHHHhhI")


class _Parser:
    def __init__(self, sink: Sink | None, opts: ReaderOptions) -> None:
        self.sink = sink
        self.opts = opts
        self.res = ParseResult()
        self.reg = TestRegistry(by_number=opts.test_key == "number")
        self.be = False
        self.e = "<"
        self.header: FileHeader | None = None
        self.seq_base = 0
        self.base = 0  # decompressed offset of the current chunk
        self.next_part = 0
        self.open_parts: dict[int, int] = {}  # (head<<8|site) -> part_seq
        self.part_info: dict[int, dict] = {}  # part_seq -> info for open parts (pir seq, wafer)
        self.next_wafer = 0
        self.open_wafers: dict[int, dict] = {}  # head -> wafer run
        self.wafers: list[dict] = []
        self._warn: dict[str, Warning_] = {}
        self._pending_rows: list[tuple[str, dict]] = []
        self.low_rows: dict[str, list[dict]] = {}
        self.record_counts = np.zeros(65536, np.int64)
        self.outside_counts = {"P": 0, "M": 0, "F": 0}
        self.default_only_outside = 0
        self.exec_counts = np.zeros(0, np.int64)  # per test index
        self._states_for: Any = None  # the markers _part_states was computed for, and its result
        self._before_of: Any = None  # the marker positions _markers_before counted, and its running count
        self._before: np.ndarray = np.zeros(1, np.int64)
        self._chunk_records = 0
        self._states: Any = None

    # -- warnings ------------------------------------------------------------------------------
    def warn(self, code: str, message: str, offset: int | None = None, count: int = 1) -> None:
        w = self._warn.get(code)
        if w is None:
            self._warn[code] = Warning_(code, message, count, offset)
        else:
            w.count += count

    # -- start ---------------------------------------------------------------------------------
    def start(self, data: bytes) -> None:
        if len(data) < 4:
            raise NotStdfError(f"not an STDF file: only {len(data)} bytes, too short for a record header", offset=0)
        le_len = data[0] | (data[1] << 8)
        typ, sub = data[2], data[3]
        if (typ, sub) != (0, 10):
            raise NotStdfError(
                f"not an STDF file: the first record must be FAR (0/10), found REC_TYP={typ} REC_SUB={sub}",
                offset=0,
                record=name_of((typ << 8) | sub),
            )
        if le_len == 2:
            self.be = False
        elif (data[0] << 8 | data[1]) == 2:
            self.be = True
        else:
            raise RecordFormatError(
                f"impossible REC_LEN for FAR: {le_len} (little-endian) / {data[0] << 8 | data[1]} (big-endian); "
                "a FAR body is always 2 bytes",
                offset=0,
                record="FAR",
                field="REC_LEN",
            )
        if len(data) < 6:
            raise TruncatedError("the file ends inside the FAR record", offset=0, record="FAR", records_before=0)
        cpu, ver = data[4], data[5]
        if ver != 4:
            raise UnsupportedVersionError(
                f"unsupported STDF version {ver}: only STDF V4 (and V4-2007) is supported",
                offset=5,
                record="FAR",
                field="STDF_VER",
            )
        if cpu == 0:
            raise UnsupportedVersionError(
                "CPU_TYPE 0 (DEC VAX/PDP-11 number formats) is not supported", offset=4, record="FAR", field="CPU_TYPE"
            )
        declared = {1: True, 2: False}.get(cpu)
        if declared is None:
            self.warn(
                "cpu_type_unknown",
                f"FAR CPU_TYPE {cpu} is not 1 (big-endian) or 2 (little-endian); byte order taken from the FAR "
                f"REC_LEN bytes ({'big' if self.be else 'little'}-endian)",
                offset=4,
            )
        elif declared != self.be:
            self.warn(
                "byte_order_mismatch",
                f"FAR CPU_TYPE {cpu} declares {'big' if declared else 'little'}-endian data but the FAR REC_LEN bytes "
                f"are {'big' if self.be else 'little'}-endian; the REC_LEN bytes were trusted",
                offset=4,
            )
        self.e = ">" if self.be else "<"
        self.cpu, self.ver = cpu, ver
        self.res.far = {"CPU_TYPE": cpu, "STDF_VER": ver}

    # -- header / sink ---------------------------------------------------------------------------
    def ensure_header(self) -> None:
        if self.header is not None:
            return
        mir = self.res.mir
        lot = _clean_id((mir or {}).get("LOT_ID") or "")
        if lot:
            src = "MIR"
        else:
            lot = _clean_id(self.opts.fallback_lot_id) or "UNKNOWN"
            src = "file name"
            self.warn(
                "no_lot_id",
                "the file has no MIR" if mir is None else "the MIR has an empty LOT_ID",
            )
        self.header = FileHeader(lot, src, "big" if self.be else "little", self.cpu, self.ver, mir)
        self.res.header = self.header
        if self.sink is not None:
            self.sink.begin(self.header)
        for table, cols in self._pending_rows:
            self._emit(table, cols)
        self._pending_rows.clear()

    def _emit(self, table: str, cols: dict) -> None:
        n = len(next(iter(cols.values()))) if cols else 0
        if n == 0:
            return
        self.res.rows[table] = self.res.rows.get(table, 0) + n
        if self.sink is not None:
            self.sink.rows(table, cols)

    # -- chunk ---------------------------------------------------------------------------------
    def chunk(self, buf: bytes, offs: np.ndarray) -> None:
        n = len(offs)
        if n == 0:
            return
        self._chunk_records = n
        v = Views(buf, self.be)
        heads = v.head[offs]  # raw; PTR/MPR/FTR take their rows of it
        h = heads.view(HEAD[self.be])
        rl = h["rl"].astype(np.int64)
        code = h["code"].astype(np.int64)
        self.record_counts += np.bincount(code, minlength=65536)
        is_ptr = code == PTR
        is_mpr = code == MPR
        is_ftr = code == FTR
        other = np.flatnonzero(~(is_ptr | is_mpr | is_ftr))
        other = self._skip_empty(offs, rl, code, other)

        carry = dict(self.open_parts)  # parts open when this chunk starts
        mk_pos: list[int] = []
        mk_g: list[int] = []
        mk_part: list[int] = []
        parts_rows: list[tuple] = []
        self._structural(buf, offs, rl, code, other, mk_pos, mk_g, mk_part, parts_rows)

        if self.header is None and (parts_rows or is_ptr.any() or is_mpr.any() or is_ftr.any() or self.res.mir):
            self.ensure_header()

        markers = (np.asarray(mk_pos, np.int64), np.asarray(mk_g, np.int64), np.asarray(mk_part, np.int64))
        if is_ptr.any():
            self._ptr(v, heads, offs, rl, np.flatnonzero(is_ptr), markers, carry)
        if is_mpr.any():
            self._mpr(v, heads, offs, rl, np.flatnonzero(is_mpr), markers, carry)
        if is_ftr.any():
            self._ftr(v, heads, offs, rl, np.flatnonzero(is_ftr), markers, carry)
        if parts_rows:
            self._emit_parts(parts_rows)
        if self.header is not None:
            self.flush_low()
        self.seq_base += n

    def _skip_empty(self, offs: np.ndarray, rl: np.ndarray, code: np.ndarray, other: np.ndarray) -> np.ndarray:
        """Records with REC_LEN 0 carry no field: they are counted (vectorised) instead of decoded one by
        one, so a file of empty records reads at header-walk speed. The records whose mere presence
        means something (``_KEEP_EMPTY``) still take the ordered pass."""
        if not len(other):
            return other
        empty = (rl[other] == 0) & ~np.isin(code[other], _KEEP_EMPTY)
        if not empty.any():
            return other
        skipped = other[empty]
        codes, first, counts = np.unique(code[skipped], return_index=True, return_counts=True)
        for c, i, n in zip(codes.tolist(), first.tolist(), counts.tolist(), strict=True):
            off = self.base + int(offs[skipped[i]])
            if c not in BY_CODE:
                key = f"{c >> 8}/{c & 0xFF}"
                self.res.unknown_counts[key] = self.res.unknown_counts.get(key, 0) + n
                self.warn("unknown_record", "records of unknown type were counted and kept as raw bytes", off, n)
            else:
                self.warn(
                    "empty_records", "records with REC_LEN 0 (no fields) were counted and otherwise ignored", off, n
                )
        return other[~empty]

    def flush_low(self) -> None:
        """Emit the low-volume rows collected so far (as column lists)."""
        for table, rows in self.low_rows.items():
            if rows:
                keys: dict[str, None] = {}
                for r in rows:
                    keys.update(dict.fromkeys(r))
                self._emit(table, {k: [r.get(k) for r in rows] for k in keys})
        self.low_rows = {}

    def _err_at(self, cls, msg: str, off: int, rec: str, fld: str | None = None, i: int | None = None) -> StdfError:
        return cls(
            msg, offset=self.base + off, record=rec, field=fld, records_before=None if i is None else self.seq_base + i
        )

    # -- structural records (ordered Python pass) --------------------------------------------------
    def _structural(self, buf, offs, rl, code, other, mk_pos, mk_g, mk_part, parts_rows) -> None:
        be = self.be
        prr_struct = _PRR_FIXED_BE if be else _PRR_FIXED
        for i in other.tolist():
            c = int(code[i])
            o = int(offs[i])
            L = int(rl[i])
            if c == PIR:
                if L < 2:
                    raise self._err_at(
                        RecordFormatError,
                        f"impossible REC_LEN {L} for PIR (needs HEAD_NUM, SITE_NUM)",
                        o,
                        "PIR",
                        "REC_LEN",
                        i,
                    )
                head, site = buf[o + 4], buf[o + 5]
                g = head << 8 | site
                if g in self.open_parts:
                    self.warn(
                        "pir_without_prr",
                        "a PIR opened a part on a (head, site) whose previous part had no PRR; "
                        "that part's results are dropped",
                        self.base + o,
                    )
                seq = self.next_part
                self.next_part += 1
                self.open_parts[g] = seq
                self.part_info[seq] = {"pir_seq": self.seq_base + i, "wafer": self._wafer_for(head)}
                mk_pos.append(i)
                mk_g.append(g)
                mk_part.append(seq)
            elif c == PRR:
                if L < 2:
                    raise self._err_at(
                        RecordFormatError,
                        f"impossible REC_LEN {L} for PRR (needs HEAD_NUM, SITE_NUM)",
                        o,
                        "PRR",
                        "REC_LEN",
                        i,
                    )
                body = buf[o + 4 : o + 4 + L]
                if L >= 17:
                    head, site, flg, ntest, hbin, sbin, x, y, tt = prr_struct.unpack_from(buf, o + 4)
                    rest = self._prr_strings(body, o, i)
                    d = None
                else:
                    d = decode_fields(BY_NAME["PRR"], body, be, self.base + o)
                    head, site = d["HEAD_NUM"], d["SITE_NUM"]
                    flg = d.get("PART_FLG", 0)
                    ntest, hbin, sbin = d.get("NUM_TEST"), d.get("HARD_BIN"), d.get("SOFT_BIN")
                    x, y, tt = d.get("X_COORD"), d.get("Y_COORD"), d.get("TEST_T")
                    rest = (None, None, None)
                g = head << 8 | site
                seq = self.open_parts.pop(g, None)  # type: ignore[arg-type]
                if seq is None:
                    self.warn(
                        "prr_without_pir",
                        "a PRR closed a part that no PIR opened; it still counts as a part (with no test results)",
                        self.base + o,
                    )
                    seq = self.next_part
                    self.next_part += 1
                    info = {"pir_seq": None, "wafer": self._wafer_for(head)}
                else:
                    info = self.part_info.pop(seq)
                mk_pos.append(i)
                mk_g.append(g)
                mk_part.append(-1)
                parts_rows.append(
                    (
                        seq,
                        head,
                        site,
                        flg,
                        ntest,
                        hbin,
                        sbin,
                        x,
                        y,
                        tt,
                        *rest,
                        info["wafer"],
                        info["pir_seq"],
                        self.seq_base + i,
                        self.base + o,
                    )
                )
            elif c == WIR:
                d = decode_fields(BY_NAME["WIR"], buf[o + 4 : o + 4 + L], be, self.base + o)
                self._wir(d, i, o)
                self._keep_record("WIR", c, d, i, o)
            elif c == WRR:
                d = decode_fields(BY_NAME["WRR"], buf[o + 4 : o + 4 + L], be, self.base + o)
                self._wrr(d, i, o)
                self._keep_record("WRR", c, d, i, o)
            else:
                self._low(buf, c, o, L, i)

    def _prr_strings(self, body: bytes, o: int, i: int) -> tuple:
        L = len(body)
        pos = 17
        out: list[Any] = []
        for fld in ("PART_ID", "PART_TXT", "PART_FIX"):
            if pos >= L:
                out.append(None)
                continue
            n = body[pos]
            if pos + 1 + n > L:
                raise self._err_at(
                    RecordFormatError,
                    f"field runs past the end of the record (length {n} at body position {pos}, REC_LEN is {L})",
                    o,
                    "PRR",
                    fld,
                    i,
                )
            raw = body[pos + 1 : pos + 1 + n]
            out.append(bytes(raw) if fld == "PART_FIX" else text(raw))
            pos += 1 + n
        return tuple(out)

    def _wafer_for(self, head: int) -> int | None:
        w = self.open_wafers.get(head)
        if w is None and len(self.open_wafers) == 1:
            w = next(iter(self.open_wafers.values()))
        return None if w is None else w["wafer_seq"]

    def _wir(self, d: dict, i: int, o: int) -> None:
        head = d.get("HEAD_NUM", 0)
        prev = self.open_wafers.pop(head, None)
        if prev is not None:
            self.warn(
                "wir_without_wrr", "a WIR started a wafer on a head whose previous wafer had no WRR", self.base + o
            )
            self._close_wafer(prev, None)
        w = {
            "wafer_seq": self.next_wafer,
            "head_num": head,
            "site_grp": d.get("SITE_GRP"),
            "start_t": d.get("START_T"),
            "wir_wafer_id": _clean_id(d.get("WAFER_ID") or "") or None,
            "wir_rec_seq": self.seq_base + i,
        }
        self.next_wafer += 1
        self.open_wafers[head] = w

    def _wrr(self, d: dict, i: int, o: int) -> None:
        head = d.get("HEAD_NUM", 0)
        w = self.open_wafers.pop(head, None)
        if w is None and len(self.open_wafers) == 1 and head == 255:
            w = self.open_wafers.pop(next(iter(self.open_wafers)))
        if w is None:
            self.warn("wrr_without_wir", "a WRR closed a wafer that no WIR started", self.base + o)
            w = {
                "wafer_seq": self.next_wafer,
                "head_num": head,
                "site_grp": d.get("SITE_GRP"),
                "start_t": None,
                "wir_wafer_id": None,
                "wir_rec_seq": None,
            }
            self.next_wafer += 1
        d = dict(d)
        d["_rec_seq"] = self.seq_base + i
        self._close_wafer(w, d)

    def _close_wafer(self, w: dict, d: dict | None) -> None:
        def u4(k):
            x = (d or {}).get(k)
            return None if x is None or x == MISSING_U4 else x

        wrr_id = _clean_id((d or {}).get("WAFER_ID") or "") or None
        w.update(
            wafer_id=wrr_id or w["wir_wafer_id"],
            finish_t=(d or {}).get("FINISH_T"),
            part_cnt=u4("PART_CNT"),
            rtst_cnt=u4("RTST_CNT"),
            abrt_cnt=u4("ABRT_CNT"),
            good_cnt=u4("GOOD_CNT"),
            func_cnt=u4("FUNC_CNT"),
            fabwf_id=(d or {}).get("FABWF_ID") or None,
            frame_id=(d or {}).get("FRAME_ID") or None,
            mask_id=(d or {}).get("MASK_ID") or None,
            usr_desc=(d or {}).get("USR_DESC") or None,
            exc_desc=(d or {}).get("EXC_DESC") or None,
            wrr_rec_seq=(d or {}).get("_rec_seq"),
            closed=d is not None,
        )
        self.wafers.append(w)

    def _keep_record(self, name: str, c: int, d: dict, i: int, o: int) -> None:
        self.low_rows.setdefault("records", []).append(
            {
                "rec_seq": self.seq_base + i,
                "byte_offset": self.base + o,
                "rec_type": name,
                "rec_typ": c >> 8,
                "rec_sub": c & 0xFF,
                "fields": _json(d),
            }
        )

    def _low(self, buf: bytes, c: int, o: int, L: int, i: int) -> None:
        rt = BY_CODE.get(c)
        seq = self.seq_base + i
        off = self.base + o
        if rt is None:
            key = f"{c >> 8}/{c & 0xFF}"
            self.res.unknown_counts[key] = self.res.unknown_counts.get(key, 0) + 1
            self.warn("unknown_record", "records of unknown type were counted and kept as raw bytes", off)
            self.low_rows.setdefault("records", []).append(
                {
                    "rec_seq": seq,
                    "byte_offset": off,
                    "rec_type": "UNKNOWN",
                    "rec_typ": c >> 8,
                    "rec_sub": c & 0xFF,
                    "fields": json.dumps({"raw": bytes(buf[o + 4 : o + 4 + L]).hex()}),
                }
            )
            return
        name = rt.name
        body = buf[o + 4 : o + 4 + L]
        if name == "GDR":  # thousands of values in one record: decoded straight into JSON-ready items
            items, used = gdr_values(body, self.be, off)
        else:
            d, used = decode_counted(rt, body, self.be, off)
        if used < L:
            self.warn("trailing_bytes", "records carry bytes after their last field; the extra bytes were ignored", off)
        rows = self.low_rows
        if name == "GDR":
            rows.setdefault("texts", []).append(
                {"rec_seq": seq, "byte_offset": off, "rec_type": name, "text": _dumps(items)}
            )
            return
        if name == "MIR":
            if self.res.mir is None:
                self.res.mir = d
                if self.header is not None:
                    self.warn(
                        "mir_after_data", "the MIR comes after part data; the lot id was taken from the file name", off
                    )
            else:
                self.warn("extra_mir", "more than one MIR; the first one was used", off)
        elif name == "MRR":
            self.res.mrr = d
        elif name == "FAR" and seq > 0:
            self.warn("extra_far", "a FAR record after the start of the file was ignored", off)
        elif name == "WCR":
            self.res.wcr = d
        elif name in ("HBR", "SBR"):
            cnt = d.get(f"{name[0]}BIN_CNT")
            pf = d.get(f"{name[0]}BIN_PF")
            rows.setdefault("bins", []).append(
                {
                    "rec_seq": seq,
                    "bin_type": name[0],
                    "head_num": d.get("HEAD_NUM"),
                    "site_num": d.get("SITE_NUM"),
                    "bin_num": d.get(f"{name[0]}BIN_NUM"),
                    "bin_count": None if cnt in (None, MISSING_U4) else cnt,
                    "pass_fail": pf if pf in ("P", "F") else None,
                    "bin_name": d.get(f"{name[0]}BIN_NAM") or None,
                }
            )
        elif name == "PCR":
            rows.setdefault("part_counts", []).append(
                {
                    "rec_seq": seq,
                    **{
                        k.lower(): (None if d.get(k) in (None, MISSING_U4) else d.get(k))
                        for k in ("HEAD_NUM", "SITE_NUM", "PART_CNT", "RTST_CNT", "ABRT_CNT", "GOOD_CNT", "FUNC_CNT")
                    },
                }
            )
        elif name == "TSR":
            opt = d.get("OPT_FLAG")
            opt = opt if isinstance(opt, int) else None

            def opt_ok(bit: int, k: str) -> Any:
                x = d.get(k)
                if x is None or (opt is not None and opt & (1 << bit)):
                    return None
                return x

            def u4(k: str) -> Any:
                x = d.get(k)
                return None if x in (None, MISSING_U4) else x

            rows.setdefault("test_summaries", []).append(
                {
                    "rec_seq": seq,
                    "head_num": d.get("HEAD_NUM"),
                    "site_num": d.get("SITE_NUM"),
                    "test_type": (d.get("TEST_TYP") or "").strip() or None,
                    "test_num": d.get("TEST_NUM"),
                    "exec_count": u4("EXEC_CNT"),
                    "fail_count": u4("FAIL_CNT"),
                    "alarm_count": u4("ALRM_CNT"),
                    "test_name": d.get("TEST_NAM") or None,
                    "seq_name": d.get("SEQ_NAME") or None,
                    "test_label": d.get("TEST_LBL") or None,
                    "opt_flag": opt,
                    "test_time": opt_ok(2, "TEST_TIM"),
                    "test_min": opt_ok(0, "TEST_MIN"),
                    "test_max": opt_ok(1, "TEST_MAX"),
                    "test_sum": opt_ok(4, "TST_SUMS"),
                    "test_sum_squares": opt_ok(5, "TST_SQRS"),
                }
            )
        elif name == "SDR":
            rows.setdefault("sites", []).append({"rec_seq": seq, **{k.lower(): v for k, v in d.items()}})
        elif name == "PMR":
            rows.setdefault("pins", []).append({"rec_seq": seq, **{k.lower(): v for k, v in d.items()}})
        elif name == "DTR":
            rows.setdefault("texts", []).append(
                {"rec_seq": seq, "byte_offset": off, "rec_type": name, "text": d.get("TEXT_DAT")}
            )
            return
        self._keep_record(name, c, d, i, o)

    # -- test records: part association -----------------------------------------------------------
    def _assign_parts(self, pos: np.ndarray, g: np.ndarray, markers, carry: dict[int, int]) -> np.ndarray:
        """Part seq of each test record (-1 = outside any part): the part opened by the last PIR/PRR marker of the
        record's (head, site) before it, else the part open on it when the chunk started."""
        if len(pos) == 0:
            return np.full(0, -1, np.int64)
        states = self._part_states(markers, carry)
        if states is None:
            return self._assign_parts_grouped(pos, g, markers, carry)
        table, column, width = states
        return table[self._markers_before(markers[0], pos) * width + column[g]]

    def _markers_before(self, mk_pos: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """For each record index of ``pos`` (ascending), how many markers (ascending record indices) come before it:
        ``searchsorted(mk_pos, pos)`` as a running count over the chunk's records, cached per chunk (PTR, MPR and FTR
        share it): one pass over the records instead of a binary search per test record."""
        cum = self._before if self._before_of is mk_pos else None
        if cum is None or len(cum) <= int(pos[-1]):
            n = max(int(pos[-1]) + 1, self._chunk_records)
            cum = np.zeros(n + 1, np.int64)
            cum[mk_pos[mk_pos < n] + 1] = 1
            np.cumsum(cum, out=cum)
            self._before_of, self._before = mk_pos, cum
        return cum[pos]

    def _part_states(self, markers, carry: dict[int, int]):
        """Per number of markers passed (0..m) and (head, site), the part open on it: a small table (markers x
        sites), flattened, with the column of each (head << 8 | site) (the last column: none, -1). Cached per
        chunk; None when the table would be large (many sites and markers)."""
        if self._states_for is markers:
            return self._states
        mk_pos, mk_g, mk_part = markers
        groups = np.union1d(mk_g, np.fromiter(carry, np.int64, len(carry)))
        width = len(groups) + 1
        m = len(mk_pos)
        if (m + 1) * width > 1 << 20:
            states = None
        else:
            col = np.searchsorted(groups, mk_g)
            start = np.array([carry.get(int(x), -1) for x in groups.tolist()] + [-1], np.int64)
            vals = np.concatenate([start[None, :], np.full((m, width), -1, np.int64)])
            src = np.zeros((m + 1, width), np.int64)  # row whose value holds: the latest marker of the column
            rows = np.arange(1, m + 1)
            vals[rows, col] = mk_part
            src[rows, col] = rows
            np.maximum.accumulate(src, axis=0, out=src)
            table = vals[src, np.arange(width)].reshape(-1)
            column = np.full(1 << 16, width - 1, np.int64)
            column[groups] = np.arange(len(groups))
            states = (table, column, width)
        self._states_for, self._states = markers, states
        return states

    def _assign_parts_grouped(self, pos: np.ndarray, g: np.ndarray, markers, carry: dict[int, int]) -> np.ndarray:
        """``_assign_parts`` per (head, site), for chunks with too many of them for the state table."""
        mk_pos, mk_g, mk_part = markers
        out = np.full(len(pos), -1, np.int64)
        order = np.argsort(g, kind="stable")
        sg = g[order]
        bounds = np.flatnonzero(np.diff(sg)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(sg)]])
        for a, z in zip(starts.tolist(), ends.tolist(), strict=False):
            gv = int(sg[a])
            rows = order[a:z]
            sel = mk_g == gv
            mp = mk_pos[sel]
            before = carry.get(gv, -1)
            if len(mp) == 0:
                out[rows] = before
                continue
            j = np.searchsorted(mp, pos[rows]) - 1
            parts = mk_part[sel]
            out[rows] = np.where(j >= 0, parts[np.maximum(j, 0)], before)
        return out

    def _check_overrun(self, bad: np.ndarray, offs, idx, rec: str, fld: str, need: np.ndarray, rl: np.ndarray) -> None:
        if bad.any():
            k = int(np.flatnonzero(bad)[0])  # offs, need and rl are per record of this type; idx maps to the chunk
            i = int(idx[k])
            raise self._err_at(
                RecordFormatError,
                f"field runs past the end of the record (needs {int(need[k])} body bytes, REC_LEN is {int(rl[k])})",
                int(offs[k]),
                rec,
                fld,
                i,
            )

    def _min_len(self, rl, offs, idx, minimum: int, rec: str) -> None:
        short = rl < minimum
        if short.any():
            k = int(np.flatnonzero(short)[0])
            i = int(idx[k])
            raise self._err_at(
                RecordFormatError,
                f"impossible REC_LEN {int(rl[k])} for {rec}: shorter than its identifying fields "
                f"(TEST_NUM, HEAD_NUM, SITE_NUM need {minimum} bytes)",
                int(offs[k]),
                rec,
                "REC_LEN",
                i,
            )

    def _default_source(self, keys, first_def_row, rowidx) -> np.ndarray:
        """Per record, the test whose default data applies: the record's own test once it has defaults, else
        the test holding its number's defaults once those are set (§5), else -1."""
        reg = self.reg
        own = reg.d_has[keys]
        if first_def_row is None and bool(own.all()):  # the common case: every test has its own defaults
            return keys
        num = reg.d_num[keys]
        has_num = num >= 0
        if first_def_row is not None:  # defaults set in this chunk apply from their record on
            own &= ~(first_def_row[keys] > rowidx)
            has_num &= ~(first_def_row[np.maximum(num, 0)] > rowidx)
        return np.where(own, keys, np.where(has_num, num, -1))

    def _limits(self, keys, has_opt, optp, rl_body_opt, v, first_def_row, rowidx):
        """Per-record limits from the default table and the record's own OPT_FLAG/limits, and the test whose
        default data the record uses (-1: none)."""
        src = self._default_source(keys, first_def_row, rowidx)
        if len(optp) and bool(has_opt.all()) and int(rl_body_opt.min()) >= 12:
            o = v.opt[optp].view(OPT[self.be])  # OPT_FLAG and both limits in one gather
            if not int(np.bitwise_or.reduce(o["opt"])) & (OPT_LO_LIMIT_UNUSABLE | OPT_HI_LIMIT_UNUSABLE):
                # the common case: every record carries both limits of its own, no default is consulted
                return o["lo"].astype(np.float32), o["hi"].astype(np.float32), src
        if len(src) and int(src.min()) >= 0:  # every record has a default source (after a test's first record)
            lo, hi = self.reg.d_lo[src], self.reg.d_hi[src]
        else:
            safe = np.maximum(src, 0)
            lo = np.where(src >= 0, self.reg.d_lo[safe], np.float32(np.nan)).astype(np.float32)
            hi = np.where(src >= 0, self.reg.d_hi[safe], np.float32(np.nan)).astype(np.float32)
        # every record carrying OPT_FLAG is the common case: work on whole arrays, no gather/scatter
        full = slice(None) if has_opt.all() else np.flatnonzero(has_opt)
        if isinstance(full, slice) or len(full):
            p = optp[full]
            avail = rl_body_opt[full]  # body bytes available from OPT_FLAG on
            opt = v.b[p]
            lo_present = avail >= 8
            hi_present = avail >= 12
            lo_val = v.f4[p + 4]
            hi_val = v.f4[p + 8]
            lo_own = lo_present & ((opt & OPT_LO_LIMIT_DEFAULT) == 0)
            hi_own = hi_present & ((opt & OPT_HI_LIMIT_DEFAULT) == 0)
            lo_f = np.where(lo_own, lo_val, lo[full])
            hi_f = np.where(hi_own, hi_val, hi[full])
            lo_f = np.where((opt & OPT_NO_LO_LIMIT) != 0, np.nan, lo_f)
            hi_f = np.where((opt & OPT_NO_HI_LIMIT) != 0, np.nan, hi_f)
            lo[full] = lo_f
            hi[full] = hi_f
        return lo, hi, src

    def _establish_defaults(self, kind, keys, has_opt, offs, idx, rl, v, rec_name) -> np.ndarray | None:
        """The first record carrying default data (OPT_FLAG present) sets a test's defaults. Returns,
        per test index, the chunk row where defaults were set in this chunk (rows before it had none)."""
        if has_opt.all():
            need = np.flatnonzero(~self.reg.d_has[keys])
        else:
            full = np.flatnonzero(has_opt)
            need = full[~self.reg.d_has[keys[full]]]
        if len(need) == 0:
            return None
        uk, first = np.unique(keys[need], return_index=True)
        first_def_row = np.full(len(self.reg.tests), -1, np.int64)
        rt = BY_NAME[rec_name]
        rows = need[first]
        order = np.argsort(rows, kind="stable")  # file order: the first test of a number to get defaults holds them
        for key, r in zip(uk[order].tolist(), rows[order].tolist(), strict=False):
            o = int(offs[r])
            L = int(rl[r])
            d = decode_fields(rt, bytes(v.b[o + 4 : o + 4 + L]), self.be, self.base + o)
            self._set_defaults(self.reg.tests[key], d, kind)
            self.reg.defaults_set(key)
            first_def_row[key] = r
        return first_def_row

    def _set_defaults(self, t, d: dict, kind: str) -> None:
        opt = d.get("OPT_FLAG")
        opt = opt if isinstance(opt, int) else 0
        t.has_defaults = True
        t.opt_flag = opt
        t.res_scal = None if opt & OPT_NO_RES_SCAL else d.get("RES_SCAL")
        t.llm_scal = None if opt & OPT_LO_LIMIT_UNUSABLE else d.get("LLM_SCAL")
        t.hlm_scal = None if opt & OPT_HI_LIMIT_UNUSABLE else d.get("HLM_SCAL")
        lo = d.get("LO_LIMIT")
        hi = d.get("HI_LIMIT")
        t.lo_limit = None if (opt & OPT_LO_LIMIT_UNUSABLE or lo is None or lo != lo) else lo
        t.hi_limit = None if (opt & OPT_HI_LIMIT_UNUSABLE or hi is None or hi != hi) else hi
        ls, hs = d.get("LO_SPEC"), d.get("HI_SPEC")
        t.lo_spec = None if (opt & OPT_NO_LO_SPEC or ls is None or ls != ls) else ls
        t.hi_spec = None if (opt & OPT_NO_HI_SPEC or hs is None or hs != hs) else hs
        t.units = d.get("UNITS") or None
        t.c_resfmt = d.get("C_RESFMT") or None
        t.c_llmfmt = d.get("C_LLMFMT") or None
        t.c_hlmfmt = d.get("C_HLMFMT") or None
        if kind == "M":
            t.units_in = d.get("UNITS_IN") or None
            t.start_in = None if opt & OPT_NO_START_INCR else d.get("START_IN")
            t.incr_in = None if opt & OPT_NO_START_INCR else d.get("INCR_IN")
            t.rtn_indx = d.get("RTN_INDX")
        self.reg.d_has[t.idx] = True
        self.reg.d_lo[t.idx] = np.nan if t.lo_limit is None else t.lo_limit
        self.reg.d_hi[t.idx] = np.nan if t.hi_limit is None else t.hi_limit

    @staticmethod
    def _passed(tf, pf, res, valid, lo, hi) -> np.ndarray:
        """1 pass, 0 fail, -1 unknown (stdf-semantics §4)."""
        indicated = (tf & TEST_NO_PASS_FAIL) == 0
        flag_pass = ((tf & TEST_FAILED) == 0).view(np.int8)  # 1 pass, 0 fail
        if bool(indicated.all()):  # every record says pass or fail itself: the limits are not consulted
            return flag_pass
        with np.errstate(invalid="ignore"):
            lo_ok = np.isnan(lo) | (res > lo) | ((res == lo) & ((pf & PARM_LO_EQ_PASS) != 0))
            hi_ok = np.isnan(hi) | (res < hi) | ((res == hi) & ((pf & PARM_HI_EQ_PASS) != 0))
        has_lim = ~(np.isnan(lo) & np.isnan(hi))
        cmp = np.where(valid & has_lim, np.where(lo_ok & hi_ok, 1, 0), -1).astype(np.int8)
        return np.where(indicated, flag_pass, cmp).astype(np.int8)

    @staticmethod
    def _passed_pin(tf, pf, res, valid, lo, hi) -> np.ndarray:
        """Pass/fail of one MPR pin: its result against the limits when it has a valid result and a limit;
        otherwise the record's own indication (TEST_FLG), which covers every pin of the record."""
        with np.errstate(invalid="ignore"):
            lo_ok = np.isnan(lo) | (res > lo) | ((res == lo) & ((pf & PARM_LO_EQ_PASS) != 0))
            hi_ok = np.isnan(hi) | (res < hi) | ((res == hi) & ((pf & PARM_HI_EQ_PASS) != 0))
        by_limits = valid & ~(np.isnan(lo) & np.isnan(hi))
        record = np.where((tf & TEST_NO_PASS_FAIL) == 0, np.where((tf & TEST_FAILED) == 0, 1, 0), -1)
        return np.where(by_limits, np.where(lo_ok & hi_ok, 1, 0), record).astype(np.int8)

    def _split_outside(self, kind: str, part: np.ndarray, tf: np.ndarray | None = None, pf: np.ndarray | None = None):
        inside = part >= 0
        n_out = int((~inside).sum())
        if n_out:
            if tf is not None and pf is not None:
                default_only = (~inside) & ((tf & TEST_NOT_EXECUTED) != 0) & (pf == 0)
                nd = int(default_only.sum())
                self.default_only_outside += nd
                n_out -= nd
            self.outside_counts[kind] += n_out
        return np.flatnonzero(inside) if n_out or not inside.all() else None

    def _test_fields(self, heads, offs_all, rl_all, idx, rec: str) -> tuple:
        """The fields PTR, MPR and FTR share: offsets, REC_LENs and record numbers of the records of this
        type; TEST_NUM, HEAD_NUM, SITE_NUM, TEST_FLG and the next U1 (PARM_FLG, or FTR's OPT_FLAG), 0 when absent;
        and the records' heads (``HEAD``) for the type's own leading fields."""
        offs = offs_all[idx]
        rl = rl_all[idx]
        self._min_len(rl, offs, idx, 6, rec)
        h = heads[idx].view(HEAD[self.be])
        flg, flg2 = h["flg"].copy(), h["flg2"].copy()
        if not (len(rl) and int(rl.min()) >= 8):  # a record that ends before a flag byte has none
            flg = np.where(rl >= 7, flg, 0).astype(np.uint8, copy=False)
            flg2 = np.where(rl >= 8, flg2, 0).astype(np.uint8, copy=False)
        return offs, rl, self.seq_base + idx, h["num"].copy(), h["head"].copy(), h["site"].copy(), flg, flg2, h

    # -- PTR -----------------------------------------------------------------------------------------
    def _ptr(self, v: Views, heads, offs_all, rl_all, idx, markers, carry) -> None:
        b = v.b
        offs, rl, seqs, nums, head, site, tf, pf, h = self._test_fields(heads, offs_all, rl_all, idx, "PTR")
        has_res = rl >= 12
        if bool(has_res.all()):
            res = h["res"].astype(np.float32)  # native order (a big-endian field converts)
        else:
            res = np.where(has_res, h["res"], np.float32(np.nan)).astype(np.float32)
        has_txt = rl >= 13
        L1 = h["txt"].astype(np.int64) if bool(has_txt.all()) else np.where(has_txt, h["txt"], 0).astype(np.int64)
        self._check_overrun(has_txt & (13 + L1 > rl), offs, idx, "PTR", "TEST_TXT", 13 + L1, rl)
        alarm_body = 13 + L1
        has_alarm = rl > alarm_body
        L2 = np.where(has_alarm, b[offs + 4 + alarm_body], 0).astype(np.int64)
        self._check_overrun(
            has_alarm & (alarm_body + 1 + L2 > rl), offs, idx, "PTR", "ALARM_ID", alarm_body + 1 + L2, rl
        )
        opt_body = alarm_body + 1 + L2
        has_opt = rl > opt_body

        keys = self.reg.resolve("P", v, nums, offs + 17, L1, seqs)
        rowidx = np.arange(len(idx))
        first_def = self._establish_defaults("P", keys, has_opt, offs, idx, rl, v, "PTR")
        lo, hi, _ = self._limits(keys, has_opt, offs + 4 + opt_body, rl - opt_body, v, first_def, rowidx)
        valid = ((tf & TEST_INVALIDATING) == 0) & ((pf & PARM_INVALIDATING) == 0) & has_res & np.isfinite(res)
        passed = self._passed(tf, pf, res, valid, lo, hi)

        g = (head.astype(np.uint16) << 8) | site
        part = self._assign_parts(idx, g, markers, carry)
        self._count_exec(keys, part)
        keep = self._split_outside("P", part, tf, pf)
        cols = {
            "part_seq": part,
            "test_idx": keys,
            "test_num": nums,
            "head_num": head,
            "site_num": site,
            "test_flg": tf,
            "parm_flg": pf,
            "result": Masked(res, has_res),
            "lo_limit": lo,
            "hi_limit": hi,
            "valid": valid,
            "passed": passed,
            "rec_seq": seqs,
        }
        self._emit_tests("results", cols, keep)

    def _count_exec(self, keys: np.ndarray, part: np.ndarray) -> None:
        """Executions inside parts per test (``TestInfo.exec_count``, set at the end)."""
        if len(keys):
            inside = part >= 0
            c = np.bincount(keys if bool(inside.all()) else keys[inside], minlength=len(self.reg.tests))
            if len(c) > len(self.exec_counts):
                c[: len(self.exec_counts)] += self.exec_counts
                self.exec_counts = c
            else:
                self.exec_counts[: len(c)] += c

    def _emit_tests(self, table: str, cols: dict, keep: np.ndarray | None) -> None:
        if keep is not None:
            cols = {k: (c[keep] if isinstance(c, np.ndarray) else c.take(keep)) for k, c in cols.items()}
        if self.header is None:
            self._pending_rows.append((table, cols))
        else:
            self._emit(table, cols)

    # -- MPR -----------------------------------------------------------------------------------------
    def _mpr(self, v: Views, heads, offs_all, rl_all, idx, markers, carry) -> None:
        b = v.b
        offs, rl, seqs, nums, head, site, tf, pf, _ = self._test_fields(heads, offs_all, rl_all, idx, "MPR")
        icnt = np.where(rl >= 10, v.u2[offs + 12], 0).astype(np.int64)
        rcnt = np.where(rl >= 12, v.u2[offs + 14], 0).astype(np.int64)
        stat_bytes = (icnt + 1) // 2
        # arrays are present when the record reaches them; a record cut inside them is corrupt
        stat_present = rl > 12
        self._check_overrun(
            stat_present & (icnt > 0) & (12 + stat_bytes > rl), offs, idx, "MPR", "RTN_STAT", 12 + stat_bytes, rl
        )
        icnt_eff = np.where(stat_present, icnt, 0)
        rslt_body = 12 + np.where(stat_present, stat_bytes, 0)
        rslt_present = rl > rslt_body
        self._check_overrun(
            rslt_present & (rcnt > 0) & (rslt_body + 4 * rcnt > rl),
            offs,
            idx,
            "MPR",
            "RTN_RSLT",
            rslt_body + 4 * rcnt,
            rl,
        )
        rcnt_eff = np.where(rslt_present | (rcnt == 0), rcnt, 0)
        txt_body = rslt_body + 4 * rcnt_eff
        has_txt = rl > txt_body
        L1 = np.where(has_txt, b[offs + 4 + np.minimum(txt_body, rl - 1)], 0).astype(np.int64)
        self._check_overrun(has_txt & (txt_body + 1 + L1 > rl), offs, idx, "MPR", "TEST_TXT", txt_body + 1 + L1, rl)
        alarm_body = txt_body + 1 + L1
        has_alarm = rl > alarm_body
        L2 = np.where(has_alarm, b[offs + 4 + np.minimum(alarm_body, rl - 1)], 0).astype(np.int64)
        self._check_overrun(
            has_alarm & (alarm_body + 1 + L2 > rl), offs, idx, "MPR", "ALARM_ID", alarm_body + 1 + L2, rl
        )
        opt_body = alarm_body + 1 + L2
        has_opt = rl > opt_body

        keys = self.reg.resolve("M", v, nums, offs + 4 + txt_body + 1, L1, seqs)
        rowidx = np.arange(len(idx))
        first_def = self._establish_defaults("M", keys, has_opt, offs, idx, rl, v, "MPR")
        lo, hi, dsrc = self._limits(keys, has_opt, offs + 4 + opt_body, rl - opt_body, v, first_def, rowidx)
        g = (head.astype(np.uint16) << 8) | site
        part = self._assign_parts(idx, g, markers, carry)
        self._count_exec(keys, part)
        rec_ok = ((tf & TEST_INVALIDATING) == 0) & ((pf & PARM_INVALIDATING) == 0)

        # one row per (record, pin index k)
        npins = np.maximum(icnt_eff, rcnt_eff)
        rec = np.repeat(np.arange(len(idx)), npins)
        k = ramp(npins)
        has_r = k < rcnt_eff[rec]
        rpos = offs[rec] + 4 + rslt_body[rec] + 4 * k
        res = np.where(has_r, v.f4[np.where(has_r, rpos, 0)], np.float32(np.nan)).astype(np.float32)
        has_s = k < icnt_eff[rec]
        sbyte = b[np.where(has_s, offs[rec] + 16 + k // 2, 0)]
        stat = np.where(k % 2 == 0, sbyte & 0x0F, sbyte >> 4).astype(np.uint8)
        # pin (PMR index): the record's own RTN_INDX when present, else the test's default list
        rtn_body = opt_body + 20
        own_idx = has_opt & (rl >= rtn_body + 2 * icnt) & (icnt > 0) & (rl > rtn_body)
        pmr = np.full(len(rec), -1, np.int64)
        if own_idx.any():
            sel = own_idx[rec] & has_s
            pmr[sel] = v.u2[offs[rec[sel]] + 4 + rtn_body[rec[sel]] + 2 * k[sel]]
        need = (pmr < 0) & has_s
        if need.any():
            dflt_off, dflt_len, dflt_vals = self._mpr_default_pins()
            kk = np.where(dsrc >= 0, dsrc, keys)[rec[need]]
            ok = k[need] < dflt_len[kk]
            vals = np.full(int(need.sum()), -1, np.int64)
            vals[ok] = dflt_vals[dflt_off[kk[ok]] + k[need][ok]]
            pmr[need] = vals
        valid = rec_ok[rec] & has_r & np.isfinite(res)
        passed = self._passed_pin(tf[rec], pf[rec], res, valid, lo[rec], hi[rec])
        keep_rec = self._split_outside("M", part, tf, pf)
        cols = {
            "part_seq": part[rec],
            "test_idx": keys[rec],
            "test_num": nums[rec],
            "head_num": head[rec],
            "site_num": site[rec],
            "pin_seq": k.astype(np.int32),
            "pmr_index": Masked(pmr, pmr >= 0),
            "result": Masked(res, has_r),
            "rtn_stat": Masked(stat, has_s),
            "test_flg": tf[rec],
            "parm_flg": pf[rec],
            "lo_limit": lo[rec],
            "hi_limit": hi[rec],
            "valid": valid,
            "passed": passed,
            "rec_seq": seqs[rec],
        }
        keep = None if keep_rec is None else np.flatnonzero(part[rec] >= 0)
        self._emit_tests("mpr_results", cols, keep)

    def _mpr_default_pins(self):
        tests = self.reg.tests
        lens = np.array([len(t.rtn_indx or ()) for t in tests], np.int64)
        off = np.zeros(len(tests), np.int64)
        if len(tests):
            off[1:] = np.cumsum(lens)[:-1]
        vals = np.array([p for t in tests for p in (t.rtn_indx or ())] or [0], np.int64)
        return off, lens, vals

    # -- FTR -----------------------------------------------------------------------------------------
    def _ftr(self, v: Views, heads, offs_all, rl_all, idx, markers, carry) -> None:
        b = v.b
        offs, rl, seqs, nums, head, site, tf, opt, _ = self._test_fields(heads, offs_all, rl_all, idx, "FTR")
        n = len(idx)
        has_opt = rl >= 8
        base = offs + 4

        def fixed(view, body_pos: int, width: int, bit: int | None) -> Masked:
            present = rl >= body_pos + width
            if bit is not None:
                present = present & ((opt & (1 << bit)) == 0)
            vals = view[np.where(present, base + body_pos, 0)]
            return Masked(vals, present)

        cycl = fixed(v.u4, 8, 4, 0)
        rel_vadr = fixed(v.u4, 12, 4, 1)
        rept = fixed(v.u4, 16, 4, 2)
        nfail = fixed(v.u4, 20, 4, 3)
        xfail = fixed(v.i4, 24, 4, 4)
        yfail = fixed(v.i4, 28, 4, 4)
        voff = fixed(v.i2, 32, 2, 5)
        j = np.where(rl >= 36, v.u2[np.where(rl >= 36, base + 34, 0)], 0).astype(np.int64)
        kc = np.where(rl >= 38, v.u2[np.where(rl >= 38, base + 36, 0)], 0).astype(np.int64)

        pos = np.full(n, 38, np.int64)
        pos = np.minimum(pos, rl)

        def take_array(width_bytes: np.ndarray, fld: str) -> tuple[np.ndarray, np.ndarray]:
            nonlocal pos
            present = pos < rl
            size = np.where(present, width_bytes, 0)
            self._check_overrun(present & (pos + size > rl), offs, idx, "FTR", fld, pos + size, rl)
            start = pos.copy()
            pos = pos + size
            return start, present

        def take_cn(fld: str) -> Strings:
            nonlocal pos
            present = pos < rl
            ln = np.where(present, b[base + np.minimum(pos, rl - 1)], 0).astype(np.int64)
            self._check_overrun(present & (pos + 1 + ln > rl), offs, idx, "FTR", fld, pos + 1 + ln, rl)
            s = gather_bytes(b, base + pos + 1, ln, present & (ln > 0))  # empty = missing (P11)
            pos = pos + np.where(present, 1 + ln, 0)
            return s

        def take_dn(fld: str) -> Strings:
            nonlocal pos
            present = pos + 2 <= rl
            self._check_overrun((pos < rl) & ~present, offs, idx, "FTR", fld, pos + 2, rl)
            bits = np.where(present, v.u2[base + np.minimum(pos, rl - 2)], 0).astype(np.int64)
            nbytes = (bits + 7) // 8
            self._check_overrun(present & (pos + 2 + nbytes > rl), offs, idx, "FTR", fld, pos + 2 + nbytes, rl)
            s = gather_bytes(b, base + pos + 2, nbytes, present & (bits > 0), binary=True)
            pos = pos + np.where(present, 2 + nbytes, 0)
            return s

        rtn_indx_s, rtn_indx_p = take_array(2 * j, "RTN_INDX")
        rtn_stat_s, rtn_stat_p = take_array((j + 1) // 2, "RTN_STAT")
        pgm_indx_s, pgm_indx_p = take_array(2 * kc, "PGM_INDX")
        pgm_stat_s, pgm_stat_p = take_array((kc + 1) // 2, "PGM_STAT")
        fail_pin = take_dn("FAIL_PIN")
        vect_nam = take_cn("VECT_NAM")
        time_set = take_cn("TIME_SET")
        op_code = take_cn("OP_CODE")
        name_pos = pos.copy()
        name_present = pos < rl
        # TEST_TXT: only its length is needed here (the test's name comes from the registry)
        name_len = np.where(name_present, b[base + np.minimum(name_pos, rl - 1)], 0).astype(np.int64)
        self._check_overrun(
            name_present & (pos + 1 + name_len > rl), offs, idx, "FTR", "TEST_TXT", pos + 1 + name_len, rl
        )
        pos = pos + np.where(name_present, 1 + name_len, 0)
        alarm_id = take_cn("ALARM_ID")
        prog_txt = take_cn("PROG_TXT")
        rslt_txt = take_cn("RSLT_TXT")
        patg_p = pos < rl
        patg_v = b[base + np.minimum(pos, rl - 1)].astype(np.uint8)
        patg = Masked(patg_v, patg_p & (patg_v != 255))  # 255: no pattern generator (the spec's missing value)
        pos = pos + patg_p
        spin_map = take_dn("SPIN_MAP")

        keys = self.reg.resolve("F", v, nums, base + name_pos + 1, name_len, seqs)
        g = (head.astype(np.uint16) << 8) | site
        part = self._assign_parts(idx, g, markers, carry)
        self._count_exec(keys, part)
        passed = np.where((tf & TEST_NO_PASS_FAIL) == 0, np.where((tf & TEST_FAILED) == 0, 1, 0), -1).astype(np.int8)

        def u2_list(start, present, cnt) -> Ragged:
            c = np.where(present, cnt, 0)
            r = ramp(c)
            vals = v.u2[np.repeat(start + base, c) + 2 * r] if len(r) else np.zeros(0, np.uint16)
            off = np.zeros(n + 1, np.int64)
            np.cumsum(c, out=off[1:])
            return Ragged(off, vals.astype(np.uint16), present & (cnt > 0))

        def nib_list(start, present, cnt) -> Ragged:
            c = np.where(present, cnt, 0)
            r = ramp(c)
            if len(r):
                by = b[np.repeat(start + base, c) + r // 2]
                vals = np.where(r % 2 == 0, by & 0x0F, by >> 4).astype(np.uint8)
            else:
                vals = np.zeros(0, np.uint8)
            off = np.zeros(n + 1, np.int64)
            np.cumsum(c, out=off[1:])
            return Ragged(off, vals, present & (cnt > 0))

        cols = {
            "part_seq": part,
            "test_idx": keys,
            "test_num": nums,
            "head_num": head,
            "site_num": site,
            "test_flg": tf,
            "opt_flag": Masked(opt, has_opt),
            "passed": passed,
            "cycl_cnt": cycl,
            "rel_vadr": rel_vadr,
            "rept_cnt": rept,
            "num_fail": nfail,
            "xfail_ad": xfail,
            "yfail_ad": yfail,
            "vect_off": voff,
            "rtn_indx": u2_list(rtn_indx_s, rtn_indx_p, j),
            "rtn_stat": nib_list(rtn_stat_s, rtn_stat_p, j),
            "pgm_indx": u2_list(pgm_indx_s, pgm_indx_p, kc),
            "pgm_stat": nib_list(pgm_stat_s, pgm_stat_p, kc),
            "fail_pin": fail_pin,
            "vect_nam": vect_nam,
            "time_set": time_set,
            "op_code": op_code,
            "alarm_id": alarm_id,
            "prog_txt": prog_txt,
            "rslt_txt": rslt_txt,
            "patg_num": patg,
            "spin_map": spin_map,
            "rec_seq": seqs,
        }
        keep = self._split_outside("F", part, tf, None)
        self._emit_tests("ftr_results", cols, keep)

    # -- parts ---------------------------------------------------------------------------------------
    def _emit_parts(self, rows: list[tuple]) -> None:
        (seq, head, site, flg, ntest, hbin, sbin, x, y, tt, pid, ptxt, pfix, wafer, pir_seq, rec_seq, boff) = zip(
            *rows, strict=False
        )
        n = len(rows)

        def col(vals, dtype, missing=None) -> Masked:
            ok = np.array([v is not None and v != missing for v in vals], bool)
            arr = np.array([v if (v is not None and v != missing) else 0 for v in vals], dtype)
            return Masked(arr, ok)

        flg_a = np.array([f if f is not None else 0 for f in flg], np.uint8)
        no_ind = (flg_a & PART_NO_PASS_FAIL) != 0
        passed = Masked(((flg_a & PART_FAILED) == 0), ~no_ind)
        self.res.parts += n
        cols = {
            "part_seq": np.array(seq, np.int64),
            "head_num": np.array(head, np.uint8),
            "site_num": np.array(site, np.uint8),
            "part_flg": flg_a,
            "num_test": col(ntest, np.uint16),
            "hard_bin": col(hbin, np.uint16),
            "soft_bin": col(sbin, np.uint16, MISSING_SOFT_BIN),
            "x": col(x, np.int16, MISSING_XY),
            "y": col(y, np.int16, MISSING_XY),
            "test_time_ms": col(tt, np.uint32, 0),
            "part_id": [p or None for p in pid],
            "part_txt": [p or None for p in ptxt],
            "part_fix": [p or None for p in pfix],
            "wafer_seq": col(wafer, np.int32),
            "passed": passed,
            "abort": (flg_a & PART_ABNORMAL_END) != 0,
            "supersedes_id": (flg_a & PART_SUPERSEDES_ID) != 0,
            "supersedes_xy": (flg_a & PART_SUPERSEDES_XY) != 0,
            "pir_rec_seq": col(pir_seq, np.int64),
            "rec_seq": np.array(rec_seq, np.int64),
            "byte_offset": np.array(boff, np.int64),
        }
        if self.header is None:
            self._pending_rows.append(("parts", cols))
        else:
            self._emit("parts", cols)

    # -- end -------------------------------------------------------------------------------------------
    def finish(self) -> ParseResult:
        res = self.res
        if self.header is None:
            self.ensure_header()
        if self.open_parts:
            n = len(self.open_parts)
            res.dropped_parts = sorted(self.open_parts.values())
            self.warn(
                "pir_without_prr_at_end",
                f"{n} part(s) opened by a PIR had no PRR at the end of the file; their results are dropped",
                count=n,
            )
        for head in list(self.open_wafers):
            w = self.open_wafers.pop(head)
            self.warn("wir_without_wrr", "a wafer started by a WIR had no WRR")
            self._close_wafer(w, None)
        if res.mrr is None and res.records:
            self.warn("no_mrr", "the file has no MRR (master results record)")
        for kind, n in self.outside_counts.items():
            if n:
                rec = {"P": "PTR", "M": "MPR", "F": "FTR"}[kind]
                self.warn(
                    f"{rec.lower()}_outside_part",
                    f"{n} {rec} record(s) outside any PIR/PRR part are not results",
                    count=n,
                )
        self.flush_low()
        res.wafers = sorted(self.wafers, key=lambda w: w["wafer_seq"])
        self.reg.inherit_number_defaults()
        res.tests = self.reg.tests
        for i in np.flatnonzero(self.exec_counts).tolist():
            res.tests[i].exec_count += int(self.exec_counts[i])
        counts = {}
        for c in np.flatnonzero(self.record_counts).tolist():
            rt = BY_CODE.get(c)
            if rt is not None:
                counts[rt.name] = int(self.record_counts[c])
        res.record_counts = counts
        res.warnings = list(self._warn.values())
        return res


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _clean_id(s: str) -> str:
    """Identifiers (lot ids, wafer ids) without control characters: some testers pad Cn fields with NULs."""
    return _CONTROL.sub("", s).strip()


def _hex_or_str(x: Any) -> str:
    return x.hex() if isinstance(x, bytes) else str(x)


# what json.dumps(..., ensure_ascii=False, allow_nan=False, default=...) builds on every call, built once
_FIELDS_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=_hex_or_str)
_TEXT_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=str)


def _json(d: Any) -> str:
    if d is None:
        return "null"
    try:  # the common case, no NaN: bytes become hex through ``default``, as ``conv`` does below
        return _FIELDS_JSON.encode(d)
    except ValueError:
        pass

    def conv(x: Any) -> Any:
        if isinstance(x, bytes):
            return x.hex()
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        if isinstance(x, list):
            return [conv(v) for v in x]
        if isinstance(x, float) and x != x:
            return None
        return x

    return _dumps(conv(d))


def _dumps(v: Any) -> str:
    return _TEXT_JSON.encode(v)


_ZPAD = bytes(PAD)


def parse(src: Any, sink: Sink | None = None, options: ReaderOptions | None = None) -> ParseResult:
    """Parse an STDF input (path, bytes, file object or ByteSource) into ``sink``.

    Raises a ``StdfError`` subclass with the byte offset and record type on bad input. A truncated
    file raises ``TruncatedError`` unless ``options.accept_truncated``, in which case the complete
    records are kept, the partial part is dropped and ``result.partial`` is True.
    """
    opts = options or ReaderOptions()
    source = src if isinstance(src, ByteSource) else ByteSource(src, block_size=opts.chunk_bytes)
    p = _Parser(sink, opts)
    pending = b""
    started = False
    walk_state = WalkState()
    try:
        for parts in source.block_parts():
            size = sum(map(len, parts))
            if not started:
                if len(pending) + size < 6:
                    pending = bytes(pending) + b"".join(parts)
                    continue
                first = parts[0] if len(parts[0]) >= 6 else b"".join(parts)
                p.start(bytes(pending) + bytes(first[:6]))
                started = True
            end = len(pending) + size
            c0 = time.thread_time()
            padded = b"".join((pending, *parts, _ZPAD))  # the one copy of the chunk
            del parts
            offs, stop = walk_fast(padded, end, p.be, state=walk_state)
            c1 = time.thread_time()
            p.chunk(padded, offs)
            cpu = p.res.cpu_s
            cpu["walk"] += c1 - c0
            cpu["decode"] += time.thread_time() - c1
            p.res.records += len(offs)
            pending = padded[stop:end]
            p.base += stop
            p.res.bytes_decompressed = p.base
            if opts.progress is not None:
                opts.progress(source, p.res)
    except TruncatedError as stream_end:  # truncated compressed stream
        if not started:
            raise
        # the record cut by the stream's end, if one was: its offset is more useful than the stream's
        exc = _truncation(p, pending) if pending else stream_end
        if not opts.accept_truncated:
            raise exc from None
        p.res.truncated = exc
        p.res.partial = True
        pending = b""
    if not started:
        if pending:
            p.start(pending)  # raises the precise error for a tiny file
        raise NotStdfError("empty file: no STDF data", offset=0)
    if pending:
        exc = _truncation(p, pending)
        if not opts.accept_truncated:
            raise exc
        p.res.truncated = exc
        p.res.partial = True
    c0 = time.thread_time()
    res = p.finish()
    res.cpu_s["decode"] += time.thread_time() - c0
    res.bytes_decompressed = p.base + len(pending)
    return res


def _truncation(p: _Parser, tail: bytes) -> TruncatedError:
    off = p.base
    if len(tail) >= 4:
        ln = (tail[0] << 8 | tail[1]) if p.be else (tail[0] | tail[1] << 8)
        name = name_of(tail[2] << 8 | tail[3])
        msg = (
            f"truncated file: the last record declares REC_LEN {ln} but only {len(tail) - 4} body bytes "
            f"remain; {p.res.records} complete records precede it"
        )
        return TruncatedError(msg, offset=off, record=name, records_before=p.res.records)
    msg = (
        f"truncated file: {len(tail)} trailing byte(s) are too short for a record header; "
        f"{p.res.records} complete records precede them"
    )
    return TruncatedError(msg, offset=off, records_before=p.res.records)


def check_header(data: Any, limits: DecompressionLimits | None = None) -> dict[str, Any]:
    """Validate the start of an STDF input (container format, FAR, version) without reading it all.

    Returns ``{"compression", "byte_order", "cpu_type"}``; raises the reader's precise error otherwise.
    """
    with ByteSource(data, block_size=64 * 1024, limits=limits) as src:
        head = b""
        for block in src.blocks():
            head += block
            if len(head) >= 6:
                break
        p = _Parser(None, ReaderOptions())
        if not head:
            raise NotStdfError("empty file: no STDF data", offset=0)
        p.start(head)
        return {"compression": src.format, "byte_order": "big" if p.be else "little", "cpu_type": p.cpu}
