"""Synthetic lot generator and benchmark writer: the files are valid STDF (checked with the stdf_convert
oracle) and hold exactly the truth the generator returns."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stratum.devtools.stdf.benchfile import write_bench_file
from stratum.devtools.stdf.lots import (
    GeneratedLot,
    LotSpec,
    TestDef,
    default_bins,
    default_tests,
    die_map,
    write_lot,
)

stdf_convert = pytest.importorskip("stdf_convert")

SMALL = LotSpec(wafers=("W01", "W02"), die_diameter=10, sites=4, tests=tuple(default_tests(8, n_mpr=1, n_ftr=2)))


def _tables(path: Path) -> dict[str, Any]:
    return stdf_convert.tables(str(path))


def _b1(col: Any) -> np.ndarray:
    return np.frombuffer(b"".join(col.to_pylist()), np.uint8)


def _test_rows(tables: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return tables[kind].to_pylist() if kind in tables else []


def _bracket(tables: dict[str, Any]) -> list[tuple[str, dict[str, Any], int]]:
    """(kind, row, PRR index) for every PTR/MPR/FTR inside a PIR...PRR pair, pairing by (head, site)."""
    events = []
    for kind in ("PIR", "PRR", "PTR", "MPR", "FTR"):
        for row in _test_rows(tables, kind):
            events.append((row["sequence_number"], kind, row))
    events.sort(key=lambda e: e[0])
    open_parts: dict[tuple[int, int], list] = {}
    out = []
    n_prr = 0
    for _, kind, row in events:
        key = (row["HEAD_NUM"], row["SITE_NUM"])
        if kind == "PIR":
            open_parts[key] = []
        elif kind == "PRR":
            out += [(k, r, n_prr) for k, r in open_parts.pop(key)]
            n_prr += 1
        elif key in open_parts:
            open_parts[key].append((kind, row))
    return out


@pytest.fixture(scope="module")
def lot(tmp_path_factory: pytest.TempPathFactory) -> GeneratedLot:
    spec = replace(SMALL, files=2, retest_fraction=0.5, retest_file=True, cluster=(3, 3, 2.0), seed=7)
    return write_lot(spec, tmp_path_factory.mktemp("lot"))


@pytest.fixture(scope="module")
def ft_lot(tmp_path_factory: pytest.TempPathFactory) -> GeneratedLot:
    spec = replace(
        SMALL, wafers=(), parts=60, test_code="FT1", sites=2, head=0, site_base=0, retest_fraction=1.0,
        random_fail_rate=0.2, byte_order="big", compression="gzip", stop_on_fail=True, seed=3,
    )  # fmt: skip
    return write_lot(spec, tmp_path_factory.mktemp("ft"))


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    spec = replace(SMALL, retest_fraction=0.5, compression="gzip")
    a = write_lot(spec, tmp_path / "a")
    b = write_lot(spec, tmp_path / "b")
    c = write_lot(replace(spec, seed=1), tmp_path / "c")
    assert [p.name for p in a.paths] == [p.name for p in b.paths]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a.paths, b.paths, strict=True))
    assert a.paths[0].read_bytes() != c.paths[0].read_bytes()
    assert np.array_equal(a.results, b.results, equal_nan=True)


def test_files_and_record_counts(lot: GeneratedLot) -> None:
    assert [f.retest_file for f in lot.files] == [False, False, True]
    assert [f.wafers for f in lot.files[:2]] == [("W01",), ("W02",)]
    for f in lot.files:
        counts = {k: t.num_rows for k, t in _tables(f.path).items()}
        assert counts == f.records
        assert counts["PRR"] == counts["PIR"] == f.parts.stop - f.parts.start
        assert counts["MRR"] == 1 and counts["WCR"] == 1
        assert counts["WIR"] == counts["WRR"] == len(f.wafers)


def test_record_sequence(lot: GeneratedLot) -> None:
    t = _tables(lot.files[0].path)
    seq = {k: v["sequence_number"].to_numpy() for k, v in t.items()}
    head = ["FAR", "ATR", "MIR", "SDR"]
    assert [int(seq[k][0]) for k in head] == [0, 1, 2, 3]
    first_part = seq["PIR"].min()
    assert seq["PMR"].max() < seq["WCR"][0] < seq["WIR"][0] < first_part
    assert seq["WRR"][0] > seq["PRR"].max()
    tail = seq["WRR"][-1]
    assert tail < seq["TSR"].min() and seq["TSR"].max() < seq["HBR"].min()
    assert seq["HBR"].max() < seq["SBR"].min() and seq["SBR"].max() < seq["PCR"].min()
    assert seq["PCR"].max() < seq["MRR"][0] == sum(lot.files[0].records.values()) - 1


def test_truth_matches_prr(lot: GeneratedLot) -> None:
    for i, f in enumerate(lot.files):
        prr = _tables(f.path)["PRR"]
        rows = lot.parts.file == i
        assert np.array_equal(prr["sequence_number"].to_numpy(), lot.parts.seq[rows])
        for col, truth in [
            ("HEAD_NUM", lot.parts.head), ("SITE_NUM", lot.parts.site), ("HARD_BIN", lot.parts.hard_bin),
            ("SOFT_BIN", lot.parts.soft_bin), ("X_COORD", lot.parts.x), ("Y_COORD", lot.parts.y),
            ("NUM_TEST", lot.parts.num_test), ("TEST_T", lot.parts.test_t),
        ]:  # fmt: skip
            assert np.array_equal(prr[col].to_numpy(), truth[rows]), col
        assert prr["PART_ID"].to_pylist() == lot.parts.part_id[rows].tolist()
        assert np.array_equal(_b1(prr["PART_FLG"]), lot.parts.part_flg[rows])
    table = lot.parts.to_arrow()
    assert table.num_rows == len(lot.parts) and table["wafer_id"].to_pylist() == lot.parts.wafer_id.tolist()


@pytest.mark.parametrize("which", ["lot", "ft_lot"])
def test_truth_matches_every_result(request: pytest.FixtureRequest, which: str) -> None:
    """Every PTR RESULT (bit for bit), MPR pin and FTR flag belongs to the part and test the truth says."""
    lot: GeneratedLot = request.getfixturevalue(which)
    key = {(t.num, t.name): i for i, t in enumerate(lot.tests)}
    for fi, f in enumerate(lot.files):
        rows = np.flatnonzero(lot.parts.file == fi)
        seen = np.zeros((len(rows), len(lot.tests)), bool)
        names: dict[int, str] = {}
        for kind, rec, p in _bracket(_tables(f.path)):
            part = rows[p]
            name = rec.get("TEST_TXT") or names[rec["TEST_NUM"]]
            names.setdefault(rec["TEST_NUM"], name)
            t = key[(rec["TEST_NUM"], name)]
            seen[p, t] = True
            assert rec["TEST_FLG"][0] == lot.test_flg[part, t]
            if kind == "PTR":
                got = np.float32(rec["RESULT"]).view(np.uint32)
                assert got == lot.results[part, t].view(np.uint32)
                assert rec["PARM_FLG"][0] == lot.parm_flg[part, t]
            elif kind == "MPR":
                pins = np.array(rec["RTN_RSLT"], np.float32)
                assert np.array_equal(pins.view(np.uint32), lot.pin_results[t][part].view(np.uint32))
                assert rec["RTN_STAT"] == lot.pin_stat[t][part].tolist()
        assert np.array_equal(seen, lot.executed[rows])


def test_flags_and_bins_are_consistent(lot: GeneratedLot) -> None:
    p = lot.parts
    assert np.array_equal(lot.failed.any(axis=1), ~p.passed)
    assert np.array_equal(lot.test_flg == 0x80, lot.failed)
    first = np.argmax(lot.failed, axis=1)
    fail_bin = np.array([t.fail_bin for t in lot.tests])[first]
    assert np.array_equal(p.hard_bin, np.where(p.passed, 1, fail_bin))
    assert np.array_equal((p.part_flg & 0x08) > 0, ~p.passed)
    ptr = [i for i, t in enumerate(lot.tests) if t.kind == "P"]
    for t in ptr:
        td = lot.tests[t]
        v = lot.results[:, t]
        above = v > np.float32(td.hi) if td.hi is not None else np.zeros(len(v), bool)
        below = v < np.float32(td.lo) if td.lo is not None else np.zeros(len(v), bool)
        assert np.array_equal(lot.failed[:, t], above | below)
        assert np.array_equal(lot.parm_flg[:, t], 0xC0 | above * 0x08 | below * 0x10)
    assert 0.6 < lot.yield_(lot.first_pass()) < 0.97


def test_first_record_of_each_test_carries_default_data(lot: GeneratedLot) -> None:
    for f in lot.files:
        t = _tables(f.path)
        for kind in ("PTR", "MPR"):
            rows = t[kind].to_pylist()
            first: dict[tuple, dict] = {}
            for r in rows:
                first.setdefault((r["TEST_NUM"], r["TEST_TXT"]), r)
            full = [r for r in rows if r["OPT_FLAG"] is not None]
            assert full == list(first.values())
            for r in full:
                td = next(x for x in lot.tests if (x.num, x.name) == (r["TEST_NUM"], r["TEST_TXT"]))
                opt = r["OPT_FLAG"][0]
                assert opt & 0x02
                assert bool(opt & 0x40) == (td.lo is None) and bool(opt & 0x80) == (td.hi is None)
                if td.hi is not None:
                    assert r["HI_LIMIT"] == np.float32(td.hi) and r["HLM_SCAL"] == td.scale
                assert r["UNITS"] == td.units
            short = [r for r in rows if r["OPT_FLAG"] is None]
            assert short and all(r["LO_LIMIT"] is None for r in short)


def test_one_sided_limits_present() -> None:
    tests = default_tests(16)
    assert any(t.lo is None and t.hi is not None for t in tests)
    assert any(t.hi is None and t.lo is not None for t in tests)


def test_multi_site_interleaving(lot: GeneratedLot) -> None:
    t = _tables(lot.files[0].path)
    events = sorted(
        [(s, k, site) for k in ("PIR", "PTR", "PRR") for s, site in
         zip(t[k]["sequence_number"].to_pylist(), t[k]["SITE_NUM"].to_pylist(), strict=True)]
    )  # fmt: skip
    kinds = "".join({"PIR": "I", "PTR": "T", "PRR": "R"}[k] for _, k, _ in events)
    assert kinds.startswith("IIIIT")  # all sites opened before the first test record
    ptr_sites = [site for _, k, site in events if k == "PTR"]
    ptr_nums = t["PTR"]["TEST_NUM"].to_pylist()
    assert ptr_sites[:4] == [1, 2, 3, 4] and len(set(ptr_nums[:4])) == 1  # test 1 on site 1..4
    assert "TRRRR" in kinds
    assert set(lot.parts.site.tolist()) == {1, 2, 3, 4}


def test_in_file_and_cross_file_retests(lot: GeneratedLot) -> None:
    p = lot.parts
    keys = lot.die_keys()
    retest_file = len(lot.files) - 1
    in_file = (p.file != retest_file) & (p.retest > 0)
    assert in_file.any()
    assert np.all((p.part_flg[in_file] & 0x03) == 0x02)  # wafer sort: supersedes by X/Y
    assert np.all((p.part_flg[p.retest == 0] & 0x03) == 0)
    rt = p.file == retest_file
    assert rt.any() and np.all(p.retest[rt] > 0) and np.all((p.part_flg[rt] & 0x03) == 0)
    first_seen = {}
    for i, k in enumerate(keys):
        first_seen.setdefault(k, i)
        if p.retest[i]:
            assert first_seen[k] < i and not p.passed[first_seen[k]]
    mir = _tables(lot.files[-1].path)["MIR"]
    assert mir["RTST_COD"][0].as_py() == "Y" and mir["LOT_ID"][0].as_py() == lot.spec.lot_id
    assert "RDR" in lot.files[-1].records
    final = lot.final()
    assert final.sum() == len(set(keys)) and lot.yield_(final) >= lot.yield_(lot.first_pass())


def test_summaries_match_parts(lot: GeneratedLot) -> None:
    for fi, f in enumerate(lot.files):
        t = _tables(f.path)
        rows = lot.parts.file == fi
        pcr = {(r["HEAD_NUM"], r["SITE_NUM"]): r for r in t["PCR"].to_pylist()}
        assert pcr[(255, 0)]["PART_CNT"] == rows.sum()
        assert pcr[(255, 0)]["GOOD_CNT"] == lot.parts.passed[rows].sum()
        for site in range(1, 5):
            assert pcr[(1, site)]["PART_CNT"] == (rows & (lot.parts.site == site)).sum()
        hbr = Counter()
        for r in t["HBR"].to_pylist():
            if r["HEAD_NUM"] == 255:
                hbr[r["HBIN_NUM"]] += r["HBIN_CNT"]
                assert r["HBIN_NAM"] == lot.hard_bins[r["HBIN_NUM"]][0]
        assert {k: v for k, v in hbr.items() if v} == lot.bin_counts("hard", rows)
        tsr = [r for r in t["TSR"].to_pylist() if r["HEAD_NUM"] == 255]
        assert len(tsr) == len(lot.tests)
        for r, td in zip(tsr, lot.tests, strict=True):
            i = lot.tests.index(td)
            assert (r["TEST_NUM"], r["TEST_NAM"], r["TEST_TYP"]) == (td.num, td.name, td.kind)
            assert r["EXEC_CNT"] == lot.executed[rows, i].sum() and r["FAIL_CNT"] == lot.failed[rows, i].sum()
        wrr = t["WRR"].to_pylist()
        for w in wrr:
            on_wafer = rows & (lot.parts.wafer_id == w["WAFER_ID"])
            assert w["PART_CNT"] == on_wafer.sum() and w["GOOD_CNT"] == lot.parts.passed[on_wafer].sum()


def test_final_test_mode(ft_lot: GeneratedLot) -> None:
    f = ft_lot.files[0]
    assert f.path.name.endswith(".stdf.gz") and f.path.read_bytes()[:2] == b"\x1f\x8b"
    t = _tables(f.path)
    assert not {"WIR", "WRR", "WCR"} & set(t)
    assert t["FAR"]["CPU_TYPE"][0].as_py() == 1
    p = ft_lot.parts
    assert set(p.head.tolist()) == {0} and set(p.site.tolist()) == {0, 1}
    assert np.all(p.x == -32768) and np.all(p.y == -32768)
    first = p.retest == 0
    assert sorted(p.part_id[first].tolist(), key=int) == [str(i) for i in range(1, 61)]
    retests = p.retest > 0
    assert retests.sum() == (~p.passed[first]).sum()  # retest_fraction=1.0
    assert np.all(p.part_flg[retests] & 0x03 == 0x01) and np.all(p.part_flg[first] & 0x03 == 0)
    # stop on fail: nothing runs after the first failure, and NUM_TEST counts what ran
    assert np.array_equal(p.num_test, ft_lot.executed.sum(axis=1))
    failed_parts = ~p.passed
    assert (p.num_test[failed_parts] < len(ft_lot.tests)).any()
    assert t["PTR"].num_rows == ft_lot.executed[:, [i for i, x in enumerate(ft_lot.tests) if x.kind == "P"]].sum()
    prr = t["PRR"]
    assert np.array_equal(prr["HARD_BIN"].to_numpy(), p.hard_bin)


def test_options_for_ingest_pitfalls(tmp_path: Path) -> None:
    tests = tuple(default_tests(6, n_mpr=1, n_ftr=1, reuse_numbers=True))
    spec = replace(
        SMALL, wafers=("W9",), tests=tests, defaults_before_parts=True, wafer_id_only_in_wrr=True, short_ftr=True,
        summaries="overall", files=1,
    )  # fmt: skip
    lot = write_lot(spec, tmp_path)
    t = _tables(lot.paths[0])
    ptr = t["PTR"].to_pylist()
    first_pir = t["PIR"]["sequence_number"][0].as_py()
    defaults = [r for r in ptr if r["sequence_number"] < first_pir]
    assert len(defaults) == sum(x.kind == "P" for x in tests)
    assert all(r["TEST_FLG"] == b"\x10" and r["PARM_FLG"] == b"\x00" and r["OPT_FLAG"] is not None for r in defaults)
    assert all(r["OPT_FLAG"] is None for r in ptr if r["sequence_number"] > first_pir)
    names = {(r["TEST_NUM"], r["TEST_TXT"]) for r in ptr}
    assert len(names) == len({n for n, _ in names}) + 1  # one TEST_NUM used by two tests
    assert t["WIR"]["WAFER_ID"][0].as_py() == "" and t["WRR"]["WAFER_ID"][0].as_py() == "W9"
    assert set(t["FTR"]["rec_len"].to_pylist()) >= {7}
    assert {r["HEAD_NUM"] for r in t["TSR"].to_pylist()} == {255}
    assert {r["HEAD_NUM"] for r in t["PCR"].to_pylist()} == {255}


def test_wafer_map_has_radial_structure(tmp_path: Path) -> None:
    tests = tuple(default_tests(4, n_mpr=0, n_ftr=0))
    spec = replace(SMALL, wafers=("W1", "W2"), die_diameter=30, tests=tests, random_fail_rate=0.02, seed=5)
    lot = write_lot(spec, tmp_path)
    x, y, r = die_map(30)
    radius = dict(zip(zip(x.tolist(), y.tolist(), strict=True), r.tolist(), strict=True))
    rr = np.array([radius[(a, b)] for a, b in zip(lot.parts.x.tolist(), lot.parts.y.tolist(), strict=True)])
    edge = rr > 1 - spec.edge_ring
    assert (~lot.parts.passed[edge]).mean() > 4 * (~lot.parts.passed[~edge]).mean()
    idd = lot.test_index(1010)  # IDD_STATIC: radial drift of 1.5 sigma
    v = lot.results[:, idd]
    assert v[rr > 0.8].mean() > v[rr < 0.4].mean()


def test_spec_validation() -> None:
    with pytest.raises(ValueError):
        LotSpec(sites=0)
    with pytest.raises(ValueError):
        TestDef(1, "x", kind="Q")
    with pytest.raises(ValueError, match="bin"):
        LotSpec(tests=(TestDef(1, "x", fail_bin=9),), hard_bins={1: ("PASS", "P")}).bins()
    hard, soft = default_bins(default_tests())
    assert hard[1] == ("PASS", "P") and all(pf == "F" for b, (_, pf) in hard.items() if b != 1)


def test_die_map() -> None:
    x, y, r = die_map(10)
    assert len(x) == len(set(zip(x.tolist(), y.tolist(), strict=True))) == 80
    assert r.max() <= 1.0 and x.min() >= 0 and x.max() <= 9
    assert np.all(np.diff(y) >= 0)  # row by row, serpentine inside a row
    assert x[0] < x[np.flatnonzero(y == y[0])[-1]]


# -------------------------------------------------------------------------------------------- bench


@pytest.mark.parametrize("byte_order", ["little", "big"])
def test_bench_file_is_valid_and_exact(tmp_path: Path, byte_order: str) -> None:
    path = tmp_path / "bench.stdf"
    target = 5_000_000
    st = write_bench_file(path, target, byte_order=byte_order, collect=True, seed=1)
    assert st.bytes == path.stat().st_size >= target
    t = _tables(path)
    assert {k: v.num_rows for k, v in t.items()} == st.records
    assert st.records["PTR"] == st.parts * 400 and st.records["FTR"] == st.parts * 8
    assert st.records["WIR"] == st.records["WRR"] == 8
    ptr = t["PTR"]
    res = ptr["RESULT"].to_numpy()
    assert np.array_equal(res.view(np.uint32), st.ptr_results.view(np.uint32))
    assert hashlib.blake2b(res.astype("<f4").tobytes(), digest_size=16).hexdigest() == st.ptr_digest
    assert np.array_equal(ptr["TEST_NUM"].to_numpy(), st.ptr_test_num)
    assert np.array_equal(ptr["SITE_NUM"].to_numpy(), st.ptr_site)
    mpr = np.concatenate(t["MPR"]["RTN_RSLT"].to_pylist()).astype(np.float32)
    assert np.array_equal(mpr.view(np.uint32), st.mpr_results.view(np.uint32))
    # flags agree with the limits of the first (full) PTR of each test
    full = ptr.filter(ptr["OPT_FLAG"].is_valid())
    assert full.num_rows == 400 * 4  # the first touchdown, every site
    hi = dict(zip(full["TEST_NUM"].to_pylist(), full["HI_LIMIT"].to_pylist(), strict=False))
    his = np.array([hi[n] for n in ptr["TEST_NUM"].to_pylist()], np.float32)
    failed = (_b1(ptr["TEST_FLG"]) & 0x80) > 0
    assert np.array_equal(failed & (res > his), (_b1(ptr["PARM_FLG"]) & 0x08) > 0)
    prr = t["PRR"]
    hb = prr["HARD_BIN"].to_numpy()
    assert (hb == 1).sum() == st.good and dict(Counter(hb.tolist())) == st.hard_bins
    assert np.array_equal((_b1(prr["PART_FLG"]) & 0x08) > 0, hb != 1)
    pcr = {r["HEAD_NUM"]: r for r in t["PCR"].to_pylist()}
    assert pcr[255]["PART_CNT"] == st.parts and pcr[255]["GOOD_CNT"] == st.good
    assert 0.8 < st.yield_ < 0.97


def test_bench_file_memory_is_bounded(tmp_path: Path) -> None:
    tracemalloc.start()
    try:
        st = write_bench_file(tmp_path / "b.stdf", 24_000_000, tests=100, seed=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert st.bytes >= 24_000_000
    assert peak < 12_000_000, peak  # a few batches of 4 MB, not the file


def test_bench_file_is_deterministic(tmp_path: Path) -> None:
    a = write_bench_file(tmp_path / "a.stdf", 300_000, tests=50, sites=2, wafers=2, seed=4)
    b = write_bench_file(tmp_path / "b.stdf", 300_000, tests=50, sites=2, wafers=2, seed=4)
    assert (tmp_path / "a.stdf").read_bytes() == (tmp_path / "b.stdf").read_bytes()
    assert a.ptr_digest == b.ptr_digest and a.bytes >= 300_000
