"""Import-time budget: ``import stratum.api.app`` and the two Lambda handler modules, each in a fresh
interpreter, measured against a bare ``import fastapi`` in the same run (a ratio, so a slow machine does not
fail it). Each import is timed in CPU seconds of its process (``time.process_time``): on a shared machine the
wall clock mostly measures the other processes. The budgets are the ratios measured when this test was
written (docs/decisions.md), with headroom for noise; tighten them when import time improves.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

ROUNDS = 7


def _load(path: str) -> str:
    return (
        "import importlib.util as u; "
        f"s = u.spec_from_file_location('handler', {str(ROOT / path)!r}); "
        "m = u.module_from_spec(s); s.loader.exec_module(m)"
    )


CASES = {
    "fastapi": "import fastapi",
    "stratum.api.app": "import stratum.api.app",
    "api handler": _load("functions/api/handler.py"),
    "ingest handler": _load("functions/ingest/handler.py"),
}
# measured (median ratio to `import fastapi`): app 1.77, api handler 2.63, ingest handler 1.90 (wall clock); the
# delivery, webhook and notification routes (issue 13) brought the API handler to 3.55. Issue 16 (no pydantic.v1,
# API models built on first use, problem responses by reference), in CPU seconds on a loaded machine: app
# 1.70-1.84, api handler 2.85-2.91, ingest handler 1.93-1.95 (app 2.5 before, same measure). Issue 16 again (imports
# without GC passes, route field adapters on first use, no pydantic-settings), medians of 5-7 rounds at load 7-9 on
# 2 cores: app 1.30-1.36, api handler 2.47, ingest handler 1.86 without bytecode (PYTHONDONTWRITEBYTECODE, no .pyc
# anywhere), 1.30-1.32 / 2.03-2.11 / 1.68 with it; before: 1.75 / 2.8-3.3 / 1.95-2.6. On a quiet machine (load < 1,
# clean clone, bytecode), medians of 3 in 5 runs: app 1.27-1.39, api handler 2.00-2.66, ingest handler 2.15-2.33
# (a loaded machine shrinks the ratios: the 2.3 budget set from loaded figures failed a quiet CI run at 2.33).
# Issue 16 once more (routes analysed on first use, FastAPI's OpenAPI models built by the first OpenAPI
# document), medians of 9 interleaved rounds, CPU: app 1.34 -> 1.10 at load 4 (wall 1.35 -> 1.10), 1.32 -> 1.13
# at load 7; the budget is the 1.25 (quiet median x 1.1 would be 1.21)
BUDGET = {"stratum.api.app": 1.25, "api handler": 2.9, "ingest handler": 2.7}
# what the API's import path must not load: each is imported by the first request that needs it
LAZY = (
    "numpy",
    "duckdb",
    "pyarrow",
    "PIL",
    "boto3",
    "stratum.stdf.reader",
    "stratum.analytics.capability",
    "pydantic.v1",  # FastAPI imports it to reject v1 models; stratum.api._fastapi answers without it
)


def _seconds(code: str, env: dict[str, str] | None = None) -> float:
    probe = f"import time; t = time.process_time(); {code}; print(time.process_time() - t)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    return float(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def with_bytecode(tmp_path: Path) -> dict[str, str]:
    """Every case imports from bytecode, as on Lambda (the assets and layers ship ``.pyc``; infra/assets.py).
    Whether the checkout's own ``__pycache__`` is there and current depends on the machine: with
    PYTHONDONTWRITEBYTECODE set and no valid ``.pyc`` for ``src/``, stratum's modules compile in every process
    while FastAPI's load from site-packages' bytecode, and the ratio reads 1.35-1.46 instead of 1.0-1.15. So the
    cases read and write their bytecode in a private prefix, written by a warm-up round that is not timed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")
    for code in CASES.values():
        _seconds(code, env)
    return env


