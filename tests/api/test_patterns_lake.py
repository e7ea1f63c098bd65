"""Classifications of lake wafers are stored and read by SQL: on publish (the wafer's final die map, the one
GET .../map draws, retests included) and by POST /v1/classify / POST /v1/batch on a lake wafer (idempotent per
lot, wafer, snapshot job and classifier version; a newer classifier version adds rows and becomes what
``wafer_patterns`` shows)."""

from __future__ import annotations

import pytest

from stratum.devtools.stdf.lots import LotSpec, TestDef, write_lot
from stratum.patterns import service as pattern_service

from .conftest import strict_json

LOT = "RTL1"
TESTS = (TestDef(1000, "VDD", lo=0.0, hi=1.0, mean=0.5, sigma=0.05, fail_bin=2),)


def retest_spec() -> LotSpec:
    # file 1: half the dies fail at random (a 'random' pattern); file 2 (later START_T) retests every failing
    # die and they all pass: the final map has no pattern
    return LotSpec(
        lot_id=LOT,
        wafers=("W01", "W02"),
        die_diameter=34,
        sites=1,
        tests=TESTS,
        edge_fail_rate=0.0,
        random_fail_rate=0.5,
        random_fail_persist=0.0,
        retest_file=True,
        retest_file_fraction=1.0,
        seed=21,
    )


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    from .conftest import new_app

    d = tmp_path_factory.mktemp("pat-lake")
    lot = write_lot(retest_spec(), d / "stdf")
    assert len(lot.paths) == 2
    app, client, tokens = new_app(d / "data")
    rt = app.state.runtime
    jobs = [rt.ingest.ingest_path("default", p) for p in lot.paths]
    assert [j.status for j in jobs] == ["succeeded", "succeeded"]
    yield app, client, tokens, jobs
    rt.close()


def sql(client, tokens, query: str) -> list[list]:
    r = client.post("/v1/sql", json={"query": query}, headers={"Authorization": f"Bearer {tokens['full']}"})
    assert r.status_code == 200, r.text
    return strict_json(r.text)["rows"]


def families_of_map(client, tokens, wafer: str) -> list[str]:
    """Classify the die map GET .../map draws (final view), through the dies form."""
    h = {"Authorization": f"Bearer {tokens['full']}"}
    m = client.get(f"/v1/lots/{LOT}/wafers/{wafer}/map", headers=h)
    assert m.status_code == 200, m.text
    d = strict_json(m.text)["dies"]
    dies = [{"x": x, "y": y, "pass": bool(p)} for x, y, p in zip(d["x"], d["y"], d["passed"], strict=True)]
    r = client.post("/v1/classify", json={"wafer_id": wafer, "dies": dies}, headers=h)
    assert r.status_code == 200, r.text
    return [p["family"] for p in strict_json(r.text)["pattern_classes"]] or ["none"]


def test_publish_classifies_the_final_retest_view(lake) -> None:
    app, client, tokens, jobs = lake
    rows = sql(client, tokens, "SELECT wafer_id, family, job_id FROM wafer_patterns ORDER BY wafer_id, rank")
    by_wafer: dict[str, list[str]] = {}
    for w, fam, job in rows:
        by_wafer.setdefault(w, []).append(fam)
        assert job == jobs[1].job_id  # the retest file's snapshot: the newest map of the wafer
    for w in ("W01", "W02"):
        assert by_wafer[w] == families_of_map(client, tokens, w) == ["none"]
    # the first file alone (what was classified per file at ingest) shows the random fails
    per_file = sql(
        client,
        tokens,
        "SELECT wafer_id, list(family ORDER BY rank) FROM wafer_pattern_history "
        f"WHERE job_id = '{jobs[0].job_id}' GROUP BY 1 ORDER BY 1",
    )
    assert [w for w, _ in per_file] == ["W01", "W02"]
    assert per_file == [["W01", ["random"]], ["W02", ["random"]]]


def test_history_has_one_classification_per_job_and_wafer(lake) -> None:
    app, client, tokens, jobs = lake
    rows = sql(
        client,
        tokens,
        "SELECT job_id, wafer_id, count(DISTINCT classifier_version), min(publish_seq) FROM wafer_pattern_history "
        "GROUP BY 1, 2 ORDER BY min(publish_seq), 2",
    )
    version = pattern_service.classifier_version()
    assert rows == [
        [jobs[0].job_id, "W01", 1, 1],
        [jobs[0].job_id, "W02", 1, 1],
        [jobs[1].job_id, "W01", 1, 2],
        [jobs[1].job_id, "W02", 1, 2],
    ]
    assert sql(client, tokens, "SELECT DISTINCT classifier_version FROM wafer_pattern_history") == [[version]]


