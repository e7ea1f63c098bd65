"""API test fixtures: a seeded local runtime behind the FastAPI app, a TestClient and a key per scope.

The seeded data (generated once per session, ingested once per module):

- ``API-LOT``: a 3-wafer, 4-site wafer-sort lot in three files: ``_01`` (W01, W02, with in-file
  retests), ``_02`` (W03) and ``_03_retest`` (a retest file without PART_FLG bits);
- ``FT-LOT``: a final-test lot (no wafers), without TSR summaries (so ``source=auto`` falls back to the
  exact values).

Before the later files are ingested, the answers of the analytics routes pinned on the first file's
snapshot can be recorded in ``Seeded.first_snapshot`` (modules with ``PIN_FIRST_SNAPSHOT = True``):
they must not change when more files arrive.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from stratum.api.app import create_app
from stratum.devtools.stdf.lots import GeneratedLot, LotSpec, default_tests, write_lot
from stratum.models import Job
from stratum.settings import settings_for

WS_LOT = "API-LOT"
FT_LOT = "FT-LOT"
SCOPES = ("ingest", "read", "classify", "batch", "read:patterns", "manage", "full", "admin")
HIGH_LIMITS = {
    "analytics_per_window": 100_000,
    "sql_per_window": 100_000,
    "uploads_per_window": 100_000,
    "classify_per_window": 100_000,
}

# Routes whose answers are recorded on the first file's snapshot (paths relative to /v1/lots/API-LOT).
PINNED_PATHS = (
    "",
    "/wafers",
    "/tests",
    "/capability",
    "/bins",
    "/bins?by=wafer",
    "/bins?by=site",
    "/wafers/W01/map",
    "/wafers/W01/map?test_num=1000",
    "/tests/1000/results?limit=10000",
)


def strict_json(text: str) -> Any:
    """json.loads that fails on NaN / Infinity (never valid JSON)."""

    def bad(const: str) -> Any:
        raise AssertionError(f"non-finite number {const} in a JSON response")

    return json.loads(text, parse_constant=bad)


def assert_same(a: Any, b: Any, rel: float = 1e-12, where: str = "") -> None:
    """Deep equality, floats to ``rel`` (DuckDB's parallel aggregates may differ in the last bits between
    runs); everything else exactly."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), (where, a, b)
        assert a == pytest.approx(b, rel=rel, abs=1e-300), (where, a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, a, b)
        for k in a:
            assert_same(a[k], b[k], rel, f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), (where, a, b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, rel, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


@dataclass
class Generated:
    wafer_lot: GeneratedLot
    ft_lot: GeneratedLot


@dataclass
class Seeded:
    app: FastAPI
    client: TestClient
    tokens: dict[str, str]
    wafer_lot: GeneratedLot
    ft_lot: GeneratedLot
    wafer_jobs: list[Job]
    ft_job: Job
    data_dir: Path
    first_snapshot: dict[str, Any] = field(default_factory=dict)
    first_active: dict[str, Any] = field(default_factory=dict)

    def headers(self, scope: str = "full") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"}

    def get(self, path: str, scope: str = "full", **kw) -> Any:
        return self.client.get(path, headers=self.headers(scope), **kw)

    def json(self, path: str, scope: str = "full", **kw) -> Any:
        r = self.get(path, scope, **kw)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return strict_json(r.text)


def wafer_spec() -> LotSpec:
    return LotSpec(
        lot_id=WS_LOT,
        wafers=("W01", "W02", "W03"),
        files=2,
        die_diameter=12,
        sites=4,
        retest_fraction=0.5,
        retest_file=True,
        tests=tuple(default_tests(10, n_mpr=1, n_ftr=2)),
        seed=11,
    )


def ft_spec() -> LotSpec:
    return LotSpec(
        lot_id=FT_LOT,
        wafers=(),
        parts=120,
        sites=2,
        part_type="FT-DEV",
        program="FT_PROG",
        test_code="FT1",
        start_time=1_710_000_000,
        summaries="none",
        retest_fraction=0.5,
        tests=tuple(default_tests(4, n_mpr=0, n_ftr=1)),
        seed=3,
    )


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> Generated:
    d = tmp_path_factory.mktemp("api-stdf")
    return Generated(write_lot(wafer_spec(), d / "ws"), write_lot(ft_spec(), d / "ft"))


def new_app(data_dir: Path, **overrides) -> tuple[FastAPI, TestClient, dict[str, str]]:
    """A fresh app on a local runtime in ``data_dir`` with a key per scope (tokens by scope)."""
    overrides.setdefault("rate_limits", HIGH_LIMITS)
    app = create_app(settings=settings_for(data_dir, backend="local", **overrides))
    tokens = {s: app.state.keys.create("default", [s], f"test-{s}")[0] for s in SCOPES}
    return app, TestClient(app), tokens


@pytest.fixture
def make_app(tmp_path) -> Iterator[Callable[..., tuple[FastAPI, TestClient, dict[str, str]]]]:
    """Factory of fresh apps (own data directory each) for tests that need particular settings."""
    apps: list[FastAPI] = []

    def make(**overrides):
        app, client, tokens = new_app(tmp_path / f"app{len(apps)}", **overrides)
        apps.append(app)
        return app, client, tokens

    yield make
    for app in apps:
        app.state.runtime.close()


@pytest.fixture(scope="module")
def seeded(generated, tmp_path_factory, request) -> Iterator[Seeded]:
    """The seeded app for one test module. A module that sets ``PIN_FIRST_SNAPSHOT = True`` also gets
    ``first_snapshot`` / ``first_active`` recorded (costs ~20 requests)."""
    data_dir = tmp_path_factory.mktemp("api-data")
    app, client, tokens = new_app(data_dir)
    rt = app.state.runtime
    wl, fl = generated.wafer_lot, generated.ft_lot
    first = rt.ingest.ingest_path("default", wl.paths[0])
    assert first.status == "succeeded", first
    s = Seeded(app, client, tokens, wl, fl, [first], None, data_dir)  # type: ignore[arg-type]
    for p in PINNED_PATHS if getattr(request.module, "PIN_FIRST_SNAPSHOT", False) else ():
        sep = "&" if "?" in p else "?"
        s.first_active[p] = s.json(f"/v1/lots/{WS_LOT}{p}")
        s.first_snapshot[p] = s.json(f"/v1/lots/{WS_LOT}{p}{sep}snapshot_job_id={first.job_id}")
    for p in wl.paths[1:]:
        job = rt.ingest.ingest_path("default", p)
        assert job.status == "succeeded", job
        s.wafer_jobs.append(job)
    s.ft_job = rt.ingest.ingest_path("default", fl.paths[0])
    assert s.ft_job.status == "succeeded", s.ft_job
    yield s
    rt.close()


@pytest.fixture(scope="module")
def client(seeded) -> TestClient:
    return seeded.client


@pytest.fixture(scope="module")
def tokens(seeded) -> dict[str, str]:
    return seeded.tokens


@pytest.fixture(scope="module")
def auth(seeded) -> dict[str, str]:
    """Headers with the ``full`` key."""
    return seeded.headers("full")


# -- truth helpers ------------------------------------------------------------------------------


def final_mask(truth: GeneratedLot, rows: np.ndarray | None = None) -> np.ndarray:
    """The last execution of each die among ``rows`` (a mask; all rows when None): the final view of
    the snapshot holding those rows (retest policy ``last``)."""
    rows = np.ones(len(truth.parts), bool) if rows is None else rows
    last: dict[tuple, int] = {}
    for i, (k, keep) in enumerate(zip(truth.die_keys(), rows, strict=True)):
        if keep:
            last[k] = i
    mask = np.zeros(len(rows), bool)
    mask[list(last.values())] = True
    return mask


def first_pass_mask(truth: GeneratedLot, rows: np.ndarray | None = None) -> np.ndarray:
    rows = np.ones(len(truth.parts), bool) if rows is None else rows
    return rows & (truth.parts.retest == 0)


def valid_mask(truth: GeneratedLot, t: int) -> np.ndarray:
    """Executed with a valid result (TEST_FLG bits 0-5 and PARM_FLG bits 0-2 clear)."""
    return truth.executed[:, t] & ((truth.test_flg[:, t] & 0x3F) == 0) & ((truth.parm_flg[:, t] & 0x07) == 0)
