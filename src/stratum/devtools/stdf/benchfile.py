"""A fast benchmark-file writer (stdf-parsing §6.1).

:func:`write_bench_file` writes a large file fast: the bytes of a whole touchdown are built once as a numpy
template and only the varying fields (results, flags, bins, coordinates) are patched, a batch of touchdowns
at a time, so memory stays bounded whatever the size. The record sequence is the one described in
:mod:`stratum.devtools.stdf.lots`.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stratum.devtools.stdf.common import FTR_OPT_FAIL, FTR_OPT_PASS, die_map, ptr_opt_flag
from stratum.devtools.stdf.writer import StdfWriter, encode_record
from stratum.stdf.flags import (
    PARM_ABOVE,
    PARM_BELOW,
    PARM_EQ_PASS,
    PART_FAILED,
    PIN_PASS,
    TEST_FAILED,
)
from stratum.stdf.spec import MISSING_U4

__all__ = ["BenchStats", "write_bench_file"]


@dataclass
class BenchStats:
    """What :func:`write_bench_file` wrote.

    ``ptr_digest``/``mpr_digest`` are BLAKE2b-128 hex digests of every PTR RESULT / MPR RTN_RSLT value
    as little-endian float32, in file order (whatever the file's byte order). With ``collect=True`` the
    values themselves are in ``ptr_results`` (with ``ptr_test_num``/``ptr_site``) and ``mpr_results``.
    """

    path: Path
    bytes: int
    seconds: float
    records: dict[str, int]
    parts: int
    good: int
    wafers: int
    dies_per_wafer: int
    touchdowns: int
    sites: int
    tests: int
    hard_bins: dict[int, int]
    soft_bins: dict[int, int]
    ptr_digest: str
    mpr_digest: str
    ptr_results: np.ndarray | None = None
    ptr_test_num: np.ndarray | None = None
    ptr_site: np.ndarray | None = None
    mpr_results: np.ndarray | None = None

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else float("inf")

    @property
    def yield_(self) -> float:
        return self.good / self.parts if self.parts else float("nan")


_BENCH_NAMES = (
    "IDDQ_VDD", "IDD_STBY", "VOH_IO", "VOL_IO", "IIH_LEAK", "IIL_LEAK", "VREF_TRIM", "FREQ_PLL", "VTH_N",
    "VTH_P", "RDSON_SW", "TEMP_DIODE", "ADC_INL", "ADC_DNL", "DAC_GAIN", "LDO_VOUT", "OSC_DUTY", "CONT_IO",
)  # fmt: skip


class _BenchProgram:
    """The benchmark test program: PTR parameters, FTR/MPR slots and the program order."""

    def __init__(self, rng: np.random.Generator, tests: int, n_ftr: int, n_mpr: int, pins: int) -> None:
        self.n_ptr, self.n_ftr, self.n_mpr, self.pins = tests, n_ftr, n_mpr, pins
        i = np.arange(tests)
        self.ptr_num = (10_000 + i).astype(np.uint32)  # MPRs are 5000+, FTRs 9000+
        self.ptr_name = [f"{_BENCH_NAMES[k % len(_BENCH_NAMES)]}_{k:03d}" for k in range(tests)]
        self.units = ["V" if k % 3 else "A" for k in range(tests)]
        self.scale = [0 if k % 3 else 6 for k in range(tests)]  # currents shown in uA
        unit = np.where(i % 3 == 0, 1e-6, 1.0)
        self.mu = (rng.uniform(-2.0, 5.0, tests) * unit).astype(np.float32)
        self.sd = (rng.uniform(0.01, 0.2, tests) * unit).astype(np.float32)
        span = rng.uniform(6.0, 8.0, tests).astype(np.float32)
        one_sided = rng.random(tests) < 0.15
        self.hi = self.mu + span * self.sd
        self.lo = np.where(one_sided, np.float32(-np.inf), self.mu - span * self.sd).astype(np.float32)
        self.drift = np.where(rng.random(tests) < 0.3, rng.uniform(0.5, 1.5, tests), 0.0).astype(np.float32)
        self.mpr_mu, self.mpr_sd, self.mpr_lo, self.mpr_hi = 1.0, 0.05, 0.6, 1.4
        # program order: FTR and MPR slots spread evenly among the PTRs
        order: list[tuple[str, int]] = [("P", k) for k in range(tests)]
        extra = [("F", k) for k in range(n_ftr)] + [("M", k) for k in range(n_mpr)]
        for j, slot in enumerate(extra):
            order.insert(int((j + 0.5) * len(order) / max(1, len(extra))) + j % 2, slot)
        self.order = order
        self.pos = {kind: np.array([p for p, (k, _) in enumerate(order) if k == kind], np.int64) for kind in "PFM"}
        # bins per slot: hard 2..6 by kind and position, soft = hard * 100 + slot index % 50
        self.slot_hbin = np.array([6 if k == "F" else 5 if k == "M" else 2 + (i_ % 3) for k, i_ in order], np.uint16)
        self.slot_sbin = (self.slot_hbin.astype(np.uint32) * 100 + np.arange(len(order)) % 50).astype(np.uint16)

    def ptr_opt_flag(self, k: int) -> int:
        lo = None if np.isinf(self.lo[k]) else float(self.lo[k])
        return ptr_opt_flag(lo, float(self.hi[k]), None, None)


class _BenchTemplate:
    """The bytes of one touchdown of ``k`` sites and where its varying fields sit."""

    def __init__(self, prog: _BenchProgram, sites: Sequence[int], head: int, full: bool, be: bool) -> None:
        parts: list[bytes] = []
        pos = 0
        k = len(sites)
        self.k = k
        ptr_off = np.zeros((prog.n_ptr, k), np.int64)
        ftr_off = np.zeros((prog.n_ftr, k), np.int64)
        mpr_off = np.zeros((prog.n_mpr, k), np.int64)
        prr_off = np.zeros(k, np.int64)

        def add(name: str, fields: dict[str, Any]) -> int:
            nonlocal pos
            rec = encode_record(name, fields, big_endian=be)
            parts.append(rec)
            pos += len(rec)
            return pos - len(rec)

        for s in sites:
            add("PIR", {"HEAD_NUM": head, "SITE_NUM": s})
        fmt = {"C_RESFMT": "%9.4f", "C_LLMFMT": "%9.4f", "C_HLMFMT": "%9.4f"}
        for kind, t in prog.order:
            for j, s in enumerate(sites):
                if kind == "P":
                    d: dict[str, Any] = {
                        "TEST_NUM": int(prog.ptr_num[t]), "HEAD_NUM": head, "SITE_NUM": s, "TEST_FLG": 0,
                        "PARM_FLG": 0, "RESULT": 0.0, "TEST_TXT": prog.ptr_name[t], "ALARM_ID": "",
                    }  # fmt: skip
                    if full:
                        lo = 0.0 if np.isinf(prog.lo[t]) else float(prog.lo[t])
                        d.update(
                            OPT_FLAG=prog.ptr_opt_flag(t), RES_SCAL=prog.scale[t], LLM_SCAL=prog.scale[t],
                            HLM_SCAL=prog.scale[t], LO_LIMIT=lo, HI_LIMIT=float(prog.hi[t]), UNITS=prog.units[t],
                            **fmt, LO_SPEC=0.0, HI_SPEC=0.0,
                        )  # fmt: skip
                    ptr_off[t, j] = add("PTR", d)
                elif kind == "F":
                    ftr_off[t, j] = add(
                        "FTR",
                        {
                            "TEST_NUM": 9000 + t, "HEAD_NUM": head, "SITE_NUM": s, "TEST_FLG": 0,
                            "OPT_FLAG": FTR_OPT_PASS, "CYCL_CNT": 1024, "REL_VADR": 0, "REPT_CNT": 0, "NUM_FAIL": 0,
                            "XFAIL_AD": 0, "YFAIL_AD": 0, "VECT_OFF": 0, "RTN_ICNT": 0, "PGM_ICNT": 0,
                            "FAIL_PIN": {"bit_count": 0, "bit_data": b""}, "VECT_NAM": f"func_{t:02d}.pat",
                            "TIME_SET": "TS1", "OP_CODE": "", "TEST_TXT": f"FUNC_{t:02d}",
                        },
                    )  # fmt: skip
                else:
                    d = {
                        "TEST_NUM": 5000 + t, "HEAD_NUM": head, "SITE_NUM": s, "TEST_FLG": 0, "PARM_FLG": 0,
                        "RTN_STAT": [PIN_PASS] * prog.pins, "RTN_RSLT": [0.0] * prog.pins,
                        "TEST_TXT": f"VIH_GRP_{t:02d}", "ALARM_ID": "",
                    }  # fmt: skip
                    if full:
                        d.update(
                            OPT_FLAG=ptr_opt_flag(prog.mpr_lo, prog.mpr_hi, None, None), RES_SCAL=0, LLM_SCAL=0,
                            HLM_SCAL=0, LO_LIMIT=prog.mpr_lo, HI_LIMIT=prog.mpr_hi, START_IN=0.0, INCR_IN=0.0,
                            RTN_INDX=[1 + j * prog.pins + p for p in range(prog.pins)], UNITS="V", UNITS_IN="",
                            **fmt, LO_SPEC=0.0, HI_SPEC=0.0,
                        )  # fmt: skip
                    mpr_off[t, j] = add("MPR", d)
        for j, s in enumerate(sites):
            prr_off[j] = add(
                "PRR",
                {
                    "HEAD_NUM": head, "SITE_NUM": s, "PART_FLG": 0, "NUM_TEST": len(prog.order), "HARD_BIN": 0,
                    "SOFT_BIN": 0, "X_COORD": 0, "Y_COORD": 0, "TEST_T": 0, "PART_ID": "0" * 8, "PART_TXT": "",
                },
            )  # fmt: skip
        self.bytes = np.frombuffer(b"".join(parts), np.uint8)
        self.size = len(self.bytes)
        self.counts = {"PIR": k, "PTR": prog.n_ptr * k, "FTR": prog.n_ftr * k, "MPR": prog.n_mpr * k, "PRR": k}
        rng4 = np.arange(4)
        self.ptr_flg = ptr_off.ravel() + 10
        self.ptr_res = (ptr_off.ravel()[:, None] + 12 + rng4).ravel()
        self.ftr_flg = ftr_off.ravel() + 10
        self.ftr_opt = ftr_off.ravel() + 11
        self.ftr_nfail = (ftr_off.ravel()[:, None] + 24 + rng4).ravel()
        self.mpr_flg = mpr_off.ravel() + 10
        first_rslt = 16 + (prog.pins + 1) // 2
        self.mpr_res = (mpr_off.ravel()[:, None, None] + first_rslt + 4 * np.arange(prog.pins)[:, None] + rng4).ravel()
        self.prr = prr_off


class _BenchWriter:
    def __init__(
        self, w: StdfWriter, prog: _BenchProgram, rng: np.random.Generator, sites: list[int], head: int,
        collect: bool,
    ) -> None:  # fmt: skip
        self.w, self.prog, self.rng, self.sites, self.head = w, prog, rng, sites, head
        self.be = w.big_endian
        e = ">" if self.be else "<"
        self.f4, self.u2, self.i2, self.u4 = (np.dtype(e + t) for t in ("f4", "u2", "i2", "u4"))
        self.templates: dict[tuple[int, bool], _BenchTemplate] = {}
        self.buf = np.empty(0, np.uint8)
        n_sites = len(sites)
        self.exec = np.zeros((prog.n_ptr, n_sites), np.int64)
        self.fails = np.zeros((prog.n_ptr, n_sites), np.int64)
        self.sums = np.zeros((prog.n_ptr, n_sites))
        self.sqrs = np.zeros((prog.n_ptr, n_sites))
        self.vmin = np.full((prog.n_ptr, n_sites), np.inf)
        self.vmax = np.full((prog.n_ptr, n_sites), -np.inf)
        self.other_exec = np.zeros((2, max(prog.n_ftr, prog.n_mpr), n_sites), np.int64)
        self.other_fail = np.zeros_like(self.other_exec)
        self.bins: Counter[tuple[int, int, int]] = Counter()  # (site index, hard, soft)
        self.ptr_hash = hashlib.blake2b(digest_size=16)
        self.mpr_hash = hashlib.blake2b(digest_size=16)
        self.collect = collect
        self.collected: list[tuple[np.ndarray, np.ndarray]] = []
        self.parts = 0
        self.good = 0
        self.touchdowns = 0

    def template(self, k: int, full: bool) -> _BenchTemplate:
        key = (k, full)
        if key not in self.templates:
            self.templates[key] = _BenchTemplate(self.prog, self.sites[:k], self.head, full, self.be)
        return self.templates[key]

    def batch(self, tpl: _BenchTemplate, x: np.ndarray, y: np.ndarray, r: np.ndarray) -> int:
        """Write ``len(x)`` touchdowns (dies ``(B, k)``) from ``tpl``; returns the number of good dies."""
        prog, rng = self.prog, self.rng
        b, k = x.shape
        need = b * tpl.size
        if self.buf.size < need:
            self.buf = np.empty(need, np.uint8)  # reused: fresh pages on every batch cost more than the copy
        mat = self.buf[:need].reshape(b, tpl.size)
        mat[:] = tpl.bytes
        r2 = (r * r).astype(np.float32)
        # PTR results with a radial drift towards the edge
        vals = rng.standard_normal((b, prog.n_ptr, k), dtype=np.float32)
        vals *= prog.sd[None, :, None]
        vals += prog.mu[None, :, None]
        vals += (prog.drift * prog.sd)[None, :, None] * r2[:, None, :]
        # dies killed by a defect: more likely towards the edge; the victim slot is random
        p_kill = 0.06 + 0.45 * np.clip((r - 0.8) / 0.2, 0.0, 1.0) ** 2
        killed = rng.random((b, k)) < p_kill
        victim = rng.integers(0, len(prog.order), (b, k))
        kb, ks = np.nonzero(killed)
        vslot = victim[kb, ks]
        is_p = np.isin(vslot, prog.pos["P"])
        t_p = np.searchsorted(prog.pos["P"], vslot[is_p])
        vals[kb[is_p], t_p, ks[is_p]] = prog.hi[t_p] + prog.sd[t_p] * np.float32(1.5)
        above = vals > prog.hi[None, :, None]
        below = vals < prog.lo[None, :, None]
        fail_p = above | below
        # MPR pins and FTR pass/fail
        pins = rng.standard_normal((b, prog.n_mpr, k, prog.pins), dtype=np.float32)
        pins *= np.float32(prog.mpr_sd)
        pins += np.float32(prog.mpr_mu)
        is_m = np.isin(vslot, prog.pos["M"])
        t_m = np.searchsorted(prog.pos["M"], vslot[is_m])
        pins[kb[is_m], t_m, ks[is_m], 0] = np.float32(prog.mpr_hi + 0.2)
        m_above = pins > np.float32(prog.mpr_hi)
        m_below = pins < np.float32(prog.mpr_lo)
        fail_m = (m_above | m_below).any(axis=3)
        fail_f = np.zeros((b, prog.n_ftr, k), bool)
        is_f = np.isin(vslot, prog.pos["F"])
        fail_f[kb[is_f], np.searchsorted(prog.pos["F"], vslot[is_f]), ks[is_f]] = True
        # bins from the first failing slot in program order
        fail_slots = np.zeros((b, len(prog.order), k), bool)
        fail_slots[:, prog.pos["P"], :] = fail_p
        fail_slots[:, prog.pos["M"], :] = fail_m
        fail_slots[:, prog.pos["F"], :] = fail_f
        failed = fail_slots.any(axis=1)
        first = np.argmax(fail_slots, axis=1)
        hbin = np.where(failed, prog.slot_hbin[first], 1).astype(np.uint16)
        sbin = np.where(failed, prog.slot_sbin[first], 1).astype(np.uint16)
        # patch the template copies
        mat[:, tpl.ptr_res] = vals.astype(self.f4).view(np.uint8).reshape(b, -1)
        mat[:, tpl.ptr_flg] = (fail_p * TEST_FAILED).reshape(b, -1)
        mat[:, tpl.ptr_flg + 1] = (PARM_EQ_PASS | above * PARM_ABOVE | below * PARM_BELOW).reshape(b, -1)
        if prog.n_mpr:
            mat[:, tpl.mpr_res] = pins.astype(self.f4).view(np.uint8).reshape(b, -1)
            mat[:, tpl.mpr_flg] = (fail_m * TEST_FAILED).reshape(b, -1)
            pflg = PARM_EQ_PASS | m_above.any(3) * PARM_ABOVE | m_below.any(3) * PARM_BELOW
            mat[:, tpl.mpr_flg + 1] = pflg.reshape(b, -1)
        if prog.n_ftr:
            mat[:, tpl.ftr_flg] = (fail_f * TEST_FAILED).reshape(b, -1)
            mat[:, tpl.ftr_opt] = np.where(fail_f, FTR_OPT_FAIL, FTR_OPT_PASS).reshape(b, -1)
            mat[:, tpl.ftr_nfail] = (fail_f * 7).astype(self.u4).view(np.uint8).reshape(b, -1)
        part_no = self.parts + 1 + np.arange(b * k).reshape(b, k)
        digits = (part_no[:, :, None] // 10 ** np.arange(7, -1, -1)) % 10 + 48
        prr = tpl.prr
        mat[:, prr + 6] = np.where(failed, PART_FAILED, 0)
        mat[:, (prr[:, None] + [9, 10]).ravel()] = hbin.astype(self.u2).view(np.uint8).reshape(b, -1)
        mat[:, (prr[:, None] + [11, 12]).ravel()] = sbin.astype(self.u2).view(np.uint8).reshape(b, -1)
        mat[:, (prr[:, None] + [13, 14]).ravel()] = x.astype(self.i2).view(np.uint8).reshape(b, -1)
        mat[:, (prr[:, None] + [15, 16]).ravel()] = y.astype(self.i2).view(np.uint8).reshape(b, -1)
        test_t = rng.integers(80, 120, (b, k)).astype(self.u4)
        mat[:, (prr[:, None] + np.arange(17, 21)).ravel()] = test_t.view(np.uint8).reshape(b, -1)
        mat[:, (prr[:, None] + np.arange(22, 30)).ravel()] = digits.astype(np.uint8).reshape(b, -1)
        self.w.write_encoded(memoryview(mat.reshape(-1).data), {n: c * b for n, c in tpl.counts.items()})
        # tallies for the summary records and the digests
        self.exec[:, :k] += b
        self.fails[:, :k] += fail_p.sum(axis=0)
        v64 = vals.astype(np.float64)
        self.sums[:, :k] += v64.sum(axis=0)
        self.sqrs[:, :k] += (v64 * v64).sum(axis=0)
        np.minimum(self.vmin[:, :k], vals.min(axis=0), out=self.vmin[:, :k])
        np.maximum(self.vmax[:, :k], vals.max(axis=0), out=self.vmax[:, :k])
        self.other_exec[0, : prog.n_ftr, :k] += b
        self.other_fail[0, : prog.n_ftr, :k] += fail_f.sum(axis=0)
        self.other_exec[1, : prog.n_mpr, :k] += b
        self.other_fail[1, : prog.n_mpr, :k] += fail_m.sum(axis=0)
        site_idx = np.broadcast_to(np.arange(k), (b, k))
        keys, counts = np.unique(np.stack([site_idx.ravel(), hbin.ravel(), sbin.ravel()]), axis=1, return_counts=True)
        for (si, hb, sb), c in zip(keys.T.tolist(), counts.tolist(), strict=True):
            self.bins[(si, hb, sb)] += c
        self.ptr_hash.update(vals.astype("<f4").tobytes())
        self.mpr_hash.update(pins.astype("<f4").tobytes())
        if self.collect:
            self.collected.append((vals.copy(), pins.copy()))
        good = int((~failed).sum())
        self.parts += b * k
        self.good += good
        self.touchdowns += b
        return good


def _bench_header(w: StdfWriter, prog: _BenchProgram, sites: list[int], head: int, start: int, seed: int) -> None:
    w.write("ATR", MOD_TIM=start, CMD_LINE=f"stratum bench --seed {seed}")
    w.write(
        "MIR",
        SETUP_T=start - 60, START_T=start, STAT_NUM=1, MODE_COD="P", RTST_COD=" ", PROT_COD=" ", BURN_TIM=65535,
        CMOD_COD=" ", LOT_ID="BENCH01", PART_TYP="BENCH-DEV", NODE_NAM="bench01", TSTR_TYP="SIM-9000",
        JOB_NAM="BENCH_PROG", JOB_REV="1.0", SBLOT_ID="", OPER_NAM="bench", EXEC_TYP="stratum-sim", EXEC_VER="1.0",
        TEST_COD="WS1", TST_TEMP="25",
    )  # fmt: skip
    w.write(
        "SDR", HEAD_NUM=head, SITE_GRP=1, SITE_NUM=sites, HAND_TYP="PROBER", HAND_ID="PRB-01", CARD_TYP="PROBECARD",
        CARD_ID="PC-0001",
    )  # fmt: skip
    for j, s in enumerate(sites):
        for p in range(prog.pins if prog.n_mpr else 0):
            w.write(
                "PMR", PMR_INDX=1 + j * prog.pins + p, CHAN_TYP=0, CHAN_NAM=f"CH{j * prog.pins + p + 1}",
                PHY_NAM=f"P{p}", LOG_NAM=f"IO{p}", HEAD_NUM=head, SITE_NUM=s,
            )  # fmt: skip


def write_bench_file(
    path: str | Path,
    target_bytes: int,
    *,
    sites: int = 4,
    tests: int = 400,
    ftr_per_part: int = 8,
    mpr_per_part: int = 4,
    wafers: int = 8,
    byte_order: str = "little",
    seed: int = 0,
    compression: str | None = None,
    pins: int = 4,
    batch_bytes: int = 4 << 20,
    collect: bool = False,
) -> BenchStats:
    """Write a valid wafer-sort STDF file of at least ``target_bytes`` (uncompressed) for benchmarks.

    ``wafers`` circular wafers of the same die map (its diameter chosen to reach the target size),
    ``sites`` sites on head 1, ``tests`` PTRs plus ``ftr_per_part`` FTRs and ``mpr_per_part`` MPRs
    (``pins`` pins each) per part, about 88% yield with failures concentrated at the wafer edge. The
    first touchdown carries full PTR/MPR records, later ones the short form. Touchdowns are patched
    numpy copies of a template, written ``batch_bytes`` at a time, so memory stays bounded.
    ``collect=True`` keeps every result in the returned stats (small files only).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    prog = _BenchProgram(rng, tests, ftr_per_part, mpr_per_part, pins)
    site_nums = list(range(1, sites + 1))
    head = 1
    start = 1_700_000_000
    path = Path(path)
    with StdfWriter(path, byte_order=byte_order, compression=compression) as w:
        bw = _BenchWriter(w, prog, rng, site_nums, head, collect)
        short = bw.template(sites, False)
        diameter = _bench_diameter(target_bytes, short.size, sites, wafers, bw)
        dx, dy, dr = die_map(diameter)
        n = len(dx)
        _bench_header(w, prog, site_nums, head, start, seed)
        w.write(
            "WCR", WAFR_SIZ=300.0, DIE_HT=3.0, DIE_WID=3.0, WF_UNITS=3, WF_FLAT="D", CENTER_X=diameter // 2,
            CENTER_Y=diameter // 2, POS_X="R", POS_Y="U",
        )  # fmt: skip
        per_batch = max(1, batch_bytes // short.size)
        clock = start
        first = True
        for wi in range(wafers):
            wid = f"W{wi + 1:02d}"
            w.write("WIR", HEAD_NUM=head, SITE_GRP=1, START_T=clock, WAFER_ID=wid)
            good = 0
            n_full = n // sites
            td = 0
            if first and n_full:
                good += bw.batch(bw.template(sites, True), *_dies(dx, dy, dr, 0, 1, sites))
                td, first = 1, False
            while td < n_full:
                m = min(per_batch, n_full - td)
                good += bw.batch(short, *_dies(dx, dy, dr, td * sites, m, sites))
                td += m
            rem = n - n_full * sites
            if rem:
                good += bw.batch(bw.template(rem, first), *_dies(dx, dy, dr, n_full * sites, 1, rem))
                first = False
            clock += n // sites
            w.write("DTR", TEXT_DAT=f"wafer {wid} done: {n} parts, {good} good")
            w.write(
                "WRR", HEAD_NUM=head, SITE_GRP=1, FINISH_T=clock, PART_CNT=n, RTST_CNT=0, ABRT_CNT=0, GOOD_CNT=good,
                FUNC_CNT=MISSING_U4, WAFER_ID=wid,
            )  # fmt: skip
        _bench_summaries(w, bw, prog, site_nums, head, clock)
    seconds = time.perf_counter() - t0
    hard: Counter[int] = Counter()
    soft: Counter[int] = Counter()
    for (_, hb, sb), c in bw.bins.items():
        hard[hb] += c
        soft[sb] += c
    stats = BenchStats(
        path=path, bytes=w.bytes_written, seconds=seconds, records=dict(w.counts), parts=bw.parts, good=bw.good,
        wafers=wafers, dies_per_wafer=n, touchdowns=bw.touchdowns, sites=sites, tests=tests,
        hard_bins=dict(sorted(hard.items())), soft_bins=dict(sorted(soft.items())),
        ptr_digest=bw.ptr_hash.hexdigest(), mpr_digest=bw.mpr_hash.hexdigest(),
    )  # fmt: skip
    if collect:
        # touchdowns hold (B, tests, k) blocks with k possibly < sites: flatten each in file order
        ptr = [v.reshape(-1) for v, _ in bw.collected]
        stats.ptr_results = np.concatenate(ptr) if ptr else np.zeros(0, np.float32)
        stats.mpr_results = np.concatenate([m.reshape(-1) for _, m in bw.collected]) if ptr else None
        stats.ptr_test_num = np.concatenate(
            [np.broadcast_to(prog.ptr_num[None, :, None], v.shape).reshape(-1) for v, _ in bw.collected]
        )
        stats.ptr_site = np.concatenate(
            [np.broadcast_to(np.arange(1, v.shape[2] + 1)[None, None, :], v.shape).reshape(-1) for v, _ in bw.collected]
        ).astype(np.uint8)
    return stats


def _dies(
    dx: np.ndarray, dy: np.ndarray, dr: np.ndarray, start: int, touchdowns: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sl = slice(start, start + touchdowns * k)
    return dx[sl].reshape(touchdowns, k), dy[sl].reshape(touchdowns, k), dr[sl].reshape(touchdowns, k)


def _bench_diameter(target: int, td_bytes: int, sites: int, wafers: int, bw: _BenchWriter) -> int:
    """Smallest die-map diameter whose touchdown bytes alone reach ``target`` (so the file does too)."""
    per_part = td_bytes / sites
    diameter = max(2, int(math.sqrt(max(target, 1) / per_part / wafers * 4 / math.pi)) - 2)
    while True:
        n = len(die_map(diameter)[0])
        full, rem = divmod(n, sites)
        size = wafers * (full * td_bytes + (bw.template(rem, False).size if rem else 0))
        if size >= target:
            return diameter
        diameter += 1


def _bench_summaries(
    w: StdfWriter, bw: _BenchWriter, prog: _BenchProgram, sites: list[int], head: int, finish: int
) -> None:
    heads = [(head, s, slice(j, j + 1)) for j, s in enumerate(sites)] + [(255, 0, slice(None))]
    for t in range(prog.n_ptr):
        for h, s, sl in heads:
            ex = int(bw.exec[t, sl].sum())
            w.write(
                "TSR", HEAD_NUM=h, SITE_NUM=s, TEST_TYP="P", TEST_NUM=int(prog.ptr_num[t]), EXEC_CNT=ex,
                FAIL_CNT=int(bw.fails[t, sl].sum()), ALRM_CNT=0, TEST_NAM=prog.ptr_name[t], SEQ_NAME="", TEST_LBL="",
                OPT_FLAG=0x04 if ex else 0x37, TEST_TIM=0.0, TEST_MIN=float(bw.vmin[t, sl].min()) if ex else 0.0,
                TEST_MAX=float(bw.vmax[t, sl].max()) if ex else 0.0, TST_SUMS=float(bw.sums[t, sl].sum()),
                TST_SQRS=float(bw.sqrs[t, sl].sum()),
            )  # fmt: skip
    for kind, typ, num, name in ((0, "F", 9000, "FUNC"), (1, "M", 5000, "VIH_GRP")):
        for t in range(prog.n_ftr if kind == 0 else prog.n_mpr):
            for h, s, sl in heads:
                w.write(
                    "TSR", HEAD_NUM=h, SITE_NUM=s, TEST_TYP=typ, TEST_NUM=num + t,
                    EXEC_CNT=int(bw.other_exec[kind, t, sl].sum()), FAIL_CNT=int(bw.other_fail[kind, t, sl].sum()),
                    ALRM_CNT=0, TEST_NAM=f"{name}_{t:02d}", SEQ_NAME="", TEST_LBL="", OPT_FLAG=0x37,
                )  # fmt: skip
    hard: Counter[tuple[int, int]] = Counter()
    soft: Counter[tuple[int, int]] = Counter()
    for (si, hb, sb), c in bw.bins.items():
        hard[(si, hb)] += c
        soft[(si, sb)] += c
    for rec, pre, counts in (("HBR", "HBIN", hard), ("SBR", "SBIN", soft)):
        for h, s, _ in heads:
            per_bin: Counter[int] = Counter()
            for (si, b), c in counts.items():
                if h == 255 or sites[si] == s:
                    per_bin[b] += c
            for b, c in sorted(per_bin.items()):
                pf, name = ("P", "PASS") if b == 1 else ("F", f"FAIL_{b}")
                fields = {f"{pre}_NUM": b, f"{pre}_CNT": c, f"{pre}_PF": pf, f"{pre}_NAM": name}
                w.write_record(rec, {"HEAD_NUM": h, "SITE_NUM": s, **fields})
    for h, s, _ in heads:
        parts = sum(c for (si, _, _), c in bw.bins.items() if h == 255 or sites[si] == s)
        good = sum(c for (si, hb, _), c in bw.bins.items() if hb == 1 and (h == 255 or sites[si] == s))
        w.write(
            "PCR", HEAD_NUM=h, SITE_NUM=s, PART_CNT=parts, RTST_CNT=0, ABRT_CNT=0, GOOD_CNT=good,
            FUNC_CNT=MISSING_U4,
        )  # fmt: skip
    w.write("MRR", FINISH_T=finish, DISP_COD=" ", USR_DESC="", EXC_DESC="")