PATTERN_QUERIES = (
    "SELECT * FROM wafer_patterns ORDER BY lot_id, wafer_id, rank",
    "SELECT lot_id, wafer_id, job_id, class_id, family, location, severity, confidence, classifier_version, "
    "refinement, rank, die_count, summary, publish_seq FROM wafer_pattern_history "
    "ORDER BY wafer_id, publish_seq, classifier_version, rank",
)


def athena_answers(rt, queries=PATTERN_QUERIES) -> list[list[tuple]]:
    """The queries over the views Athena is sent (Trino dialect, no metadata relations: the stored
    classifications come from the lake table wafer_patterns_final), run by DuckDB on the lake's files: the
    raw scans read what Athena's partition filter (workspace, the members' lots and jobs) reads."""
    from stratum.query.engine import Scope
    from stratum.query.views import TRINO, view_bodies
    from tests.support import athena_raw_scan

    resolved = rt.engine.resolve("default", Scope(lot_id=LOT))
    raw = athena_raw_scan(rt.lake, "default")
    cur = rt.engine.database("default").cursor()
    try:
        names = []
        for name, body in view_bodies(resolved.members, raw, dialect=TRINO):
            cur.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {body}")
            names.append(name)
        return [cur.execute(q).fetchall() for q in queries]
    finally:
        for name in reversed(names):
            cur.execute(f"DROP VIEW IF EXISTS {name}")
        cur.close()


def duckdb_answers(rt, queries=PATTERN_QUERIES) -> list[list[tuple]]:
    from stratum.query.engine import Scope

    with rt.engine.session("default", Scope(lot_id=LOT)) as s:
        return [[tuple(r) for r in s.rows(q)] for q in queries]


def test_athena_views_read_the_stored_classifications_from_the_lake(lake) -> None:
    """Each stored classification is also a lake object (wafer_patterns_final, one per lot, wafer, snapshot
    job and classifier version), and the Athena views over the lake answer exactly as DuckDB's over the
    metadata store: the final view's 'none', not the first file's per-file 'random'."""
    app, client, tokens, jobs = lake
    rt = app.state.runtime
    from stratum.lake import layout

    objs = [o.key for o in rt.lake.list(layout.table_root("default", "wafer_patterns_final"))]
    version = pattern_service.classifier_version()
    assert sorted(objs) == sorted(
        layout.final_patterns_key("default", LOT, j.job_id, w, version) for j in jobs for w in ("W01", "W02")
    )
    athena = athena_answers(rt)
    assert athena == duckdb_answers(rt)
    assert [(r[1], r[2], r[4], r[8]) for r in athena[0]] == [
        ("W01", jobs[1].job_id, "none", version),
        ("W02", jobs[1].job_id, "none", version),
    ]
    assert len(athena[1]) == 4
    # the per-file rows (all Athena read before; the first file tested most of each wafer) show random fails
    (per_file,) = athena_answers(rt, ("SELECT wafer_id, family, job_id FROM _raw_wafer_patterns ORDER BY 1, 3",))
    assert per_file == [
        ("W01", "random", jobs[0].job_id),
        ("W01", "none", jobs[1].job_id),
        ("W02", "random", jobs[0].job_id),
        ("W02", "none", jobs[1].job_id),
    ]


def test_lake_object_is_rewritten_after_a_lost_write(lake) -> None:
    """Publish classification again (a redelivered event): nothing new is stored; a lake object whose write
    was lost (deleted here) is written again from the stored item, with the same bytes."""
    app, client, tokens, jobs = lake
    rt = app.state.runtime
    from stratum.lake import layout

    version = pattern_service.classifier_version()
    key = layout.final_patterns_key("default", LOT, jobs[1].job_id, "W02", version)
    other = layout.final_patterns_key("default", LOT, jobs[1].job_id, "W01", version)
    before, other_before = rt.lake.get_bytes(key), rt.lake.get_bytes(other)
    count = "SELECT count(*) FROM wafer_pattern_history"
    n = sql(client, tokens, count)[0][0]
    rt.lake.delete(key)
    assert rt.patterns.classify_published("default", LOT, jobs[1].job_id) == 2
    assert sql(client, tokens, count)[0][0] == n
    assert rt.lake.get_bytes(key) == before
    assert rt.lake.get_bytes(other) == other_before
    assert athena_answers(rt) == duckdb_answers(rt)


