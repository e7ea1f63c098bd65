"""The reader's vectorised decoders (PTR, MPR, FTR) and its errors, record by record.

``test_writer`` proves the per-record decoder; these tests prove what ``parse`` emits: every short form
of the high-volume records (as the last record of the file and in the middle of one, both byte orders),
default-data carry-forward, each bad-input error with its offset and record, and a property-based
writer -> reader round trip of whole multi-site files.
"""

from __future__ import annotations

import bz2
import gzip
import io
import math
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratum.devtools.stdf.writer import StdfWriter, encode_body, encode_record
from stratum.stdf.columns import Masked, Ragged, Strings
from stratum.stdf.errors import (
    CompressedStreamError,
    NotStdfError,
    RecordFormatError,
    TruncatedError,
    UnsupportedVersionError,
)
from tests.support import read_all
from tests.unit.test_writer import SAMPLES

BYTE_ORDERS = [pytest.param(False, id="le"), pytest.param(True, id="be")]
# a record after the one under test whose bytes would show up as absurd values if read by mistake
NOISE = ("DTR", {"TEXT_DAT": "\x7f" * 40})


def f32(x: float) -> float:
    return float(np.float32(x))


def pylist(col: Any) -> list:
    """A reader column as a Python list (None for nulls)."""
    if isinstance(col, Masked):
        return [v if ok else None for v, ok in zip(col.values.tolist(), col.valid.tolist(), strict=True)]
    if isinstance(col, Strings):
        return col.to_list()
    if isinstance(col, Ragged):
        vals = col.values.tolist()
        out = [vals[a:z] for a, z in zip(col.offsets[:-1].tolist(), col.offsets[1:].tolist(), strict=True)]
        return out if col.valid is None else [v if ok else None for v, ok in zip(out, col.valid.tolist(), strict=True)]
    if isinstance(col, np.ndarray):
        return col.tolist()
    return list(col)


def stdf(records: list[tuple[str, dict]], be: bool, *, compression: str | None = None) -> bytes:
    buf = io.BytesIO()
    with StdfWriter(buf, byte_order="big" if be else "little", compression=compression) as w:
        for name, fields in records:
            w.write_record(name, fields)
    return buf.getvalue()


def one_row(data: bytes, table: str) -> tuple[dict, Any]:
    res, sink = read_all(data)
    t = sink.table(table)
    return {k: pylist(v) for k, v in t.items()}, res


