"""``SELECT family, count(*) FROM wafer_patterns GROUP BY 1`` after ``stratum demo``, as real subprocesses:
every wafer of the demo's wafer-sort lot (two files and a retest file) is counted once, by the classification
of its final die map (the map GET .../map draws)."""

from __future__ import annotations

import json
from collections import Counter

from stratum.patterns.service import classify_diemap
from tests.fixtures.runtime import make_runtime
from tests.functional.test_cli_process import run

LOT = "DEMO-WS-1042"


def test_wafer_patterns_after_demo(tmp_path) -> None:
    d = tmp_path / "data"
    demo = run(d, "demo")
    assert demo.returncode == 0, demo.stderr
    p = run(d, "sql", "SELECT family, count(*) FROM wafer_patterns GROUP BY 1", "--format", "json")
    assert p.returncode == 0, p.stderr
    got = {fam: n for fam, n in json.loads(p.stdout)["rows"]}
    rt = make_runtime(d)
    try:
        wafers = [w["wafer_id"] for w in rt.analytics.wafers("default", LOT)]
        assert wafers == ["W01", "W02", "W03", "W04", "W05", "W06"]
        want: Counter[str] = Counter()
        for w in wafers:
            dm, _ = rt.patterns.lake_map("default", LOT, w, None)  # type: ignore[misc]
            fams = [x["family"] for x in classify_diemap(dm, thresholds=rt.patterns.thresholds)["pattern_classes"]]
            want.update(fams or ["none"])
        rows = rt.sql.run("default", "SELECT DISTINCT wafer_id, job_id FROM wafer_patterns ORDER BY 1").rows
    finally:
        rt.close()
    assert got == dict(want)
    # the demo's wafer lot: every wafer's rows come from the snapshot of the newest file that tested it
    assert [w for w, _ in rows] == wafers
