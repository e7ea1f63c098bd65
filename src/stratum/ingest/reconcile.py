"""Cross-check of a file's summary records against its raw records (stdf-semantics §10).

Counts come from PRRs; the tester's summaries (HBR/SBR bin counts, PCR and WRR part/retest/abort/good
counts) are kept apart and only compared. ``SummaryCheck`` wraps the ingest sink, keeps the few per-part
columns the comparison needs while the rows stream through, and after the parse lists every summary count
that differs from the number Stratum reports for the same quantity in this file:

- HBR/SBR count of a bin, PCR/WRR PART_CNT and GOOD_CNT: dies after retests (the file's final view under
  the job's retest policy), as ``bins.part_count`` and ``lots``/``wafers`` report them;
- RTST_CNT: executions that are retests; ABRT_CNT: executions that ended abnormally (PART_FLG bit 2).

A summary on HEAD 255 is taken as is; without one, the per-site records are added (never both, P7). The
final view follows the views' rules for one file: a die is (wafer, X, Y) on a wafer, else PART_ID, else the
execution itself; ``last`` keeps the latest execution, ``highest_bin`` the highest hard bin, then the latest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from stratum.stdf.columns import Masked, concat_columns

_PART_COLS = ("part_seq", "hard_bin", "soft_bin", "passed", "abort", "x", "y", "part_id", "wafer_seq")


@dataclass
class Mismatch:
    message: str
    summary_count: int
    record_count: int

    def to_warning(self) -> dict[str, Any]:
        return {
            "code": "summary_mismatch",
            "message": self.message,
            "summary_count": self.summary_count,
            "record_count": self.record_count,
        }


class SummaryCheck:
    """A sink wrapper: passes every batch on and keeps what the summary cross-check needs."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self._parts: list[dict[str, Any]] = []
        self._bins: list[dict[str, list]] = []
        self._pcr: list[dict[str, list]] = []

    def begin(self, header: Any) -> None:
        self.sink.begin(header)

    def rows(self, table: str, cols: dict[str, Any]) -> None:
        if table == "parts":
            self._parts.append({k: cols[k] for k in _PART_COLS})
        elif table == "bins":
            self._bins.append(cols)
        elif table == "part_counts":
            self._pcr.append(cols)
        self.sink.rows(table, cols)

    # -- the comparison --------------------------------------------------------------------------
    def mismatches(self, wafers: Iterable[dict[str, Any]], retest_policy: str) -> list[Mismatch]:
        bins = _records(self._bins)
        pcr = _records(self._pcr)
        wafers = list(wafers)
        has_wrr = any(w.get(k) is not None for w in wafers for k in ("part_cnt", "rtst_cnt", "abrt_cnt", "good_cnt"))
        if not bins and not pcr and not has_wrr:
            return []
        p = self._part_table(bins, {w["wafer_seq"]: w.get("wafer_id") for w in wafers}, retest_policy)
        out: list[Mismatch] = []
        for bt, name in (("H", "hard"), ("S", "soft")):
            col = p["hard_bin"] if bt == "H" else p["soft_bin"]
            for (num, where), summary in sorted(_bin_summaries(bins, bt).items()):
                sel = col == num
                final = int((sel & p["final"]).sum())
                if summary != final:
                    first, execs = int((sel & p["first"]).sum()), int(sel.sum())
                    out.append(
                        Mismatch(
                            f"{'HBR' if bt == 'H' else 'SBR'} {name} bin {num}: {summary} in the summary ({where}), "
                            f"{final} dies in the PRRs after retests ({first} at first pass, {execs} executions)",
                            summary,
                            final,
                        )
                    )
        everything = np.ones(len(p["final"]), bool)
        out += _count_mismatches("PCR", _pcr_summary(pcr), p, everything)
        for w in wafers:
            label = "WRR" if w.get("wafer_id") is None else f"WRR of wafer {w['wafer_id']}"
            wrr: dict[str, tuple[int | None, str]] = {
                k: (w.get(k.lower()), "") for k in ("PART_CNT", "GOOD_CNT", "RTST_CNT", "ABRT_CNT")
            }
            out += _count_mismatches(label, wrr, p, p["wafer_seq"] == w["wafer_seq"])
        return out

    def _part_table(
        self, bins: list[dict[str, Any]], wafer_ids: dict[int, str | None], retest_policy: str
    ) -> dict[str, np.ndarray]:
        if not self._parts:
            z = np.zeros(0, np.int64)
            return {
                "hard_bin": z,
                "soft_bin": z,
                "final": z.astype(bool),
                "first": z.astype(bool),
                "good": z.astype(bool),
                "abort": z.astype(bool),
                "wafer_seq": z,
            }
        cols = {k: concat_columns([b[k] for b in self._parts]) for k in _PART_COLS}
        n = len(cols["part_seq"])

        def masked(c: Any, missing: int = -1) -> np.ndarray:
            return np.where(c.valid, c.values.astype(np.int64), missing) if isinstance(c, Masked) else np.asarray(c)

        seq = np.asarray(cols["part_seq"], np.int64)
        hard = masked(cols["hard_bin"])
        soft = masked(cols["soft_bin"])
        wseq = masked(cols["wafer_seq"])
        x, y = masked(cols["x"], -(1 << 40)), masked(cols["y"], -(1 << 40))
        xy_ok = cols["x"].valid & cols["y"].valid
        pids = list(cols["part_id"])
        # pass/fail: PART_FLG, else the hard bin's HBR pass/fail (as the parts view)
        hb_pf = _bin_pass_fail(bins)
        pv = cols["passed"]
        good = np.where(pv.valid, pv.values.astype(bool), [hb_pf.get(int(h)) == "P" for h in hard.tolist()])
        # die of every execution, then first and final execution per die
        keys: list[Any] = []
        for i in range(n):
            if wseq[i] >= 0 and xy_ok[i]:
                keys.append(("W", wafer_ids.get(int(wseq[i])) or "", int(x[i]), int(y[i])))
            elif pids[i]:
                keys.append(("P", pids[i]))
            else:
                keys.append(("J", int(seq[i])))
        first: dict[Any, int] = {}
        final: dict[Any, int] = {}
        for i in np.argsort(seq, kind="stable").tolist():
            k = keys[i]
            first.setdefault(k, i)
            j = final.get(k)
            if j is None or retest_policy != "highest_bin" or hard[i] >= hard[j]:
                final[k] = i
        is_first = np.zeros(n, bool)
        is_first[list(first.values())] = True
        is_final = np.zeros(n, bool)
        is_final[list(final.values())] = True
        return {
            "hard_bin": hard,
            "soft_bin": soft,
            "final": is_final,
            "first": is_first,
            "good": good.astype(bool),
            "abort": np.asarray(cols["abort"], bool),
            "wafer_seq": wseq,
        }


