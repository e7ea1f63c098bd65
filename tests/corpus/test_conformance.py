"""Conformance against the oracle (stdf-convert) on every corpus file (stdf-parsing §5).

Compared per file: record counts per type; every PTR (TEST_NUM, HEAD_NUM, SITE_NUM, TEST_FLG, PARM_FLG
exactly, RESULT bit for bit); the flattened MPR RTN_RSLT values; the PRR fixed fields; the FTR fields
that are present; and part bracketing against an independent ASOF join on sequence numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import CORPUS
from tests.support import read_all

stdf_convert = pytest.importorskip("stdf_convert")

pytestmark = pytest.mark.corpus

FILES = sorted(p.name for p in CORPUS.glob("*") if p.name != "SOURCES.md") if CORPUS.is_dir() else []

# Parts that own at least one test record (stdf-parsing §3): file -> (parts with tests, parts)
PARTS_WITH_TESTS = {
    "teradyne_a530_ws_be_lot3.stdf.gz": (809, 1619),
    "teradyne_catalyst_a595_3wafers_be.stdf.gz": (322, 336),
    "advantest_93k_ws_mpr.stdf": (129, 140),
}


@pytest.fixture(scope="module")
def parsed():
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            if not CORPUS.is_dir():
                pytest.skip(f"corpus not found at {CORPUS}")
            path = CORPUS / name
            res, sink = read_all(path, fallback_lot_id=name)
            oracle = stdf_convert.tables(str(path))
            cache[name] = (res, sink, oracle)
        return cache[name]

    return get


def _col(t, name):
    return t.column(name).to_numpy(zero_copy_only=False)


def _flag(t, name):
    return np.array([b[0] if b else 0 for b in t.column(name).to_pylist()], np.uint8)


@pytest.mark.parametrize("name", FILES)
def test_record_counts(parsed, name):
    res, _, oracle = parsed(name)
    expected = {k: t.num_rows for k, t in oracle.items() if k not in ("UNKNOWN", "RESERVED")}
    assert res.record_counts == expected
    assert res.records == sum(t.num_rows for t in oracle.values())


@pytest.mark.parametrize("name", FILES)
def test_ptr_results_bit_exact(parsed, name):
    res, sink, oracle = parsed(name)
    if "PTR" not in oracle:
        assert "results" not in sink.batches
        return
    o = oracle["PTR"].sort_by("sequence_number")
    ours = sink.table("results")
    seq = ours["rec_seq"] if ours else np.zeros(0, np.int64)
    oseq = _col(o, "sequence_number").astype(np.int64)
    inside = np.isin(oseq, seq)
    # every PTR not emitted as a result lies outside any part (counted in a warning)
    outside = {w.code: w.count for w in res.warnings}.get("ptr_outside_part", 0)
    assert len(seq) + outside + _default_only_outside(o, oseq, inside) == o.num_rows
    o = o.filter(inside)
    if not ours:
        assert o.num_rows == 0
        return
    assert np.array_equal(seq, _col(o, "sequence_number").astype(np.int64))
    assert np.array_equal(ours["test_num"], _col(o, "TEST_NUM"))
    assert np.array_equal(ours["head_num"], _col(o, "HEAD_NUM"))
    assert np.array_equal(ours["site_num"], _col(o, "SITE_NUM"))
    assert np.array_equal(ours["test_flg"], _flag(o, "TEST_FLG"))
    assert np.array_equal(ours["parm_flg"], _flag(o, "PARM_FLG"))
    res_o = _col(o, "RESULT").astype(np.float32)
    assert np.array_equal(ours["result"].values.view(np.uint32), res_o.view(np.uint32))


def _default_only_outside(o, oseq, inside) -> int:
    """PTRs outside parts that only carry default data (TEST_FLG bit 4, PARM_FLG 0) are dropped silently."""
    out = ~inside
    tf = _flag(o, "TEST_FLG")[out]
    pf = _flag(o, "PARM_FLG")[out]
    return int((((tf & 0x10) != 0) & (pf == 0)).sum())


@pytest.mark.parametrize("name", FILES)
def test_mpr_results_bit_exact(parsed, name):
    _, sink, oracle = parsed(name)
    if "MPR" not in oracle:
        return
    ours = sink.table("mpr_results")
    if not ours:
        return
    o = oracle["MPR"].sort_by("sequence_number")
    seq = np.unique(ours["rec_seq"]) if ours else np.zeros(0, np.int64)
    o = o.filter(np.isin(_col(o, "sequence_number").astype(np.int64), seq))
    flat = np.array([x for lst in o.column("RTN_RSLT").to_pylist() for x in (lst or [])], np.float32)
    have = ours["result"].valid
    assert np.array_equal(ours["result"].values[have].view(np.uint32), flat.view(np.uint32))
    stats = [x for lst in o.column("RTN_STAT").to_pylist() for x in (lst or [])]
    assert ours["rtn_stat"].values[ours["rtn_stat"].valid].tolist() == stats


@pytest.mark.parametrize("name", FILES)
def test_prr_fields(parsed, name):
    res, sink, oracle = parsed(name)
    if "PRR" not in oracle:
        assert res.parts == 0
        return
    o = oracle["PRR"].sort_by("sequence_number")
    ours = sink.table("parts")
    order = np.argsort(ours["rec_seq"])
    assert np.array_equal(ours["rec_seq"][order], _col(o, "sequence_number").astype(np.int64))
    assert np.array_equal(ours["head_num"][order], _col(o, "HEAD_NUM"))
    assert np.array_equal(ours["site_num"][order], _col(o, "SITE_NUM"))
    assert np.array_equal(ours["part_flg"][order], _flag(o, "PART_FLG"))
    assert np.array_equal(ours["hard_bin"].values[order], _col(o, "HARD_BIN"))
    soft = _col(o, "SOFT_BIN")
    assert np.array_equal(ours["soft_bin"].valid[order], soft != 65535)
    assert np.array_equal(ours["soft_bin"].values[order][soft != 65535], soft[soft != 65535])
    for ours_c, col in (("x", "X_COORD"), ("y", "Y_COORD")):
        ov = _col(o, col)
        assert np.array_equal(ours[ours_c].valid[order], ov != -32768)
        assert np.array_equal(ours[ours_c].values[order][ov != -32768], ov[ov != -32768])
    pid = o.column("PART_ID").to_pylist()
    assert [ours["part_id"][i] for i in order] == [p or None for p in pid]


@pytest.mark.parametrize("name", FILES)
def test_ftr_fields(parsed, name):
    _, sink, oracle = parsed(name)
    if "FTR" not in oracle:
        return
    ours = sink.table("ftr_results")
    if not ours:
        return
    o = oracle["FTR"].sort_by("sequence_number")
    o = o.filter(np.isin(_col(o, "sequence_number").astype(np.int64), ours["rec_seq"]))
    assert np.array_equal(ours["test_num"], _col(o, "TEST_NUM"))
    assert np.array_equal(ours["test_flg"], _flag(o, "TEST_FLG"))
    rl = _col(o, "rec_len")
    cycl = ours["cycl_cnt"]
    covered = rl >= 12
    assert np.array_equal(cycl.values[cycl.valid], _col(o, "CYCL_CNT")[covered & cycl.valid])
    names = o.column("VECT_NAM").to_pylist()
    got = ours["vect_nam"].to_list()
    assert [g or "" for g in got] == [n or "" for n in names]


@pytest.mark.parametrize("name", FILES)
def test_part_bracketing_matches_asof_join(parsed, name):
    _, sink, oracle = parsed(name)
    if "PTR" not in oracle:
        return
    # independent bracketing from oracle sequence numbers: a PTR belongs to the latest PIR on its
    # (head, site) unless a PRR on that (head, site) came after that PIR
    ev = []
    for rec, kind in (("PIR", 1), ("PRR", 2)):
        if rec in oracle:
            t = oracle[rec]
            ev.append(
                np.stack(
                    [
                        _col(t, "sequence_number").astype(np.int64),
                        _col(t, "HEAD_NUM").astype(np.int64) * 256 + _col(t, "SITE_NUM"),
                        np.full(t.num_rows, kind),
                    ],
                    1,
                )
            )
    ev = np.concatenate(ev) if ev else np.zeros((0, 3), np.int64)
    p = oracle["PTR"]
    pseq = _col(p, "sequence_number").astype(np.int64)
    pg = _col(p, "HEAD_NUM").astype(np.int64) * 256 + _col(p, "SITE_NUM")
    owner = np.full(len(pseq), -1)
    for g in np.unique(pg):
        e = ev[ev[:, 1] == g]
        e = e[np.argsort(e[:, 0])]
        if len(e) == 0:
            continue
        sel = pg == g
        j = np.searchsorted(e[:, 0], pseq[sel]) - 1
        ok = (j >= 0) & (e[np.maximum(j, 0), 2] == 1)
        owner[np.flatnonzero(sel)[ok]] = e[j[ok], 0]
    ours = sink.table("results")
    parts = sink.table("parts")
    expected_with_tests = len(np.unique(owner[owner >= 0]))
    got = len(np.unique(ours["part_seq"])) if ours else 0
    # parts that have a PRR (parts without one are not published)
    pir_of = dict(zip(parts["part_seq"].tolist(), parts["pir_rec_seq"].values.tolist(), strict=False)) if parts else {}
    closed_owner = set(pir_of.values())
    expected_with_tests = len({o_ for o_ in owner[owner >= 0].tolist() if o_ in closed_owner})
    got = len({s for s in np.unique(ours["part_seq"]).tolist() if s in pir_of}) if ours else 0
    assert got == expected_with_tests
    if name in PARTS_WITH_TESTS:
        assert (got, len(parts["part_seq"])) == PARTS_WITH_TESTS[name]
    # row-level: each result's part is the one opened by the owning PIR
    if ours:
        seq_to_owner = dict(zip(pseq.tolist(), owner.tolist(), strict=False))
        pir = np.array([pir_of.get(s, -2) for s in ours["part_seq"].tolist()])
        own = np.array([seq_to_owner[s] for s in ours["rec_seq"].tolist()])
        closed = np.isin(ours["part_seq"], parts["part_seq"])
        assert np.array_equal(pir[closed], own[closed])


LOW_VOLUME = (
    "FAR",
    "ATR",
    "VUR",
    "MIR",
    "MRR",
    "PCR",
    "HBR",
    "SBR",
    "PMR",
    "PGR",
    "PLR",
    "RDR",
    "SDR",
    "PSR",
    "NMR",
    "CNR",
    "SSR",
    "CDR",
    "WIR",
    "WRR",
    "WCR",
    "TSR",
    "STR",
    "BPS",
    "EPS",
    "GDR",
    "DTR",
)


def _norm(v):
    if isinstance(v, bytes) and len(v) == 1:
        return v[0]
    if isinstance(v, float):
        return np.float32(v).item()
    if isinstance(v, dict) and "bit_data" in v:
        return {"bit_count": v["bit_count"], "bit_data": bytes(v["bit_data"])}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


@pytest.mark.parametrize("name", FILES)
def test_every_low_volume_record_matches_oracle(name):
    """Every field our decoder returns for every structural record equals the oracle's value, and the
    decoded fields end where the record ends (so nothing is silently dropped)."""
    import struct

    from stratum.stdf import decode, spec
    from stratum.stdf.source import ByteSource

    with ByteSource(CORPUS / name) as src:
        raw = b"".join(src.blocks())
    be = raw[:2] == b"\x00\x02"
    oracle = stdf_convert.tables(str(CORPUS / name))
    idx: dict[str, int] = {}
    rows: dict[str, list] = {}
    o = 0
    while o + 4 <= len(raw):
        ln = struct.unpack_from(">H" if be else "<H", raw, o)[0]
        rt = spec.BY_CODE.get(spec.code(raw[o + 2], raw[o + 3]))
        if rt is not None and rt.name in LOW_VOLUME:
            i = idx.get(rt.name, 0)
            idx[rt.name] = i + 1
            if rt.name not in rows:
                rows[rt.name] = oracle[rt.name].sort_by("sequence_number").to_pylist()
            row = rows[rt.name][i]
            ours, used = decode.decode_counted(rt, raw[o + 4 : o + 4 + ln], be, o)
            assert used == ln, (rt.name, i, "bytes after the last field")
            for k, v in ours.items():
                if k == "GEN_DATA":
                    continue
                assert _norm(v) == _norm(row[k]), (rt.name, i, k)
        o += 4 + ln
