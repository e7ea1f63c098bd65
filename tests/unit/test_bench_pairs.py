"""The ingest benchmark's paired runs: an untimed warm-up pair, then pairs in alternating order; per-side medians,
the median of the pairs' own ratios with their spread, CPU seconds per side; and the whole-process D-10 row run
as real processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratum.devtools.bench.ingest import bench_process, pair_stats, print_ingest, run_pairs
from tests.conftest import corpus_file


def _recorder(kind: str, walls: list[float], calls: list[str]):
    it = iter(walls)

    def run() -> dict:
        calls.append(kind)
        w = next(it)
        return {"seconds": w, "cpu_seconds": w / 2, "tag": f"{kind}{len(calls)}"}

    return run


def test_pairs_alternate_after_an_untimed_warm_up_pair() -> None:
    calls: list[str] = []
    ours = _recorder("S", [9.0, 1.0, 2.0, 3.0, 4.0, 5.0], calls)
    ref = _recorder("R", [8.0, 10.0, 20.0, 30.0, 40.0, 50.0], calls)
    seen: list[tuple[str, int]] = []
    a, b = run_pairs(ours, ref, 5, log=lambda kind, i, r: seen.append((kind, i)))
    assert "".join(calls) == "SR" + "RS" + "SR" + "RS" + "SR" + "RS"
    # the warm-up pair's results (9 and 8) are dropped
    assert [r["seconds"] for r in a] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [r["seconds"] for r in b] == [10.0, 20.0, 30.0, 40.0, 50.0]
    assert seen[:4] == [("stratum", -1), ("reference", -1), ("reference", 0), ("stratum", 0)]
    assert len(seen) == 12


def test_pairs_without_warm_up_and_bad_counts() -> None:
    calls: list[str] = []
    a, b = run_pairs(_recorder("S", [1.0, 2.0, 3.0], calls), _recorder("R", [1.0, 2.0, 3.0], calls), 3, warmup=False)
    assert "".join(calls) == "RSSRRS"
    assert len(a) == len(b) == 3
    with pytest.raises(ValueError, match="at least 1"):
        run_pairs(lambda: {}, lambda: {}, 0)


def test_pair_stats_are_medians_of_each_pairs_ratio() -> None:
    ours = [{"seconds": s, "cpu_seconds": c} for s, c in ((1.0, 1.0), (2.0, 1.5), (4.0, 2.0))]
    ref = [{"seconds": s, "cpu_seconds": c} for s, c in ((2.0, 3.0), (2.0, 3.0), (2.0, 3.0))]
    st = pair_stats(ours, ref)
    assert st["pairs"] == 3
    assert st["stratum"] == {
        "median_s": 2.0,
        "min_s": 1.0,
        "max_s": 4.0,
        "cpu_s": 1.5,
        "cpu_min_s": 1.0,
        "cpu_max_s": 2.0,
        "all_s": [1.0, 2.0, 4.0],
        "all_cpu_s": [1.0, 1.5, 2.0],
    }
    assert st["reference"]["median_s"] == 2.0 and st["reference"]["cpu_s"] == 3.0
    # ratios reference / Stratum per pair: 2, 1, 0.5 (wall); 3, 2, 1.5 (CPU)
    assert st["ratio"] == {"median": 1.0, "min": 0.5, "max": 2.0, "all": [2.0, 1.0, 0.5]}
    assert st["cpu_ratio"] == {"median": 2.0, "min": 1.5, "max": 3.0, "all": [3.0, 2.0, 1.5]}
    with pytest.raises(ValueError):
        pair_stats(ours, ref[:2])  # pairs, not two unrelated lists


def test_whole_process_row_runs_both_sides_as_processes(capsys) -> None:
    f = Path(corpus_file("teradyne_a530_ws_be_lot3.stdf.gz"))
    row = bench_process(f, 1)
    assert row["pairs"] == 1
    assert row["what"] == f"stratum ingest {f.name} (process)"
    assert row["reference_what"] == "stdf-convert → Parquet (process)"
    for side in ("stratum", "reference"):
        assert len(row[side]["all_s"]) == 1 and row[side]["median_s"] > 0 and row[side]["cpu_s"] > 0
    one_pair = row["reference"]["all_s"][0] / row["stratum"]["all_s"][0]  # of the rounded seconds
    assert row["ratio"]["median"] == row["ratio"]["min"] == row["ratio"]["max"] == pytest.approx(one_pair, rel=0.01)
    printed = capsys.readouterr().out
    assert printed.count("warm-up") == 2 and printed.count("run 1") == 2

    side = {"median_s": 1.0, "cpu_s": 1.0, "waited_s": 0.0, "mb_per_s": 95.0, "peak_rss_mb": 300, "stages": {}}
    case = {
        "file": f.name,
        "stdf_mb": 95.0,
        "stratum": side,
        "stdf_convert": {**side, "median_s": 1.5},
        "speed_ratio": 1.5,
        "cpu_ratio": 1.0,
        "paired": pair_stats([{"seconds": 1.0, "cpu_seconds": 1.0}], [{"seconds": 1.5, "cpu_seconds": 1.0}]),
    }
    print_ingest({"runs": 1, "big_runs": 3, "cases": [case], "process": [row], "cores": []})
    out = capsys.readouterr().out
    assert "1.50 (1.50-1.50)" in out  # the in-process row's median pair ratio and spread
    assert f"stratum ingest {f.name} (process) vs stdf-convert → Parquet (process): 1 timed pairs" in out