def _records(batches: list[dict[str, list]]) -> list[dict[str, Any]]:
    out = []
    for b in batches:
        keys = list(b)
        out += [dict(zip(keys, vals, strict=True)) for vals in zip(*(b[k] for k in keys), strict=True)]
    return out


def _bin_summaries(bins: list[dict[str, Any]], bin_type: str) -> dict[tuple[int, str], int]:
    """(bin number, which records) -> summary count: HEAD 255 records if the bin has any, else the per-site sum."""
    by: dict[int, list[dict[str, Any]]] = {}
    for r in bins:
        if r["bin_type"] == bin_type and r.get("bin_count") is not None and r.get("bin_num") is not None:
            by.setdefault(int(r["bin_num"]), []).append(r)
    out = {}
    for num, rs in by.items():
        merged = [r for r in rs if r["head_num"] == 255]
        use = merged or rs
        where = "HEAD 255" if merged else (f"sum of {len(rs)} per-site records" if len(rs) > 1 else "per-site record")
        out[(num, where)] = sum(int(r["bin_count"]) for r in use)
    return out


def _bin_pass_fail(bins: list[dict[str, Any]]) -> dict[int, str]:
    best: dict[int, tuple[int, str]] = {}
    for r in bins:
        if r["bin_type"] != "H" or r.get("pass_fail") is None or r.get("bin_num") is None:
            continue
        rank = 2 if r["head_num"] == 255 else 1
        if rank >= best.get(int(r["bin_num"]), (0, ""))[0]:
            best[int(r["bin_num"])] = (rank, r["pass_fail"])
    return {k: v[1] for k, v in best.items()}


def _pcr_summary(pcr: list[dict[str, Any]]) -> dict[str, tuple[int | None, str]]:
    merged = [r for r in pcr if r.get("head_num") == 255]
    use = merged or pcr
    where = " (HEAD 255)" if merged else (f" (sum of {len(pcr)} per-site records)" if len(pcr) > 1 else "")
    out: dict[str, tuple[int | None, str]] = {}
    for k in ("PART_CNT", "GOOD_CNT", "RTST_CNT", "ABRT_CNT"):
        vals = [int(v) for r in use if (v := r.get(k.lower())) is not None]
        out[k] = (sum(vals) if vals else None, where)
    return out


def _count_mismatches(
    label: str, summary: dict[str, tuple[int | None, str]], p: dict[str, np.ndarray], sel: np.ndarray
) -> list[Mismatch]:
    final = sel & p["final"]
    execs = int(sel.sum())
    raw = {
        "PART_CNT": (int(final.sum()), f"dies in the PRRs after retests ({execs} executions)"),
        "GOOD_CNT": (int((final & p["good"]).sum()), "good dies in the PRRs after retests"),
        "RTST_CNT": (int((sel & ~p["first"]).sum()), "retests in the PRRs"),
        "ABRT_CNT": (int((sel & p["abort"]).sum()), "aborted executions in the PRRs"),
    }
    out = []
    for k, (value, where) in summary.items():
        if value is None:
            continue
        got, what = raw[k]
        if value != got:
            out.append(Mismatch(f"{label} {k}: {value} in the summary{where}, {got} {what}", value, got))
    return out