def framed(rec: tuple[str, dict], position: str) -> list[tuple[str, dict]]:
    """MIR, PIR, the record, then either nothing (it ends the file) or noise + PRR + MRR."""
    recs = [("MIR", SAMPLES["MIR"]), ("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1}), rec]
    if position == "middle":
        recs += [NOISE, ("PRR", SAMPLES["PRR"] | {"SITE_NUM": 1}), ("MRR", SAMPLES["MRR"])]
    return recs


def prefixes(fields: dict) -> list[dict]:
    keys = list(fields)
    return [{k: fields[k] for k in keys[:n]} for n in range(len(keys) + 1)]


def limit(p: dict, name: str, use_default_bit: int, no_limit_bit: int) -> float | None:
    """The record's own limit, or None: the record under test is its test's first, so there is no
    default to fall back on (stdf-semantics §5: bits 6/7 win over 4/5)."""
    opt = p.get("OPT_FLAG")
    if opt is None or name not in p or opt & (1 << use_default_bit) or opt & (1 << no_limit_bit):
        return None
    return f32(p[name])


def indicated(tf: int) -> int:
    assert not tf & 0x40  # the samples carry a pass/fail indication
    return 0 if tf & 0x80 else 1


# -- PTR ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("position", ["last", "middle"])
@pytest.mark.parametrize("be", BYTE_ORDERS)
@pytest.mark.parametrize("opt", [0x4E, 0x02, 0x32, 0xC2])
def test_ptr_every_short_form(opt: int, be: bool, position: str) -> None:
    full = SAMPLES["PTR"] | {"SITE_NUM": 1, "OPT_FLAG": opt}
    for p in prefixes(full)[3:]:  # TEST_NUM, HEAD_NUM and SITE_NUM identify the record
        got, res = one_row(stdf(framed(("PTR", p), position), be), "results")
        where = (opt, list(p)[-1])
        tf, pf = p.get("TEST_FLG", 0), p.get("PARM_FLG", 0)
        result = f32(p["RESULT"]) if "RESULT" in p else None
        assert got["test_num"] == [1000] and got["head_num"] == [1] and got["site_num"] == [1], where
        assert got["test_flg"] == [tf] and got["parm_flg"] == [pf], where
        assert got["result"] == [result], where
        lo, hi = got["lo_limit"][0], got["hi_limit"][0]
        exp_lo, exp_hi = limit(p, "LO_LIMIT", 4, 6), limit(p, "HI_LIMIT", 5, 7)
        assert (None if math.isnan(lo) else lo) == exp_lo, where
        assert (None if math.isnan(hi) else hi) == exp_hi, where
        assert got["valid"] == [result is not None and tf & 0x3F == 0 and pf & 0x07 == 0], where
        assert got["passed"] == [indicated(tf)], where
        t = res.tests[got["test_idx"][0]]
        assert t.name == p.get("TEST_TXT", ""), where
        assert t.units == (p.get("UNITS") or None), where
        assert res.rows.get("results") == 1 and res.unknown_counts == {}, where


def test_ptr_default_data_carries_forward() -> None:
    """P2/P3: a first PTR outside any part sets the defaults and is not a result; short PTRs inherit
    them; bits 4/5 take the default for one limit; bits 6/7 remove a limit for that record only."""
    # the first record only carries defaults: "test not executed", no result flags
    first = SAMPLES["PTR"] | {"SITE_NUM": 1, "TEST_FLG": 0x10, "PARM_FLG": 0, "OPT_FLAG": 0x02}
    first |= {"LO_LIMIT": -1.0, "HI_LIMIT": 2.0}
    short = {"TEST_NUM": 1000, "HEAD_NUM": 1, "SITE_NUM": 1, "TEST_FLG": 0, "PARM_FLG": 0, "RESULT": 1.75}
    short |= {"TEST_TXT": "VDD_HI", "ALARM_ID": ""}
    own_hi = short | {"OPT_FLAG": 0x12, "RES_SCAL": 0, "LLM_SCAL": 0, "HLM_SCAL": 0, "LO_LIMIT": 9.0, "HI_LIMIT": 3.0}
    no_lo = own_hi | {"OPT_FLAG": 0x62}  # no low limit; HI_LIMIT from the default
    records = [("MIR", SAMPLES["MIR"]), ("PTR", first), ("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1})]
    records += [("PTR", short), ("PTR", own_hi), ("PTR", no_lo), ("PTR", short)]
    records += [("PRR", SAMPLES["PRR"] | {"SITE_NUM": 1})]
    for be in (False, True):
        got, res = one_row(stdf(records, be), "results")
        lo = [None if math.isnan(v) else v for v in got["lo_limit"]]
        hi = [None if math.isnan(v) else v for v in got["hi_limit"]]
        assert lo == [-1.0, -1.0, None, -1.0]
        assert hi == [2.0, 3.0, 2.0, 2.0]
        assert len({*got["test_idx"]}) == 1
        assert [w.code for w in res.warnings if "outside" in w.code] == []  # default-only PTRs are not counted
        t = res.tests[got["test_idx"][0]]
        assert (t.lo_limit, t.hi_limit, t.units) == (-1.0, 2.0, "V")


# -- MPR ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("position", ["last", "middle"])
@pytest.mark.parametrize("be", BYTE_ORDERS)
@pytest.mark.parametrize("opt", [0x02, 0xC2])
def test_mpr_every_short_form(opt: int, be: bool, position: str) -> None:
    full = SAMPLES["MPR"] | {"OPT_FLAG": opt}
    for p in prefixes(full)[3:]:
        got, res = one_row(stdf(framed(("MPR", p), position), be), "mpr_results")
        where = (opt, list(p)[-1])
        stat = p.get("RTN_STAT", [])
        rslt = p.get("RTN_RSLT", [])
        npins = max(len(stat), len(rslt))
        if npins == 0:
            assert got == {} or got["test_num"] == [], where
            continue
        tf, pf = p.get("TEST_FLG", 0), p.get("PARM_FLG", 0)
        lo, hi = limit(p, "LO_LIMIT", 4, 6), limit(p, "HI_LIMIT", 5, 7)
        rec_ok = tf & 0x3F == 0 and pf & 0x07 == 0
        exp_result = [f32(rslt[k]) if k < len(rslt) else None for k in range(npins)]
        exp_valid = [r is not None and rec_ok for r in exp_result]
        exp_passed = []
        for r, ok in zip(exp_result, exp_valid, strict=True):
            if ok and (lo is not None or hi is not None):
                lo_ok = lo is None or r > lo or (r == lo and pf & 0x40)
                hi_ok = hi is None or r < hi or (r == hi and pf & 0x80)
                exp_passed.append(int(bool(lo_ok and hi_ok)))
            else:
                exp_passed.append(indicated(tf))
        indx = p.get("RTN_INDX")
        assert got["pin_seq"] == list(range(npins)), where
        assert got["result"] == exp_result, where
        assert got["rtn_stat"] == [stat[k] if k < len(stat) else None for k in range(npins)], where
        assert got["pmr_index"] == [indx[k] if indx and k < len(stat) else None for k in range(npins)], where
        assert got["valid"] == exp_valid, where
        assert got["passed"] == exp_passed, where
        los = [None if math.isnan(v) else v for v in got["lo_limit"]]
        his = [None if math.isnan(v) else v for v in got["hi_limit"]]
        assert los == [lo] * npins and his == [hi] * npins, where
        assert res.tests[got["test_idx"][0]].name == p.get("TEST_TXT", ""), where


# -- FTR ---------------------------------------------------------------------------------------------
FTR_OPTIONAL = [  # (column, field, OPT_FLAG bit that invalidates it)
    ("cycl_cnt", "CYCL_CNT", 0),
    ("rel_vadr", "REL_VADR", 1),
    ("rept_cnt", "REPT_CNT", 2),
    ("num_fail", "NUM_FAIL", 3),
    ("xfail_ad", "XFAIL_AD", 4),
    ("yfail_ad", "YFAIL_AD", 4),
    ("vect_off", "VECT_OFF", 5),
]
FTR_TEXT = [("vect_nam", "VECT_NAM"), ("time_set", "TIME_SET"), ("op_code", "OP_CODE"), ("alarm_id", "ALARM_ID")]
FTR_TEXT += [("prog_txt", "PROG_TXT"), ("rslt_txt", "RSLT_TXT")]


@pytest.mark.parametrize("position", ["last", "middle"])
@pytest.mark.parametrize("be", BYTE_ORDERS)
@pytest.mark.parametrize("opt", [0xF6, 0x00])
def test_ftr_every_short_form(opt: int, be: bool, position: str) -> None:
    full = SAMPLES["FTR"] | {"OPT_FLAG": opt, "PATG_NUM": 3}
    for p in prefixes(full)[3:]:
        got, res = one_row(stdf(framed(("FTR", p), position), be), "ftr_results")
        where = (opt, list(p)[-1])
        tf = p.get("TEST_FLG", 0)
        assert got["test_num"] == [9000] and got["test_flg"] == [tf] and got["passed"] == [indicated(tf)], where
        assert got["opt_flag"] == [p.get("OPT_FLAG")], where
        for col, fld, bit in FTR_OPTIONAL:
            exp = p[fld] if fld in p and not opt & (1 << bit) else None
            assert got[col] == [exp], (where, col)
        for col, fld in [("rtn_indx", "RTN_INDX"), ("rtn_stat", "RTN_STAT"), ("pgm_indx", "PGM_INDX")]:
            assert got[col] == [p.get(fld) or None], (where, col)
        assert got["pgm_stat"] == [p.get("PGM_STAT") or None], where
        for col, fld in FTR_TEXT:  # zero-length strings are missing values (P11)
            assert got[col] == [p.get(fld) or None], (where, col)
        assert got["fail_pin"] == [p["FAIL_PIN"]["bit_data"] if "FAIL_PIN" in p else None], where
        assert got["spin_map"] == [None], where  # SPIN_MAP has zero bits: missing
        assert got["patg_num"] == [p.get("PATG_NUM")], where
        assert res.tests[got["test_idx"][0]].name == p.get("TEST_TXT", ""), where


def test_ftr_patg_num_255_is_missing() -> None:
    rec = SAMPLES["FTR"] | {"PATG_NUM": 255}
    got, _ = one_row(stdf(framed(("FTR", rec), "middle"), False), "ftr_results")
    assert got["patg_num"] == [None]


# -- every other record type -------------------------------------------------------------------------
@pytest.mark.parametrize("be", BYTE_ORDERS)
def test_every_low_volume_record_type_is_decoded(be: bool) -> None:
    """A file holding every record type: each low-volume record lands in ``records`` with its fields."""
    import json

    skip = {"FAR", "PTR", "MPR", "FTR", "PIR", "PRR"}
    names = [n for n in SAMPLES if n not in skip]
    body = [("PIR", {"HEAD_NUM": 1, "SITE_NUM": 3})] + [(n, SAMPLES[n]) for n in names]
    body += [("PRR", SAMPLES["PRR"])]
    res, sink = read_all(stdf(body, be))
    recs = {k: pylist(v) for k, v in sink.table("records").items()}
    by_type: dict[str, dict] = {}
    for rt, fields in zip(recs["rec_type"], recs["fields"], strict=True):
        by_type.setdefault(rt, json.loads(fields))
    texts = {k: pylist(v) for k, v in sink.table("texts").items()}  # DTR and GDR have their own table
    text = dict(zip(texts["rec_type"], texts["text"], strict=True))
    assert len(text) == len(texts["text"]) == 2
    by_type["DTR"] = {"TEXT_DAT": text["DTR"]}
    by_type["GDR"] = {"FLD_CNT": len(json.loads(text["GDR"])), "GEN_DATA": json.loads(text["GDR"])}

    def norm(x: Any) -> Any:  # the JSON form: bytes as hex (the samples' floats are exact in float32)
        if isinstance(x, bytes):
            return x.hex()
        if isinstance(x, dict):
            return {k: norm(v) for k, v in x.items()}
        if isinstance(x, list):
            return [norm(v) for v in x]
        return x

    for n in names:
        assert norm(by_type[n]) == norm(SAMPLES[n]), n
    assert res.record_counts == {n: 1 for n in ["FAR", "PIR", "PRR", *names]}
    assert res.unknown_counts == {}


# -- errors ------------------------------------------------------------------------------------------
def _good(be: bool = False) -> bytes:
    return stdf(framed(("PTR", SAMPLES["PTR"] | {"SITE_NUM": 1}), "middle"), be)


@pytest.mark.parametrize("be", BYTE_ORDERS)
def test_truncated_record_names_offset_and_record(be: bool) -> None:
    data = _good(be)
    cut = len(data) - 3  # inside the MRR body
    mrr_off = len(data) - len(encode_record("MRR", SAMPLES["MRR"], big_endian=be))
    with pytest.raises(TruncatedError) as ei:
        read_all(data[:cut])
    e = ei.value
    assert (e.offset, e.record, e.records_before) == (mrr_off, "MRR", 6)
    assert "truncated" in str(e) and "REC_LEN" in str(e)
    # two bytes into a header: still truncated, at the same offset
    with pytest.raises(TruncatedError) as ei:
        read_all(data[: mrr_off + 2])
    assert ei.value.offset == mrr_off


def test_truncated_accepted_keeps_complete_records() -> None:
    data = _good()
    res, sink = read_all(data[:-3], accept_truncated=True)
    assert res.partial and res.truncated is not None and res.truncated.record == "MRR"
    assert len(pylist(sink.table("results")["result"])) == 1


def test_first_record_not_far() -> None:
    data = encode_record("MIR", SAMPLES["MIR"], big_endian=False)
    with pytest.raises(NotStdfError) as ei:
        read_all(data)
    assert ei.value.offset == 0 and ei.value.record == "MIR" and "FAR" in str(ei.value)


@pytest.mark.parametrize("ver", [3, 5, 0])
def test_stdf_version_not_4(ver: int) -> None:
    data = bytearray(_good())
    data[5] = ver
    with pytest.raises(UnsupportedVersionError) as ei:
        read_all(bytes(data))
    assert (ei.value.offset, ei.value.record, ei.value.field) == (5, "FAR", "STDF_VER")


def test_impossible_far_rec_len() -> None:
    with pytest.raises(RecordFormatError) as ei:
        read_all(b"\x05\x00\x00\x0a\x02\x04\x00\x00\x00")
    assert (ei.value.offset, ei.value.record, ei.value.field) == (0, "FAR", "REC_LEN")


@pytest.mark.parametrize("name", ["PTR", "MPR", "FTR"])
def test_impossible_rec_len_for_a_test_record(name: str) -> None:
    """A test record too short for TEST_NUM, HEAD_NUM and SITE_NUM."""
    head = stdf([("MIR", SAMPLES["MIR"]), ("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1})], False)
    typ, sub = {"PTR": (15, 10), "MPR": (15, 15), "FTR": (15, 20)}[name]
    bad = struct.pack("<HBB", 3, typ, sub) + b"\x01\x00\x00"
    with pytest.raises(RecordFormatError) as ei:
        read_all(head + bad)
    assert (ei.value.offset, ei.value.record, ei.value.field) == (len(head), name, "REC_LEN")
    assert ei.value.records_before == 3


def test_string_running_past_its_record() -> None:
    """TEST_TXT declares more bytes than REC_LEN leaves: a corrupt record, not a short one."""
    head = stdf([("MIR", SAMPLES["MIR"]), ("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1})], False)
    body = struct.pack("<IBBBBf", 7, 1, 1, 0, 0, 1.0) + b"\x09ab"
    with pytest.raises(RecordFormatError) as ei:
        read_all(head + struct.pack("<HBB", len(body), 15, 10) + body)
    assert (ei.value.offset, ei.value.record, ei.value.field) == (len(head), "PTR", "TEST_TXT")


def test_low_volume_field_running_past_its_record() -> None:
    # SETUP_T .. CMOD_COD take 15 bytes; then LOT_ID claims 48 bytes where 2 remain
    mir = encode_body("MIR", SAMPLES["MIR"], big_endian=False)[:15] + b"\x30ab"
    data = encode_record("FAR", SAMPLES["FAR"], big_endian=False) + struct.pack("<HBB", len(mir), 1, 10) + mir
    with pytest.raises(RecordFormatError) as ei:
        read_all(data)
    assert (ei.value.offset, ei.value.record, ei.value.field) == (6, "MIR", "LOT_ID")


def test_unknown_records_are_counted_and_skipped() -> None:
    data = _good()
    mrr = encode_record("MRR", SAMPLES["MRR"], big_endian=False)
    odd = struct.pack("<HBB", 3, 180, 7) + b"abc"
    res, sink = read_all(data[: -len(mrr)] + odd + odd + mrr)
    assert res.unknown_counts == {"180/7": 2}
    assert "unknown_record" in [w.code for w in res.warnings]
    assert len(pylist(sink.table("results")["result"])) == 1


def test_cpu_type_contradicting_the_byte_order_warns() -> None:
    data = bytearray(_good(be=False))
    data[4] = 1  # CPU_TYPE says big-endian; the FAR REC_LEN bytes say little
    res, sink = read_all(bytes(data))
    assert res.header is not None and res.header.byte_order == "little"
    assert "byte_order_mismatch" in [w.code for w in res.warnings]
    assert pylist(sink.table("results")["result"]) == [f32(SAMPLES["PTR"]["RESULT"])]


@pytest.mark.parametrize("compression", ["gzip", "bzip2"])
def test_compression_detected_by_content(compression: str) -> None:
    plain = _good()
    packed = stdf(framed(("PTR", SAMPLES["PTR"] | {"SITE_NUM": 1}), "middle"), False, compression=compression)
    assert packed != plain
    a, ra = one_row(plain, "results")
    b, rb = one_row(packed, "results")
    assert repr(a) == repr(b)  # repr: NaN limits compare equal
    assert ra.record_counts == rb.record_counts


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress], ids=["gzip", "bzip2"])
def test_truncated_compressed_stream(compress: Any) -> None:
    packed = compress(_good())
    with pytest.raises((TruncatedError, CompressedStreamError)) as ei:
        read_all(packed[: len(packed) - 6])
    assert ei.value.code in ("truncated", "bad_compression")


# -- property-based round trip -----------------------------------------------------------------------
NAMES = {1: ["VDD"], 2: ["IDD", "IDD_STBY"], 7: ["LEAK"], 4_000_000: ["BIG_NUMBER_TEST_WITH_A_LONG_NAME"]}

result_values = st.floats(width=32, allow_nan=False, allow_infinity=False)
ptr_st = st.tuples(
    st.sampled_from([(n, name) for n, names in NAMES.items() for name in names]),
    result_values,
    st.sampled_from([0x00, 0x80, 0x02, 0x40, 0x10]),  # TEST_FLG
    st.sampled_from([0x00, 0x01, 0x04, 0xC0]),  # PARM_FLG
)


@st.composite
def lots(draw):
    sites = draw(st.lists(st.integers(0, 255), min_size=1, max_size=4, unique=True))
    touchdowns = draw(st.integers(1, 4))
    parts = []
    for _ in range(touchdowns):
        for s in sites:
            parts.append((s, draw(st.lists(ptr_st, max_size=6))))
    return sites, touchdowns, parts


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lot=lots(), be=st.booleans(), compression=st.sampled_from([None, "gzip", "bzip2"]))
def test_round_trip_multi_site_files(lot, be: bool, compression: str | None) -> None:
    """Writer -> reader gives back every result: values bit for bit, flags, tests (same number with
    different names stays apart), and the part each result belongs to, with sites interleaved."""
    sites, touchdowns, parts = lot
    n = len(sites)
    recs: list[tuple[str, dict]] = [("MIR", SAMPLES["MIR"])]
    truth = []  # (x, site, test_num, name, result, tf, pf)
    for td in range(touchdowns):
        group = parts[td * n : (td + 1) * n]
        for s, _ in group:
            recs.append(("PIR", {"HEAD_NUM": 1, "SITE_NUM": s}))
        # interleave the sites' PTRs round-robin, as a multi-site tester does
        depth = max((len(p) for _, p in group), default=0)
        for i in range(depth):
            for s, ptrs in group:
                if i < len(ptrs):
                    (num, name), r, tf, pf = ptrs[i]
                    x = td * 1000 + s
                    fields = {"TEST_NUM": num, "HEAD_NUM": 1, "SITE_NUM": s, "TEST_FLG": tf, "PARM_FLG": pf}
                    recs.append(("PTR", fields | {"RESULT": r, "TEST_TXT": name, "ALARM_ID": ""}))
                    truth.append((x, s, num, name, f32(r), tf, pf))
        for s, _ in group:
            prr = {"HEAD_NUM": 1, "SITE_NUM": s, "PART_FLG": 0, "NUM_TEST": 0, "HARD_BIN": 1, "SOFT_BIN": 1}
            recs.append(("PRR", prr | {"X_COORD": td * 1000 + s, "Y_COORD": td}))
    recs.append(("MRR", SAMPLES["MRR"]))
    res, sink = read_all(stdf(recs, be, compression=compression))
    partsrow = {k: pylist(v) for k, v in sink.table("parts").items()}
    assert len(partsrow["part_seq"]) == touchdowns * n
    x_of = dict(zip(partsrow["part_seq"], partsrow["x"], strict=True))
    got = []
    t = {k: pylist(v) for k, v in sink.table("results").items()}
    for i in range(len(t.get("result", []))):
        test = res.tests[t["test_idx"][i]]
        assert test.num == t["test_num"][i]
        got.append(
            (x_of[t["part_seq"][i]], t["site_num"][i], t["test_num"][i], test.name, t["result"][i])
            + (t["test_flg"][i], t["parm_flg"][i])
        )
    assert sorted(got) == sorted(truth)
    assert {(tt.num, tt.name) for tt in res.tests} == {(r[2], r[3]) for r in truth}
