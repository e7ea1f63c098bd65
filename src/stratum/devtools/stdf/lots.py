"""Seeded synthetic STDF lots with a known truth (the realistic generator).

:func:`write_lot` writes a realistic lot (one or several files) record by record through
:class:`~stratum.devtools.stdf.writer.StdfWriter` and returns a :class:`GeneratedLot` holding exactly what was
written: one row per PRR, the result of every (part, test), bins and per-file record counts. Tests use it as a
fixture with a known answer; ``stratum demo`` uses it for sample data. The benchmark-file writer is
:mod:`stratum.devtools.stdf.benchfile`; both share the die map and record conventions (:mod:`.common`).

Record sequence (both): FAR, ATR, MIR, [RDR], SDR, PMR..., [PGR], [WCR], GDR, DTR; per wafer a WIR, then
touchdowns (PIR for every active site, the sites' test records interleaved test by test, a PRR per site),
a DTR and a WRR; then TSR (per site and head 255), HBR, SBR, PCR (per site and 255) and the MRR. The first
PTR/MPR of a test carries the default data (OPT_FLAG, scales, limits, units, formats, spec limits); later
ones end after ALARM_ID. Results are float32 and pass/fail is decided on the float32 values against the
float32 limits, exactly as a reader sees them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from stratum.devtools.stdf.common import FTR_OPT_FAIL, FTR_OPT_PASS, die_map, ptr_opt_flag
from stratum.devtools.stdf.writer import StdfWriter
from stratum.stdf.flags import (
    PARM_ABOVE,
    PARM_BELOW,
    PARM_EQ_PASS,
    PART_FAILED,
    PART_SUPERSEDES_ID,
    PART_SUPERSEDES_XY,
    PIN_FAIL_HIGH,
    PIN_FAIL_LOW,
    PIN_PASS,
    TEST_FAILED,
    TEST_NOT_EXECUTED,
)
from stratum.stdf.spec import MISSING_U4, MISSING_XY

__all__ = [
    "FileInfo",
    "GeneratedLot",
    "LotSpec",
    "Parts",
    "TestDef",
    "default_bins",
    "default_tests",
    "die_map",
    "write_lot",
]


# --------------------------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class TestDef:
    """One test of the program.

    ``lo``/``hi`` of ``None`` mean no limit on that side (OPT_FLAG bit 6/7). ``mean``/``sigma`` default
    to the middle of the limits and a tenth of their span (Cpk 1.67). ``wafer_shift_sigma`` is the SD of
    a per-wafer mean shift and ``radial_drift`` the mean shift at the wafer edge (growing with r²), both
    in sigmas. A part whose first failing test is this one gets ``fail_bin`` (hard) / ``fail_sbin``
    (soft, default ``fail_bin``). ``kind`` is ``"P"`` (PTR), ``"M"`` (MPR over ``pins`` pins) or ``"F"``
    (FTR, failing with probability ``fail_rate``; ``pattern`` is its VECT_NAM).
    """

    __test__ = False  # not a pytest test class

    num: int
    name: str
    units: str = "V"
    lo: float | None = 0.0
    hi: float | None = 1.0
    mean: float | None = None
    sigma: float | None = None
    kind: str = "P"
    pins: int = 4
    scale: int = 0
    wafer_shift_sigma: float = 0.0
    radial_drift: float = 0.0
    fail_bin: int = 2
    fail_sbin: int | None = None
    fail_rate: float = 0.0
    lo_spec: float | None = None
    hi_spec: float | None = None
    pattern: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("P", "M", "F"):
            raise ValueError(f"test {self.name}: kind must be P, M or F")
        if self.kind == "M" and not 1 <= self.pins <= 255:
            raise ValueError(f"test {self.name}: pins must be 1..255")

    @property
    def sbin(self) -> int:
        return self.fail_bin if self.fail_sbin is None else self.fail_sbin

    @property
    def sd(self) -> float:
        if self.sigma is not None:
            return float(self.sigma)
        if self.lo is not None and self.hi is not None and self.hi > self.lo:
            return (self.hi - self.lo) / 10.0
        ref = self.hi if self.hi is not None else self.lo
        return abs(ref) / 10.0 if ref else 0.1

    @property
    def mu(self) -> float:
        if self.mean is not None:
            return float(self.mean)
        if self.lo is not None and self.hi is not None:
            return (self.lo + self.hi) / 2.0
        if self.hi is not None:
            return self.hi - 5.0 * self.sd
        if self.lo is not None:
            return self.lo + 5.0 * self.sd
        return 0.0

    @property
    def can_fail(self) -> bool:
        return self.kind == "F" or self.lo is not None or self.hi is not None


def default_tests(
    n_param: int = 16, *, n_mpr: int = 1, n_ftr: int = 2, reuse_numbers: bool = False, mpr_pins: int = 4
) -> list[TestDef]:
    """A realistic mixed test list: DC/AC parametrics (some one-sided, some scaled), MPRs and FTRs.

    With ``reuse_numbers`` the last parametric test reuses the first one's TEST_NUM under another name
    (semantics P13).
    """
    # (name, units, lo, hi, mean, sigma, scale, hard bin, wafer shift, radial drift)
    templates: list[tuple] = [
        ("CONT_VDD", "V", -0.9, -0.2, -0.55, 0.06, 3, 2, 0.2, 0.0),
        ("IDD_STATIC", "A", None, 50e-6, 21e-6, 4e-6, 6, 3, 0.5, 1.5),
        ("IIL_LEAK", "A", -1e-6, 1e-6, 0.0, 0.15e-6, 9, 3, 0.3, 0.5),
        ("VOH_1MA", "V", 2.4, 3.3, 2.9, 0.07, 0, 4, 0.3, 0.0),
        ("VOL_1MA", "V", None, 0.4, 0.18, 0.04, 3, 4, 0.3, 1.0),
        ("VREF_BG", "V", 1.18, 1.22, 1.2, 0.004, 3, 4, 0.6, 2.0),
        ("FREQ_OSC", "Hz", 9.5e6, 10.5e6, 10.0e6, 0.08e6, -6, 5, 0.8, 1.0),
        ("TEMP_SENSE", "C", 15.0, None, 25.0, 1.5, 0, 5, 0.2, 0.0),
        ("IDDQ_SCAN", "A", None, 200e-6, 90e-6, 15e-6, 6, 3, 0.5, 2.5),
        ("VTH_NMOS", "V", 0.35, 0.55, 0.45, 0.015, 3, 4, 0.8, 1.5),
    ]
    tests: list[TestDef] = []
    for i in range(n_param):
        name, units, lo, hi, mean, sigma, scale, hbin, shift, drift = templates[i % len(templates)]
        suffix = "" if i < len(templates) else f"_{i // len(templates)}"
        tests.append(
            TestDef(
                num=1000 + 10 * i,
                name=name + suffix,
                units=units,
                lo=lo,
                hi=hi,
                mean=mean,
                sigma=sigma,
                scale=scale,
                fail_bin=hbin,
                fail_sbin=hbin * 10 + (i % 10),
                wafer_shift_sigma=shift,
                radial_drift=drift,
                lo_spec=None if lo is None else lo - abs(lo) * 0.1,
                hi_spec=None if hi is None else hi + abs(hi) * 0.1,
            )
        )
    if reuse_numbers and len(tests) >= 2:
        t = tests[-1]
        tests[-1] = replace(t, num=tests[0].num, name=t.name + "_ALT")
    for i in range(n_mpr):
        tests.append(
            TestDef(
                num=5000 + i,
                name=f"VIH_PINS{'' if i == 0 else i}",
                units="V",
                lo=0.6,
                hi=1.4,
                mean=1.0,
                sigma=0.06,
                kind="M",
                pins=mpr_pins,
                fail_bin=4,
                fail_sbin=49,
                radial_drift=1.0,
            )
        )
    for i in range(n_ftr):
        tests.append(
            TestDef(
                num=9000 + i,
                name=f"FUNC_{['SCAN', 'MBIST', 'ATSPEED', 'JTAG'][i % 4]}{'' if i < 4 else i // 4}",
                units="",
                lo=None,
                hi=None,
                kind="F",
                fail_bin=6,
                fail_sbin=60 + i % 10,
                fail_rate=0.004,
                pattern=f"pat_{i:02d}.pat",
            )
        )
    return tests


def default_bins(tests: Sequence[TestDef]) -> tuple[dict[int, tuple[str, str]], dict[int, tuple[str, str]]]:
    """Hard and soft bin tables ``{number: (name, 'P'|'F')}``: bin 1 PASS plus every fail bin."""
    category = {2: "CONTINUITY", 3: "LEAKAGE", 4: "DC_PARAM", 5: "AC_PARAM", 6: "FUNCTIONAL"}
    hard = {1: ("PASS", "P")}
    soft = {1: ("PASS", "P")}
    for t in tests:
        hard.setdefault(t.fail_bin, (category.get(t.fail_bin, f"FAIL_{t.fail_bin}"), "F"))
        soft.setdefault(t.sbin, (f"FAIL_{t.name}", "F"))
    return hard, soft


@dataclass(frozen=True)
class LotSpec:
    """Everything that shapes a generated lot. The defaults make a small 3-wafer, 4-site sort lot.

    Wafer sort when ``wafers`` is non-empty (dies on a circular map of ``die_diameter`` dies, or the
    explicit ``dies``); final test when it is empty (``parts`` parts identified by PART_ID, X/Y missing).
    Yield shaping: an edge ring (normalised radius above ``1 - edge_ring``) failing with
    ``edge_fail_rate``, an optional ``cluster`` ``(x, y, radius)`` failing with ``cluster_fail_rate``,
    and random fails at ``random_fail_rate``; ring and cluster fails persist on retest, random ones with
    ``random_fail_persist``. ``retest_fraction`` of the failing dies of each wafer (or of the file's
    parts in final test) are retested in the same file with PART_FLG bit 1 (WS) or bit 0 (FT);
    ``retest_file`` adds one more file retesting ``retest_file_fraction`` of the dies still failing,
    with no PART_FLG bits, as testers do across files. ``files`` splits the wafers (or parts) over
    several files. ``summaries``: ``"both"`` (per site and head 255), ``"site"``, ``"overall"`` or
    ``"none"``.
    """

    lot_id: str = "LOT0001"
    sublot_id: str = "S01"
    part_type: str = "STRATUM-DEV1"
    program: str = "STRATUM_PROG"
    job_rev: str = "1.0"
    tester_type: str = "SIM-9000"
    node_name: str = "tester01"
    tester_serial: str = "SN0001"
    operator: str = "op1"
    test_code: str = "WS1"
    temperature: str = "25"
    facility: str = "FAB1"
    flow_id: str = "P1"
    start_time: int = 1_700_000_000
    wafers: tuple[str, ...] = ("W01", "W02", "W03")
    die_diameter: int = 16
    dies: tuple[tuple[int, int], ...] | None = None
    parts: int = 100
    sites: int = 4
    site_base: int = 1
    head: int = 1
    tests: tuple[TestDef, ...] = field(default_factory=lambda: tuple(default_tests()))
    hard_bins: Mapping[int, tuple[str, str]] | None = None
    soft_bins: Mapping[int, tuple[str, str]] | None = None
    edge_ring: float = 0.12
    edge_fail_rate: float = 0.35
    cluster: tuple[float, float, float] | None = None
    cluster_fail_rate: float = 0.8
    random_fail_rate: float = 0.03
    random_fail_persist: float = 0.3
    stop_on_fail: bool = False
    retest_fraction: float = 0.0
    retest_file: bool = False
    retest_file_fraction: float = 1.0
    files: int = 1
    byte_order: str = "little"
    compression: str | None = None
    summaries: str = "both"
    dtr: bool = True
    gdr: bool = True
    defaults_before_parts: bool = False
    wafer_id_only_in_wrr: bool = False
    short_ftr: bool = False
    pos_x: str = "R"
    pos_y: str = "U"
    wafer_size_mm: float = 300.0
    die_size_mm: tuple[float, float] = (5.0, 5.0)
    hand_id: str = "PRB-07"
    card_id: str = "PC-1234"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.sites <= 255 - self.site_base:
            raise ValueError("sites out of range")
        if self.summaries not in ("both", "site", "overall", "none"):
            raise ValueError("summaries must be 'both', 'site', 'overall' or 'none'")
        if self.files < 1:
            raise ValueError("files must be >= 1")
        if not self.tests:
            raise ValueError("a lot needs at least one test")
        if self.files > (len(self.wafers) if self.wafers else self.parts):
            raise ValueError("more files than wafers (or final-test parts) to put in them")

    @property
    def wafer_sort(self) -> bool:
        return bool(self.wafers)

    @property
    def site_numbers(self) -> list[int]:
        return [self.site_base + k for k in range(self.sites)]

    def bins(self) -> tuple[dict[int, tuple[str, str]], dict[int, tuple[str, str]]]:
        hard, soft = default_bins(self.tests)
        if self.hard_bins is not None:
            hard = dict(self.hard_bins)
        if self.soft_bins is not None:
            soft = dict(self.soft_bins)
        for t in self.tests:
            if t.fail_bin not in hard or t.sbin not in soft:
                raise ValueError(f"test {t.name}: fail bins {t.fail_bin}/{t.sbin} missing from the bin tables")
        if 1 not in hard or 1 not in soft:
            raise ValueError("bin tables need the pass bin 1")
        return hard, soft


# --------------------------------------------------------------------------------------------- truth


@dataclass
class Parts:
    """One row per PRR written, in lot order (file by file, file order). Columns are numpy arrays.

    ``file`` indexes :attr:`GeneratedLot.files`; ``seq`` is the PRR's record sequence number in its
    file (0 = the FAR, as stdf-convert's ``sequence_number``); ``wafer`` indexes ``spec.wafers`` (-1 in
    final test) and ``wafer_id`` is its id (``""`` in final test); X/Y are -32768 in final test;
    ``retest`` is the execution ordinal of the die (wafer, X, Y) or PART_ID across the lot (0 = first);
    ``touchdown`` counts touchdowns within the file.
    """

    file: np.ndarray
    seq: np.ndarray
    wafer: np.ndarray
    wafer_id: np.ndarray
    x: np.ndarray
    y: np.ndarray
    head: np.ndarray
    site: np.ndarray
    part_id: np.ndarray
    hard_bin: np.ndarray
    soft_bin: np.ndarray
    passed: np.ndarray
    part_flg: np.ndarray
    num_test: np.ndarray
    test_t: np.ndarray
    retest: np.ndarray
    touchdown: np.ndarray

    def __len__(self) -> int:
        return len(self.file)

    def columns(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def to_arrow(self) -> Any:
        import pyarrow as pa

        return pa.table({k: pa.array(v.tolist() if v.dtype == object else v) for k, v in self.columns().items()})


@dataclass
class FileInfo:
    """One written file: its path, record counts per type, uncompressed size and part rows."""

    path: Path
    records: dict[str, int]
    bytes: int
    parts: slice
    wafers: tuple[str, ...]
    retest_file: bool
    start_t: int
    finish_t: int


@dataclass
class GeneratedLot:
    """What :func:`write_lot` wrote.

    ``results[p, t]`` is the float32 RESULT of PTR test ``tests[t]`` for part row ``p`` (NaN when the
    test is not a PTR or was not executed); ``pin_results[t]`` / ``pin_stat[t]`` are the MPR RTN_RSLT /
    RTN_STAT per pin (``(parts, pins)``); ``test_flg``/``parm_flg``/``executed``/``failed`` cover every
    test kind (FTRs have no PARM_FLG: 0).
    """

    spec: LotSpec
    files: list[FileInfo]
    tests: tuple[TestDef, ...]
    parts: Parts
    results: np.ndarray
    pin_results: dict[int, np.ndarray]
    pin_stat: dict[int, np.ndarray]
    test_flg: np.ndarray
    parm_flg: np.ndarray
    executed: np.ndarray
    failed: np.ndarray
    hard_bins: dict[int, tuple[str, str]]
    soft_bins: dict[int, tuple[str, str]]

    @property
    def paths(self) -> list[Path]:
        return [f.path for f in self.files]

    def die_keys(self) -> list[tuple]:
        """Die identity per part row: (wafer_id, x, y) in wafer sort, PART_ID in final test."""
        if self.spec.wafer_sort:
            return list(zip(self.parts.wafer_id.tolist(), self.parts.x.tolist(), self.parts.y.tolist(), strict=True))
        return [(p,) for p in self.parts.part_id.tolist()]

    def first_pass(self) -> np.ndarray:
        """Mask of the first execution of each die."""
        return self.parts.retest == 0

    def final(self, policy: str = "last") -> np.ndarray:
        """Mask of one execution per die: the last one (``"last"``) or the highest hard bin
        (``"highest_bin"``, the last of equal bins)."""
        keys = self.die_keys()
        best: dict[tuple, int] = {}
        for i, k in enumerate(keys):
            j = best.get(k)
            if j is None or policy == "last" or self.parts.hard_bin[i] >= self.parts.hard_bin[j]:
                best[k] = i
        mask = np.zeros(len(keys), bool)
        mask[list(best.values())] = True
        return mask

    def yield_(self, mask: np.ndarray | None = None) -> float:
        passed = self.parts.passed if mask is None else self.parts.passed[mask]
        return float(passed.mean()) if len(passed) else float("nan")

    def bin_counts(self, kind: str = "hard", mask: np.ndarray | None = None) -> dict[int, int]:
        bins = self.parts.hard_bin if kind == "hard" else self.parts.soft_bin
        if mask is not None:
            bins = bins[mask]
        return {int(k): int(v) for k, v in sorted(Counter(bins.tolist()).items())}

    def test_index(self, num: int, name: str | None = None) -> int:
        """Column of the test keyed by (TEST_NUM, TEST_TXT), or by number when unique."""
        hits = [i for i, t in enumerate(self.tests) if t.num == num and (name is None or t.name == name)]
        if len(hits) != 1:
            raise KeyError(f"test {num} {name or ''}: {len(hits)} matches")
        return hits[0]


# ------------------------------------------------------------------------------------------ die maps


def _explicit_dies(dies: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xy = np.asarray(dies, dtype=np.int16).reshape(-1, 2)
    x, y = xy[:, 0], xy[:, 1]
    cx, cy = (x.max() + x.min()) / 2.0, (y.max() + y.min()) / 2.0
    d = np.hypot(x - cx, y - cy)
    return x, y, d / (d.max() + 0.5 if len(d) else 1.0)


# ------------------------------------------------------------------------------------- lot generator


@dataclass
class _Dies:
    """Dies (or final-test parts) to test, one row each, in test order."""

    wafer: np.ndarray  # index into spec.wafers, -1 in final test
    x: np.ndarray
    y: np.ndarray
    r: np.ndarray  # normalised radius
    part_id: np.ndarray  # object; "" in wafer sort (numbered per file when written)
    die: np.ndarray  # index into the lot's die table
    retest_flag: np.ndarray  # PART_FLG supersede bits to write

    def take(self, idx: np.ndarray, retest_flag: int | None = None) -> _Dies:
        flags = self.retest_flag[idx] if retest_flag is None else np.full(len(idx), retest_flag, np.uint8)
        return _Dies(self.wafer[idx], self.x[idx], self.y[idx], self.r[idx], self.part_id[idx], self.die[idx], flags)

    def __len__(self) -> int:
        return len(self.wafer)


@dataclass
class _Outcome:
    """The simulated execution of a :class:`_Dies` batch, one row per die (columns: tests)."""

    values: np.ndarray  # PTR results (NaN elsewhere)
    pins: dict[int, np.ndarray]  # MPR column -> (dies, pins) results
    stat: dict[int, np.ndarray]  # MPR column -> (dies, pins) RTN_STAT
    test_flg: np.ndarray
    parm_flg: np.ndarray
    failed: np.ndarray
    executed: np.ndarray
    hard_bin: np.ndarray
    soft_bin: np.ndarray
    passed: np.ndarray
    test_t: np.ndarray
    ftr_fails: np.ndarray  # NUM_FAIL of failing FTRs


class _LotWriter:
    def __init__(self, spec: LotSpec, directory: Path) -> None:
        self.spec = spec
        self.dir = directory
        self.rng = np.random.default_rng(spec.seed)
        self.tests = tuple(spec.tests)
        self.hard_bins, self.soft_bins = spec.bins()
        t = self.tests
        self.mu = np.array([x.mu for x in t])
        self.sd = np.array([x.sd for x in t])
        self.lo32 = np.array([np.nan if x.lo is None else x.lo for x in t], np.float32)
        self.hi32 = np.array([np.nan if x.hi is None else x.hi for x in t], np.float32)
        self.drift = np.array([x.radial_drift for x in t])
        self.hbin = np.array([x.fail_bin for x in t], np.uint16)
        self.sbin = np.array([x.sbin for x in t], np.uint16)
        self.failable = np.flatnonzero([x.can_fail for x in t])
        self.max_pins = max((x.pins for x in t if x.kind == "M"), default=0)
        n_w = max(1, len(spec.wafers))
        self.shift = self.rng.standard_normal((n_w, len(t))) * np.array([x.wafer_shift_sigma for x in t]) * self.sd
        self.pin_offset = {i: self.rng.standard_normal(x.pins) * 0.3 * x.sd for i, x in enumerate(t) if x.kind == "M"}
        self.clock = float(spec.start_time)
        self.rows: list[dict[str, Any]] = []  # every PRR written, in lot order
        self.files: list[FileInfo] = []
        self.center = (0, 0)  # WCR CENTER_X/Y
        self.dies, self.kill, self.kill_persists = self._die_table()
        # per-file state, reset by _write_file
        self.w: StdfWriter  # the file being written
        self.full_done: set[tuple[int, str]] = set()  # tests whose default data the file already has
        self.file_rows: list[dict[str, Any]] = []
        self.touchdowns = 0

    # ----------------------------------------------------------------------------------- dies
    def _die_table(self) -> tuple[_Dies, np.ndarray, np.ndarray]:
        """Every die of the lot, the test each one's defect makes fail (-1: none) and whether that
        defect persists on retest (edge ring and cluster do; random ones with ``random_fail_persist``)."""
        s = self.spec
        if s.wafer_sort:
            x, y, r = _explicit_dies(s.dies) if s.dies else die_map(s.die_diameter)
            self.center = (int(round((x.min() + x.max()) / 2)), int(round((y.min() + y.max()) / 2)))
            n = len(x)
            wafer = np.repeat(np.arange(len(s.wafers)), n)
            x, y, r = np.tile(x, len(s.wafers)), np.tile(y, len(s.wafers)), np.tile(r, len(s.wafers))
            part_id = np.array([""] * len(wafer), dtype=object)
        else:
            n = s.parts
            wafer = np.full(n, -1)
            x = np.full(n, MISSING_XY, np.int16)
            y = np.full(n, MISSING_XY, np.int16)
            r = np.zeros(n)
            part_id = np.array([str(i + 1) for i in range(n)], dtype=object)
        m = len(wafer)
        dies = _Dies(wafer, x, y, r, part_id, np.arange(m), np.zeros(m, np.uint8))
        rnd = self.rng.random((3, m))
        hard = np.zeros(m, bool)
        if s.wafer_sort:
            hard |= (r > 1.0 - s.edge_ring) & (rnd[0] < s.edge_fail_rate)
            if s.cluster is not None:
                cx, cy, cr = s.cluster
                hard |= (np.hypot(x - cx, y - cy) <= cr) & (rnd[1] < s.cluster_fail_rate)
        soft = ~hard & (rnd[2] < s.random_fail_rate)
        kill = np.full(m, -1)
        if len(self.failable):
            pick = self.failable[self.rng.integers(0, len(self.failable), m)]
            kill = np.where(hard | soft, pick, -1)
        return dies, kill, hard

    # ----------------------------------------------------------------------------- simulation
    def _simulate(self, ex: _Dies, retest: bool) -> _Outcome:
        """Draw results for the dies ``ex`` and derive flags and bins."""
        n, nt = len(ex), len(self.tests)
        rng = self.rng
        w = np.maximum(ex.wafer, 0)
        base = self.mu + self.shift[w] + (self.drift * self.sd) * (ex.r[:, None] ** 2)
        z = rng.standard_normal((n, nt))
        vals = (base + self.sd * z).astype(np.float32)
        kill = self.kill[ex.die]
        if retest:
            keep = self.kill_persists[ex.die] | (rng.random(n) < self.spec.random_fail_persist)
            kill = np.where(keep, kill, -1)
        kz = np.abs(rng.standard_normal(n)) + 0.5
        failed = np.zeros((n, nt), bool)
        test_flg = np.zeros((n, nt), np.uint8)
        parm_flg = np.zeros((n, nt), np.uint8)
        pins: dict[int, np.ndarray] = {}
        stat: dict[int, np.ndarray] = {}
        for t, td in enumerate(self.tests):
            lo, hi = self.lo32[t], self.hi32[t]
            forced = kill == t
            if td.kind == "F":
                f = (rng.random(n) < td.fail_rate) | forced
                vals[:, t] = np.nan
            elif td.kind == "P":
                v = vals[:, t]
                v[forced] = self._beyond(td, kz[forced])
                f, above, below = self._judge(v, lo, hi)
                parm_flg[:, t] = PARM_EQ_PASS | np.where(above, PARM_ABOVE, 0) | np.where(below, PARM_BELOW, 0)
            else:
                pv = (base[:, t, None] + self.pin_offset[t] + self.sd[t] * rng.standard_normal((n, td.pins))).astype(
                    np.float32
                )
                rows = np.flatnonzero(forced)
                pv[rows, rng.integers(0, td.pins, len(rows))] = self._beyond(td, kz[rows])
                f_pin, above, below = self._judge(pv, lo, hi)
                f = f_pin.any(axis=1)
                parm_flg[:, t] = (
                    PARM_EQ_PASS | np.where(above.any(1), PARM_ABOVE, 0) | np.where(below.any(1), PARM_BELOW, 0)
                )
                pins[t] = pv
                stat[t] = np.where(above, PIN_FAIL_HIGH, np.where(below, PIN_FAIL_LOW, PIN_PASS)).astype(np.uint8)
                vals[:, t] = np.nan
            failed[:, t] = f
            test_flg[:, t] = np.where(f, TEST_FAILED, 0)
        if self.spec.stop_on_fail:
            executed = np.cumsum(failed, axis=1) - failed == 0
        else:
            executed = np.ones((n, nt), bool)
        failed &= executed
        vals[~executed] = np.nan
        for t, pv in pins.items():
            pv[~executed[:, t]] = np.nan
        any_fail = failed.any(axis=1)
        first = np.argmax(failed, axis=1)
        return _Outcome(
            values=vals, pins=pins, stat=stat, test_flg=test_flg, parm_flg=parm_flg, failed=failed, executed=executed,
            hard_bin=np.where(any_fail, self.hbin[first], 1).astype(np.uint16),
            soft_bin=np.where(any_fail, self.sbin[first], 1).astype(np.uint16), passed=np.asarray(~any_fail),
            test_t=(40 + 2 * executed.sum(axis=1) + rng.integers(0, 20, n)).astype(np.uint32),
            ftr_fails=rng.integers(1, 64, (n, nt)),
        )  # fmt: skip

    @staticmethod
    def _beyond(td: TestDef, k: np.ndarray) -> np.ndarray:
        """Values ``k`` sigmas outside the test's limits (above the high one when it has one)."""
        if td.hi is not None:
            return (td.hi + k * td.sd).astype(np.float32)
        if td.lo is not None:
            return (td.lo - k * td.sd).astype(np.float32)
        return np.full(len(k), td.mu, np.float32)

    @staticmethod
    def _judge(v: np.ndarray, lo: np.float32, hi: np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore"):
            above = v > hi if not np.isnan(hi) else np.zeros(v.shape, bool)
            below = v < lo if not np.isnan(lo) else np.zeros(v.shape, bool)
        return above | below, above, below

    # -------------------------------------------------------------------------------- writing
    def run(self) -> GeneratedLot:
        groups = self._file_groups()
        for i, group in enumerate(groups):
            self._write_file(i, group)
        if self.spec.retest_file:
            self._write_file(len(groups), None)
        return self._truth()

    def _file_groups(self) -> list[np.ndarray]:
        """Die indices written by each file: whole wafers (WS) or runs of parts (FT)."""
        s, dies = self.spec, self.dies
        if s.wafer_sort:
            wafer_groups = np.array_split(np.arange(len(s.wafers)), s.files)
            return [np.flatnonzero(np.isin(dies.wafer, g)) for g in wafer_groups]
        return list(np.array_split(np.arange(len(dies)), s.files))

    def _path(self, index: int, retest_file: bool) -> Path:
        s = self.spec
        ext = {None: "", "gzip": ".gz", "bzip2": ".bz2"}[s.compression]
        tag = f"{index + 1:02d}" + ("_retest" if retest_file else "")
        safe_lot = re.sub(r"[^A-Za-z0-9._-]", "_", s.lot_id)  # lot ids may hold '/' or spaces
        return self.dir / f"{safe_lot}_{s.test_code}_{tag}.stdf{ext}"

    def _write_file(self, index: int, group: np.ndarray | None) -> None:
        """Write one file: the dies of ``group``, or (``None``) the retest file."""
        s, dies = self.spec, self.dies
        retest_file = group is None
        path = self._path(index, retest_file)
        first_row = len(self.rows)
        self.full_done = set()
        self.file_rows = []
        self.touchdowns = 0
        start = int(self.clock)
        with StdfWriter(path, byte_order=s.byte_order, compression=s.compression) as w:
            self.w = w
            self._header(retest_file, start)
            if s.defaults_before_parts:
                self._default_records()
            if group is None:
                self._retest_file_body()
            elif s.wafer_sort:
                for wi in np.unique(dies.wafer[group]):
                    self._wafer(int(wi), dies.take(group[dies.wafer[group] == wi]))
            else:
                self._ft_block(dies.take(group))
            finish = int(self.clock)
            self._summaries(finish)
        self.rows.extend(self.file_rows)
        wafers = tuple(dict.fromkeys(r["wafer_id"] for r in self.file_rows if r["wafer_id"]))
        self.files.append(
            FileInfo(path, dict(w.counts), w.bytes_written, slice(first_row, len(self.rows)), wafers, retest_file,
                     start, finish)
        )  # fmt: skip

    def _header(self, retest_file: bool, start: int) -> None:
        s, w = self.spec, self.w
        w.write("ATR", MOD_TIM=start, CMD_LINE=f"stratum generate --seed {s.seed}")
        w.write(
            "MIR",
            SETUP_T=start - 60, START_T=start, STAT_NUM=1, MODE_COD="P", RTST_COD="Y" if retest_file else " ",
            PROT_COD=" ", BURN_TIM=65535, CMOD_COD=" ", LOT_ID=s.lot_id, PART_TYP=s.part_type, NODE_NAM=s.node_name,
            TSTR_TYP=s.tester_type, JOB_NAM=s.program, JOB_REV=s.job_rev, SBLOT_ID=s.sublot_id, OPER_NAM=s.operator,
            EXEC_TYP="stratum-sim", EXEC_VER="1.0", TEST_COD=s.test_code, TST_TEMP=s.temperature, USER_TXT="",
            AUX_FILE="", PKG_TYP="" if s.wafer_sort else "QFN48", FAMLY_ID="STRATUM", DATE_COD="", FACIL_ID=s.facility,
            FLOOR_ID="F1", PROC_ID="N7", OPER_FRQ="", SPEC_NAM="SPEC-1", SPEC_VER="A", FLOW_ID=s.flow_id,
            SETUP_ID="", DSGN_REV="R1", ENG_ID="", ROM_COD="", SERL_NUM=s.tester_serial, SUPR_NAM="",
        )  # fmt: skip
        if retest_file:
            w.write("RDR", RTST_BIN=sorted(b for b, (_, pf) in self.hard_bins.items() if pf == "F"))
        sites = s.site_numbers
        w.write(
            "SDR",
            HEAD_NUM=s.head, SITE_GRP=1, SITE_NUM=sites, HAND_TYP="PROBER" if s.wafer_sort else "HANDLER",
            HAND_ID=s.hand_id, CARD_TYP="PROBECARD" if s.wafer_sort else "", CARD_ID=s.card_id if s.wafer_sort else "",
            LOAD_TYP="LOADBOARD", LOAD_ID="LB-01", DIB_TYP="", DIB_ID="", CABL_TYP="", CABL_ID="",
            CONT_TYP="", CONT_ID="", LASR_TYP="", LASR_ID="", EXTR_TYP="", EXTR_ID="",
        )  # fmt: skip
        for k, site in enumerate(sites):
            for p in range(self.max_pins):
                w.write(
                    "PMR", PMR_INDX=self._pmr_index(k, p), CHAN_TYP=0, CHAN_NAM=f"CH{k * self.max_pins + p + 1}",
                    PHY_NAM=f"P{p}", LOG_NAM=f"IO{p}", HEAD_NUM=s.head, SITE_NUM=site,
                )  # fmt: skip
        if self.max_pins:
            pins = [self._pmr_index(0, p) for p in range(self.max_pins)]
            w.write("PGR", GRP_INDX=32768, GRP_NAM="IO_PINS", PMR_INDX=pins)
        if s.wafer_sort:
            w.write(
                "WCR",
                WAFR_SIZ=s.wafer_size_mm, DIE_HT=s.die_size_mm[1], DIE_WID=s.die_size_mm[0], WF_UNITS=3, WF_FLAT="D",
                CENTER_X=self.center[0], CENTER_Y=self.center[1], POS_X=s.pos_x, POS_Y=s.pos_y,
            )  # fmt: skip
        if s.gdr:
            w.write(
                "GDR",
                GEN_DATA=[
                    {"type": "Cn", "value": "RECIPE"}, {"type": "Cn", "value": s.program},
                    {"type": "U2", "value": len(self.tests)}, {"type": "R4", "value": float(s.temperature or 0)},
                    {"type": "B0", "value": None}, {"type": "U4", "value": s.seed & 0xFFFFFFFF},
                ],
            )  # fmt: skip
        if s.dtr:
            w.write("DTR", TEXT_DAT=f"program {s.program} rev {s.job_rev} loaded")

    def _pmr_index(self, site_k: int, pin: int) -> int:
        return 1 + site_k * self.max_pins + pin

    def _default_records(self) -> None:
        """Default-data-only PTR/MPR of every test, outside any part (semantics P2)."""
        s = self.spec
        site = s.site_numbers[0]
        for td in self.tests:
            if td.kind == "P":
                d = self._ptr_fields(td, site, 0.0, TEST_NOT_EXECUTED, 0)
            elif td.kind == "M":
                d = self._mpr_fields(td, site, [0] * td.pins, [0.0] * td.pins, TEST_NOT_EXECUTED, 0)
            else:
                continue
            d.update(self._full_ptr(td) if td.kind == "P" else self._full_mpr(td, 0))
            self.w.write_record("PTR" if td.kind == "P" else "MPR", d)
            self.full_done.add((td.num, td.name))

    def _wafer(self, wi: int, dies: _Dies, *, retest_only: bool = False) -> None:
        """WIR, the dies of wafer ``wi`` (then in-file retests), DTR and WRR."""
        s, w = self.spec, self.w
        wid = s.wafers[wi]
        w.write(
            "WIR", HEAD_NUM=s.head, SITE_GRP=1, START_T=int(self.clock), WAFER_ID="" if s.wafer_id_only_in_wrr else wid
        )
        first_row = len(self.file_rows)
        self._run(dies, retest=retest_only)
        if not retest_only:
            self._in_file_retests(first_row, PART_SUPERSEDES_XY)
        rows = self.file_rows[first_row:]
        good = sum(r["passed"] for r in rows)
        if s.dtr:
            w.write("DTR", TEXT_DAT=f"wafer {wid} done: {len(rows)} parts, {good} good")
        w.write(
            "WRR",
            HEAD_NUM=s.head, SITE_GRP=1, FINISH_T=int(self.clock), PART_CNT=len(rows),
            RTST_CNT=sum(r["retest_in_file"] for r in rows), ABRT_CNT=0, GOOD_CNT=good, FUNC_CNT=MISSING_U4,
            WAFER_ID=wid, FABWF_ID=f"{s.lot_id}-{wid}", FRAME_ID="", MASK_ID="MSK1", USR_DESC="", EXC_DESC="",
        )  # fmt: skip

    def _ft_block(self, dies: _Dies) -> None:
        first_row = len(self.file_rows)
        self._run(dies, retest=False)
        self._in_file_retests(first_row, PART_SUPERSEDES_ID)

    def _in_file_retests(self, first_row: int, flag: int) -> None:
        """Retest ``retest_fraction`` of the failing parts written since ``first_row``, flagged ``flag``."""
        rows = [r for r in self.file_rows[first_row:] if not r["passed"]]
        k = int(round(len(rows) * self.spec.retest_fraction))
        if k:
            chosen = sorted(self.rng.choice(len(rows), k, replace=False))
            self._run(self._retest_dies([rows[i] for i in chosen], flag), retest=True)

    def _retest_dies(self, rows: list[dict[str, Any]], flag: int) -> _Dies:
        return self.dies.take(np.array([r["die"] for r in rows], dtype=np.int64), retest_flag=flag)

    def _retest_file_body(self) -> None:
        """Retest, in a file of its own, the dies whose latest execution failed (no PART_FLG bits)."""
        s = self.spec
        latest: dict[int, dict[str, Any]] = {}
        for r in self.rows:
            latest[r["die"]] = r
        failing = [r for r in latest.values() if not r["passed"]]
        k = int(round(len(failing) * s.retest_file_fraction))
        chosen = sorted(self.rng.choice(len(failing), k, replace=False)) if k else []
        picked = [failing[i] for i in chosen]
        if s.wafer_sort:
            for wi in sorted({r["wafer"] for r in picked}):
                self._wafer(wi, self._retest_dies([r for r in picked if r["wafer"] == wi], 0), retest_only=True)
        elif picked:
            self._run(self._retest_dies(picked, 0), retest=True)

    def _run(self, dies: _Dies, *, retest: bool) -> None:
        """Simulate ``dies`` and write them as touchdowns of up to ``sites`` parts."""
        out = self._simulate(dies, retest)
        n_sites = self.spec.sites
        for start in range(0, len(dies), n_sites):
            self._touchdown(dies, out, range(start, min(start + n_sites, len(dies))))

    def _touchdown(self, dies: _Dies, out: _Outcome, rows: range) -> None:
        """PIR per active site, the sites' test records interleaved test by test, a PRR per site."""
        s, w = self.spec, self.w
        sites = s.site_numbers[: len(rows)]
        for site in sites:
            w.write("PIR", HEAD_NUM=s.head, SITE_NUM=site)
        for t, td in enumerate(self.tests):
            for k, i in enumerate(rows):
                if not out.executed[i, t]:
                    continue
                full = (td.num, td.name) not in self.full_done
                tflg, pflg = int(out.test_flg[i, t]), int(out.parm_flg[i, t])
                if td.kind == "P":
                    d = self._ptr_fields(td, sites[k], out.values[i, t], tflg, pflg)
                    if full:
                        d.update(self._full_ptr(td))
                    w.write_record("PTR", d)
                elif td.kind == "M":
                    d = self._mpr_fields(td, sites[k], out.stat[t][i].tolist(), out.pins[t][i].tolist(), tflg, pflg)
                    if full:
                        d.update(self._full_mpr(td, k))
                    w.write_record("MPR", d)
                else:
                    w.write_record(
                        "FTR", self._ftr_fields(td, sites[k], bool(out.failed[i, t]), out.ftr_fails[i, t], full)
                    )
                self.full_done.add((td.num, td.name))
        for k, i in enumerate(rows):
            retest_bits = int(dies.retest_flag[i])
            flg = retest_bits | (0 if out.passed[i] else PART_FAILED)
            part_id = dies.part_id[i] or str(len(self.file_rows) + 1)
            num_test = int(out.executed[i].sum())
            seq = w.records
            w.write(
                "PRR",
                HEAD_NUM=s.head, SITE_NUM=sites[k], PART_FLG=flg, NUM_TEST=num_test, HARD_BIN=int(out.hard_bin[i]),
                SOFT_BIN=int(out.soft_bin[i]), X_COORD=int(dies.x[i]), Y_COORD=int(dies.y[i]),
                TEST_T=int(out.test_t[i]), PART_ID=part_id, PART_TXT="",
            )  # fmt: skip
            wafer = int(dies.wafer[i])
            self.file_rows.append(
                {
                    "file": len(self.files), "seq": seq, "wafer": wafer,
                    "wafer_id": s.wafers[wafer] if wafer >= 0 else "", "x": int(dies.x[i]), "y": int(dies.y[i]),
                    "head": s.head, "site": sites[k], "part_id": part_id,
                    "hard_bin": int(out.hard_bin[i]), "soft_bin": int(out.soft_bin[i]), "passed": bool(out.passed[i]),
                    "part_flg": flg, "num_test": num_test, "test_t": int(out.test_t[i]), "touchdown": self.touchdowns,
                    "die": int(dies.die[i]), "retest_in_file": bool(retest_bits), "values": out.values[i],
                    "test_flg": out.test_flg[i], "parm_flg": out.parm_flg[i], "executed": out.executed[i],
                    "failed": out.failed[i], "pins": {t: v[i] for t, v in out.pins.items()},
                    "stat": {t: v[i] for t, v in out.stat.items()},
                }
            )  # fmt: skip
        self.touchdowns += 1
        self.clock += float(out.test_t[rows.start : rows.stop].max()) / 1000.0 + 0.4  # test + index time

    # ------------------------------------------------------------------------------ record fields
    def _ptr_fields(self, td: TestDef, site: int, value: float, tflg: int, pflg: int) -> dict[str, Any]:
        return {
            "TEST_NUM": td.num, "HEAD_NUM": self.spec.head, "SITE_NUM": site, "TEST_FLG": int(tflg),
            "PARM_FLG": int(pflg), "RESULT": float(value), "TEST_TXT": td.name, "ALARM_ID": "",
        }  # fmt: skip

    @staticmethod
    def _limits(td: TestDef) -> dict[str, Any]:
        return {
            "OPT_FLAG": ptr_opt_flag(td.lo, td.hi, td.lo_spec, td.hi_spec), "RES_SCAL": td.scale,
            "LLM_SCAL": td.scale, "HLM_SCAL": td.scale, "LO_LIMIT": 0.0 if td.lo is None else td.lo,
            "HI_LIMIT": 0.0 if td.hi is None else td.hi,
        }  # fmt: skip

    def _full_ptr(self, td: TestDef) -> dict[str, Any]:
        return {
            **self._limits(td), "UNITS": td.units, "C_RESFMT": "%9.4f", "C_LLMFMT": "%9.4f", "C_HLMFMT": "%9.4f",
            "LO_SPEC": 0.0 if td.lo_spec is None else td.lo_spec, "HI_SPEC": 0.0 if td.hi_spec is None else td.hi_spec,
        }  # fmt: skip

    def _mpr_fields(self, td: TestDef, site: int, stat: list, res: list, tflg: int, pflg: int) -> dict[str, Any]:
        return {
            "TEST_NUM": td.num, "HEAD_NUM": self.spec.head, "SITE_NUM": site, "TEST_FLG": int(tflg),
            "PARM_FLG": int(pflg), "RTN_STAT": stat, "RTN_RSLT": res, "TEST_TXT": td.name, "ALARM_ID": "",
        }  # fmt: skip

    def _full_mpr(self, td: TestDef, site_k: int) -> dict[str, Any]:
        return {
            **self._limits(td), "START_IN": 0.0, "INCR_IN": 0.0,
            "RTN_INDX": [self._pmr_index(site_k, p) for p in range(td.pins)], "UNITS": td.units, "UNITS_IN": "",
            "C_RESFMT": "%9.4f", "C_LLMFMT": "%9.4f", "C_HLMFMT": "%9.4f",
            "LO_SPEC": 0.0 if td.lo_spec is None else td.lo_spec, "HI_SPEC": 0.0 if td.hi_spec is None else td.hi_spec,
        }  # fmt: skip

    def _ftr_fields(self, td: TestDef, site: int, failed: bool, n_fail: int, full: bool) -> dict[str, Any]:
        d: dict[str, Any] = {
            "TEST_NUM": td.num, "HEAD_NUM": self.spec.head, "SITE_NUM": site, "TEST_FLG": TEST_FAILED if failed else 0
        }  # fmt: skip
        if self.spec.short_ftr and not failed and not full:
            return d
        d.update(
            OPT_FLAG=FTR_OPT_FAIL if failed else FTR_OPT_PASS, CYCL_CNT=1000 + n_fail * 13, REL_VADR=0, REPT_CNT=0,
            NUM_FAIL=int(n_fail) if failed else 0, XFAIL_AD=0, YFAIL_AD=0, VECT_OFF=0, RTN_ICNT=0, PGM_ICNT=0,
            FAIL_PIN={"bit_count": 8, "bit_data": bytes((int(n_fail) & 0xFF,))} if failed else
            {"bit_count": 0, "bit_data": b""},
            VECT_NAM=td.pattern, TIME_SET="TS1", OP_CODE="", TEST_TXT=td.name,
        )  # fmt: skip
        if full:
            d.update(ALARM_ID="", PROG_TXT="", RSLT_TXT="", PATG_NUM=255, SPIN_MAP={"bit_count": 0, "bit_data": b""})
        return d

    # -------------------------------------------------------------------------------- summaries
    def _summaries(self, finish: int) -> None:
        s, w = self.spec, self.w
        rows = self.file_rows
        per_site = s.summaries in ("both", "site")
        overall = s.summaries in ("both", "overall")
        heads: list[tuple[int, int, list]] = []
        if per_site:
            heads += [(s.head, site, [r for r in rows if r["site"] == site]) for site in s.site_numbers]
        if overall:
            heads.append((255, 0, rows))
        heads = [h for h in heads if h[0] == 255 or h[2]]
        if s.summaries != "none":
            for t, td in enumerate(self.tests):
                for head, site, rs in heads:
                    self._tsr(head, site, t, td, rs)
            for kind, table in (("HBR", self.hard_bins), ("SBR", self.soft_bins)):
                for head, site, rs in heads:
                    counts = Counter(r["hard_bin" if kind == "HBR" else "soft_bin"] for r in rs)
                    for b, (name, pf) in sorted(table.items()):
                        if head != 255 and not counts[b]:
                            continue
                        pre = "HBIN" if kind == "HBR" else "SBIN"
                        w.write_record(
                            kind,
                            {"HEAD_NUM": head, "SITE_NUM": site, f"{pre}_NUM": b, f"{pre}_CNT": counts[b],
                             f"{pre}_PF": pf, f"{pre}_NAM": name},
                        )  # fmt: skip
            for head, site, rs in heads:
                w.write(
                    "PCR",
                    HEAD_NUM=head, SITE_NUM=site, PART_CNT=len(rs), RTST_CNT=sum(r["retest_in_file"] for r in rs),
                    ABRT_CNT=0, GOOD_CNT=sum(r["passed"] for r in rs), FUNC_CNT=MISSING_U4,
                )  # fmt: skip
        w.write("MRR", FINISH_T=finish, DISP_COD=" ", USR_DESC="", EXC_DESC="")

    def _tsr(self, head: int, site: int, t: int, td: TestDef, rows: list) -> None:
        executed = [r for r in rows if r["executed"][t]]
        fails = sum(bool(r["failed"][t]) for r in executed)
        d: dict[str, Any] = {
            "HEAD_NUM": head, "SITE_NUM": site, "TEST_TYP": td.kind, "TEST_NUM": td.num, "EXEC_CNT": len(executed),
            "FAIL_CNT": fails, "ALRM_CNT": 0, "TEST_NAM": td.name, "SEQ_NAME": "", "TEST_LBL": "",
        }  # fmt: skip
        if td.kind == "P" and executed:
            v = np.array([r["values"][t] for r in executed], np.float64)
            d.update(
                OPT_FLAG=0x04, TEST_TIM=0.0, TEST_MIN=float(v.min()), TEST_MAX=float(v.max()),
                TST_SUMS=float(v.sum()), TST_SQRS=float((v * v).sum()),
            )  # fmt: skip
        else:
            d.update(OPT_FLAG=0x37, TEST_TIM=0.0, TEST_MIN=0.0, TEST_MAX=0.0, TST_SUMS=0.0, TST_SQRS=0.0)
        self.w.write_record("TSR", d)

    # ------------------------------------------------------------------------------------ truth
    def _truth(self) -> GeneratedLot:
        rows = self.rows
        nt = len(self.tests)
        n = len(rows)

        def col(key: str, dtype: Any) -> np.ndarray:
            return np.array([r[key] for r in rows], dtype=dtype)

        keys = [(r["wafer_id"], r["x"], r["y"]) for r in rows] if self.spec.wafer_sort else [r["part_id"] for r in rows]
        seen: Counter = Counter()
        ordinal = np.zeros(n, np.int16)
        for i, k in enumerate(keys):
            ordinal[i] = seen[k]
            seen[k] += 1
        parts = Parts(
            file=col("file", np.int16), seq=col("seq", np.int64), wafer=col("wafer", np.int16),
            wafer_id=col("wafer_id", object), x=col("x", np.int16), y=col("y", np.int16), head=col("head", np.uint8),
            site=col("site", np.uint8), part_id=col("part_id", object), hard_bin=col("hard_bin", np.uint16),
            soft_bin=col("soft_bin", np.uint16), passed=col("passed", bool), part_flg=col("part_flg", np.uint8),
            num_test=col("num_test", np.uint16), test_t=col("test_t", np.uint32), retest=ordinal,
            touchdown=col("touchdown", np.int32),
        )  # fmt: skip

        def mat(key: str, dtype: Any) -> np.ndarray:
            return np.stack([r[key] for r in rows]).astype(dtype) if rows else np.zeros((0, nt), dtype)

        pins = {t: np.stack([r["pins"][t] for r in rows]) for t in self.pin_offset} if rows else {}
        stat = {t: np.stack([r["stat"][t] for r in rows]) for t in self.pin_offset} if rows else {}
        return GeneratedLot(
            spec=self.spec, files=self.files, tests=self.tests, parts=parts, results=mat("values", np.float32),
            pin_results=pins, pin_stat=stat, test_flg=mat("test_flg", np.uint8), parm_flg=mat("parm_flg", np.uint8),
            executed=mat("executed", bool), failed=mat("failed", bool), hard_bins=self.hard_bins,
            soft_bins=self.soft_bins,
        )  # fmt: skip


def write_lot(spec: LotSpec, directory: str | Path) -> GeneratedLot:
    """Write the lot described by ``spec`` into ``directory`` (one or more files) and return its truth.

    File names are ``{lot_id}_{test_code}_{NN}.stdf`` (``_retest`` for the retest file; ``.gz``/``.bz2``
    when compressed). The same spec (seed included) always gives byte-identical files.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return _LotWriter(spec, directory).run()