def test_import_time_within_budget(with_bytecode: dict[str, str]) -> None:
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(ROUNDS):  # interleaved, so load on the machine hits every case alike
        for name, code in CASES.items():
            times[name].append(_seconds(code, with_bytecode))
    base = statistics.median(times["fastapi"])
    # the median of each round's own ratio: this VM's speed drifts by up to 1.5x within a minute, and a ratio of
    # neighbouring runs cancels what a ratio of two medians taken over the whole test does not
    ratios = {
        name: statistics.median(t / f for t, f in zip(times[name], times["fastapi"], strict=True)) for name in BUDGET
    }
    over = {name: round(r, 2) for name, r in ratios.items() if r > BUDGET[name]}
    assert not over, f"import time over budget (ratio to `import fastapi` = {base:.3f} s): {over}, budget {BUDGET}"


def test_api_import_path_loads_no_heavy_library() -> None:
    probe = f"import sys, stratum.api.app; print(sorted(m for m in {LAZY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_fastapi_still_rejects_pydantic_v1_models() -> None:
    """The v1 check answers without importing pydantic.v1, and still refuses a v1 model once one exists."""
    probe = (
        "import stratum.api, fastapi, pydantic.v1 as v1\n"
        "class M(v1.BaseModel):\n    x: int\n"
        "app = fastapi.FastAPI()\n"
        "try:\n    app.get('/m', response_model=M)(lambda: None)\n"
        "except Exception as e:\n    print(type(e).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "PydanticV1NotSupportedError"


def test_api_import_leaves_gc_on_and_what_it_loaded_frozen() -> None:
    """stratum.coldstart.loading: the import runs without GC passes, then the collector is on again and the
    imported objects sit in the permanent generation; a GC the caller disabled stays disabled."""
    probe = (
        "import gc, stratum.api.app\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 50_000)\n"
        "gc.unfreeze(); gc.disable()\n"
        "from stratum.coldstart import loading\n"
        "with loading():\n    x = [[] for _ in range(10)]\n"
        "print(gc.isenabled(), gc.get_freeze_count())"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["True", "True", "False", "0"]


def test_route_field_adapters_are_built_on_first_use() -> None:
    """stratum.api._fastapi: no parameter/response TypeAdapter is built at import; a request builds those of
    its route (and still validates: a bad limit is a 400), the OpenAPI document builds every one."""
    probe = (
        "import stratum.api, fastapi._compat.v2 as v2\n"
        "made = []\n"
        "build = v2.ModelField._type_adapter.build\n"
        "v2.ModelField._type_adapter.build = lambda f: (made.append(f.name), build(f))\n"
        "import tempfile\n"
        "from fastapi.testclient import TestClient\n"
        "from stratum.api.app import create_app\n"
        "from stratum.settings import settings_for\n"
        "app = create_app(settings=settings_for(tempfile.mkdtemp(), backend='local'))\n"
        "print(len(made))\n"
        "token, _ = app.state.keys.create('default', ['full'], 'probe')\n"
        "c = TestClient(app)\n"
        "r = c.get('/v1/lots?limit=0', headers={'Authorization': f'Bearer {token}'})\n"
        "print(r.status_code, sorted(set(made)))\n"
        "n = len(made); app.openapi(); print(len(made) > n + 150)\n"
        "app.state.runtime.close()"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "0"
    assert lines[1] == "400 ['limit']", lines[1]
    assert lines[2] == "True"


def test_fastapi_openapi_models_are_built_by_the_first_openapi_document() -> None:
    """stratum.coldstart.models_built_on_first_use: the API's import leaves FastAPI's OpenAPI models unbuilt;
    the first OpenAPI document builds them (the document itself is unchanged: the committed openapi.json test).
    Models defined after the import build at definition, as before."""
    probe = (
        "import tempfile, stratum.api.app, fastapi.openapi.models as m\n"
        "from pydantic import BaseModel\n"
        "class Later(BaseModel):\n    x: int\n"
        "print(m.OpenAPI.__pydantic_complete__, Later.__pydantic_complete__)\n"
        "from stratum.settings import settings_for\n"
        "app = stratum.api.app.create_app(settings=settings_for(tempfile.mkdtemp(), backend='local'))\n"
        "app.openapi()\n"
        "print(m.OpenAPI.__pydantic_complete__)\n"
        "app.state.runtime.close()"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "True", "True"]