def test_api_classify_of_a_lake_wafer_stores_rows(lake, monkeypatch) -> None:
    app, client, tokens, jobs = lake
    h = {"Authorization": f"Bearer {tokens['full']}"}
    count = "SELECT count(*) FROM wafer_pattern_history"
    current = pattern_service.classifier_version()
    before = sql(client, tokens, count)[0][0]
    # the same classifier version again: nothing new (idempotent per lot, wafer, job, version)
    r = client.post("/v1/classify", json={"lot_id": LOT, "wafer_id": "W01"}, headers=h)
    assert r.status_code == 200, r.text
    assert sql(client, tokens, count)[0][0] == before
    # a newer classifier: rows for the new version, and wafer_patterns shows them for that wafer only
    newer = "stratum-patterns-99+cal.newer"
    monkeypatch.setattr(pattern_service, "classifier_version", lambda: newer)
    for _ in range(2):
        r = client.post(
            "/v1/classify", json={"lot_id": LOT, "wafer_id": "W01", "snapshot_job_id": jobs[1].job_id}, headers=h
        )
        assert r.status_code == 200, r.text
        body = strict_json(r.text)
        assert (body["classifier_version"], body["snapshot_job_id"]) == (newer, jobs[1].job_id)
    assert sql(client, tokens, count)[0][0] == before + 1  # W01 shows one pattern: one row, stored once
    shown = sql(client, tokens, "SELECT wafer_id, family, classifier_version, job_id FROM wafer_patterns ORDER BY 1")
    assert shown == [["W01", "none", newer, jobs[1].job_id], ["W02", "none", current, jobs[1].job_id]]
    # a lot batch stores every wafer at the new version
    r = client.post("/v1/batch", json={"lot_id": LOT}, headers=h)
    assert r.status_code == 200, r.text
    assert [x["wafer_id"] for x in strict_json(r.text)["results"]] == ["W01", "W02"]
    assert sql(client, tokens, "SELECT DISTINCT classifier_version FROM wafer_patterns") == [[newer]]
    assert sql(client, tokens, count)[0][0] == before + 2
    # Athena reads the same from the lake: the newer version for both wafers, every version in the history
    athena = athena_answers(app.state.runtime)
    assert athena == duckdb_answers(app.state.runtime)
    assert [(r[1], r[8]) for r in athena[0]] == [("W01", newer), ("W02", newer)]
    assert len(athena[1]) == 6
    # the spatial-pattern monitor reads the stored final-view rows: no wafer shows the first file's random
    # fails (per-file rows would fire on 2 wafers)
    rule = {"kind": "spatial_pattern", "params": {"min_wafers": 1, "families": ["random"]}}
    ha = {"Authorization": f"Bearer {tokens['admin']}"}
    r = client.post("/v1/monitors", json={"label": "rings", "rule": rule, "trigger": {"on_ingest": True}}, headers=ha)
    assert r.status_code == 201, r.text
    mid = strict_json(r.text)["monitor_id"]
    r = client.post(f"/v1/monitors/{mid}/run", headers=ha)
    assert r.status_code == 200, r.text
    run = strict_json(r.text)
    assert (run["status"], run["findings"]) == ("ok", 0), run


def test_map_caption_follows_the_stored_rows(lake, monkeypatch) -> None:
    """The map image's caption is the wafer's wafer_patterns rows as they are now: the final view's
    classification (no pattern here, where the first file alone shows random fails), then a newer
    classification stored by the API."""
    app, client, tokens, jobs = lake
    h = {"Authorization": f"Bearer {tokens['full']}"}

    def svg(wafer: str) -> str:
        r = client.get(f"/v1/lots/{LOT}/wafers/{wafer}/map?format=svg", headers=h)
        assert r.status_code == 200, r.text
        return r.text

    assert "patterns:" not in svg("W01")
    monkeypatch.setattr(pattern_service, "classifier_version", lambda: "stratum-patterns-100+cal.caption")
    real = pattern_service.classify_diemap
    grid = [
        [
            0 if (i - 14.5) ** 2 + (j - 14.5) ** 2 > 210 else 2 if (i - 14.5) ** 2 + (j - 14.5) ** 2 <= 25 else 1
            for j in range(30)
        ]
        for i in range(30)
    ]
    blob = real(pattern_service.dies_from_grid(grid, app.state.patterns.settings))["pattern_classes"]
    assert [p["family"] for p in blob] == ["center"]

    def with_blob(*a, **kw):
        return {**real(*a, **kw), "pattern_classes": blob}

    monkeypatch.setattr(pattern_service, "classify_diemap", with_blob)
    r = client.post("/v1/classify", json={"lot_id": LOT, "wafer_id": "W01"}, headers=h)
    assert r.status_code == 200, r.text
    assert f"patterns: {blob[0]['class_id']} ({blob[0]['confidence']:.2f})" in svg("W01")
    assert "patterns:" not in svg("W02")
