"""Pagination conventions: ``limit`` and ``cursor`` in, ``items`` and ``next_cursor`` out; ``next_cursor``
is null on the last page; pages concatenate to the full set, in order, without duplicates; a cursor
that is not one of ours is a 400."""

from __future__ import annotations

import base64
import json

import pytest

from .conftest import WS_LOT, strict_json

RESULTS = f"/v1/lots/{WS_LOT}/tests/1000/results"


def _pages(seeded, path: str, limit: int, key, **params) -> list[list]:
    pages, cursor = [], None
    for _ in range(1000):
        q = dict(params, limit=limit)
        if cursor:
            q["cursor"] = cursor
        body = seeded.json(path, params=q)
        assert len(body["items"]) <= limit
        pages.append([key(i) for i in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert body["items"], "an empty page must be the last one (next_cursor null)"
    raise AssertionError("pagination did not end")


def _job_key(j):
    return j["job_id"]


def _result_key(r):
    return (r["job_id"], r["wafer_id"], r["x"], r["y"], r["site_num"], r["result"], r["is_retest"])


@pytest.mark.parametrize(
    ("path", "params", "key", "limits", "big"),
    [
        ("/v1/jobs", {}, _job_key, (1, 2, 3), 500),
        ("/v1/jobs", {"status": "succeeded"}, _job_key, (1, 3), 500),
        ("/v1/jobs", {"lot_id": WS_LOT}, _job_key, (1, 2), 500),
        ("/v1/lots", {}, lambda lot: lot["lot_id"], (1,), 500),
        ("/v1/lots", {"q": "lot"}, lambda lot: lot["lot_id"], (1,), 500),
        (RESULTS, {}, _result_key, (100, 336), 10000),
        (RESULTS, {"view": "all", "wafer_id": "W01", "site_num": 2}, _result_key, (9,), 10000),
    ],
    ids=["jobs", "jobs-status", "jobs-lot", "lots", "lots-q", "results", "results-all-W01"],
)
def test_pages_concatenate_to_the_full_set(seeded, path, params, key, limits, big):
    full = _pages(seeded, path, big, key, **params)
    assert len(full) == 1, "the whole set fits one page of the maximum size"
    everything = full[0]
    assert len(everything) >= 2
    assert len(set(everything)) == len(everything)
    for limit in limits:
        pages = _pages(seeded, path, limit, key, **params)
        flat = [k for p in pages for k in p]
        assert flat == everything, limit
        assert all(len(p) == limit for p in pages[:-1])
        assert len(pages) == -(-len(everything) // limit) or (len(pages[-1]) == 0 and len(everything) % limit == 0)


def test_counts_of_the_seeded_sets(seeded):
    jobs = seeded.json("/v1/jobs", params={"limit": 500})["items"]
    assert [j["job_id"] for j in jobs] == [j.job_id for j in reversed(seeded.wafer_jobs + [seeded.ft_job])], (
        "jobs are listed newest first"
    )
    lots = seeded.json("/v1/lots")["items"]
    assert [lot["lot_id"] for lot in lots] == ["API-LOT", "FT-LOT"]
    final = seeded.wafer_lot.final()
    results = seeded.json(RESULTS, params={"limit": 10000})["items"]
    assert len(results) == int(final.sum())


def test_last_page_has_null_cursor_when_the_set_divides_evenly(seeded):
    n = len(seeded.json("/v1/jobs", params={"limit": 500})["items"])
    first = seeded.json("/v1/jobs", params={"limit": n // 2})
    second = seeded.json("/v1/jobs", params={"limit": n // 2, "cursor": first["next_cursor"]})
    assert first["next_cursor"] is not None
    tail = second if n % 2 == 0 else seeded.json("/v1/jobs", params={"limit": 500, "cursor": second["next_cursor"]})
    assert tail["next_cursor"] is None


def _b64(d) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/lots", RESULTS])
@pytest.mark.parametrize(
    "cursor",
    [
        "zzz",
        "!!!",
        _b64([1, 2]),
        _b64({"o": -1}),
        _b64({"nothing": 1}),
        "e30",
        _b64({"o": 10**30}),
        _b64({"o": 2**63}),
        _b64({"o": 1e300}),
        _b64({"o": True}),
        _b64({"o": "5"}),
        _b64({"o": 5.5}),
    ],
    ids=[
        "garbage",
        "not-base64",
        "list",
        "negative",
        "no-field",
        "empty-object",
        "huge",
        "int64-overflow",
        "float-huge",
        "bool",
        "string",
        "float",
    ],
)
def test_invalid_cursor_is_400(seeded, path, cursor):
    r = seeded.get(path, params={"cursor": cursor})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = strict_json(r.text)
    assert (body["code"], body["detail"]) == ("bad_request", "invalid cursor")


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/lots", RESULTS])
@pytest.mark.parametrize("limit", [0, -1, 100001, "x"])
def test_limit_out_of_range_is_400(seeded, path, limit):
    r = seeded.get(path, params={"limit": limit})
    assert r.status_code == 400
    body = strict_json(r.text)
    assert body["code"] == "bad_request"
    assert "limit" in body["detail"]
