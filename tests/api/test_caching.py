"""GET routes answer HEAD; responses for a pinned ``snapshot_job_id`` carry a strong ETag and
``Cache-Control: immutable`` and answer 304 to ``If-None-Match``."""

from __future__ import annotations

import pytest

from .conftest import PINNED_PATHS, WS_LOT


@pytest.mark.parametrize("path", ["/v1/lots", f"/v1/lots/{WS_LOT}/wafers", "/v1/jobs", "/v1/status"])
def test_get_routes_answer_head(seeded, path):
    got = seeded.get(path)
    head = seeded.client.head(path, headers=seeded.headers())
    assert (got.status_code, head.status_code) == (200, 200)
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))
    assert "etag" not in got.headers and "etag" not in head.headers  # not pinned: the data may change


@pytest.mark.parametrize("path", PINNED_PATHS)
def test_pinned_responses_are_immutable_with_an_etag(seeded, path):
    sep = "&" if "?" in path else "?"
    url = f"/v1/lots/{WS_LOT}{path}{sep}snapshot_job_id={seeded.wafer_jobs[-1].job_id}"
    r = seeded.get(url)
    assert r.status_code == 200
    etag = r.headers["etag"]
    assert etag.startswith('"') and len(etag) == 34
    assert r.headers["cache-control"] == "private, max-age=31536000, immutable"
    again = seeded.get(url)
    assert again.headers["etag"] == etag  # same request, same immutable snapshot
    nm = seeded.client.get(url, headers={**seeded.headers(), "If-None-Match": etag})
    assert nm.status_code == 304 and nm.content == b"" and nm.headers["etag"] == etag
    weak = seeded.client.get(url, headers={**seeded.headers(), "If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    other = seeded.client.get(url, headers={**seeded.headers(), "If-None-Match": '"nope"'})
    assert other.status_code == 200 and other.headers["etag"] == etag
    head = seeded.client.head(url, headers={**seeded.headers(), "If-None-Match": etag})
    assert head.status_code == 304 and head.headers["etag"] == etag


def test_errors_and_unpinned_responses_carry_no_etag(seeded):
    r = seeded.get(f"/v1/lots/{WS_LOT}/wafers?snapshot_job_id=job_nope")
    assert r.status_code in (400, 404) and "etag" not in r.headers
    assert "immutable" not in r.headers.get("cache-control", "")
    r = seeded.get(f"/v1/lots/{WS_LOT}/wafers/W01/map?format=png&snapshot_job_id={seeded.wafer_jobs[-1].job_id}")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.headers["etag"]
