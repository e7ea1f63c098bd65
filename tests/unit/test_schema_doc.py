"""The public views, their documentation and docs/schema.md agree."""

from __future__ import annotations

from stratum.query.engine import schema_session
from stratum.query.public_schema import PUBLIC
from stratum.query.schema_doc import render
from tests.conftest import ROOT

REQUIRED = {
    "lots": ["lot_id", "part_type", "program", "tester_type", "node_name", "start_time", "finish_time", "job_id"],
    "wafers": ["lot_id", "wafer_id", "start_time", "finish_time", "part_count", "good_count", "job_id"],
    "parts": [
        "lot_id",
        "wafer_id",
        "head_num",
        "site_num",
        "part_id",
        "x",
        "y",
        "hard_bin",
        "soft_bin",
        "passed",
        "test_count",
        "test_time_ms",
        "is_retest",
        "is_final",
        "job_id",
    ],
    "tests": ["lot_id", "test_num", "test_name", "test_type", "units", "lo_limit", "hi_limit", "job_id"],
    "results": [
        "lot_id",
        "wafer_id",
        "head_num",
        "site_num",
        "part_id",
        "x",
        "y",
        "test_num",
        "test_name",
        "result",
        "valid",
        "passed",
        "is_final",
        "job_id",
    ],
    "bins": ["lot_id", "bin_type", "bin_num", "bin_name", "pass_fail", "part_count", "job_id"],
}


def test_views_have_exactly_the_documented_columns():
    ses = schema_session()
    try:
        for name, view in PUBLIC.items():
            cols = [r[0] for r in ses.rows(f"DESCRIBE {name}")]
            assert cols == [c for c, _ in view.cols], name
            assert all(doc for _, doc in view.cols), f"{name}: a column has no description"
    finally:
        ses.close()


def test_required_columns_keep_their_names():
    for name, cols in REQUIRED.items():
        have = [c for c, _ in PUBLIC[name].cols]
        assert set(cols) <= set(have), f"{name} lost required columns: {set(cols) - set(have)}"


def test_docs_schema_md_is_current():
    assert (ROOT / "docs" / "schema.md").read_text() == render(), (
        "docs/schema.md is stale: run `.venv/bin/python -m stratum.query.schema_doc > docs/schema.md`"
    )
