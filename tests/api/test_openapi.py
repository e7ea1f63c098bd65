"""The committed openapi.json is the app's document, and a schemathesis run over every operation
(authenticated, on a seeded runtime) never gets a 5xx."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from stratum.api.openapi import dumps, generate

from .conftest import WS_LOT

ROOT = Path(__file__).resolve().parents[2]
# per operation and generation mode: keeps the whole run well under a minute (STRATUM_FUZZ_EXAMPLES to dig deeper)
EXAMPLES = int(os.environ.get("STRATUM_FUZZ_EXAMPLES", "10"))


def test_committed_openapi_json_matches_the_app():
    committed = (ROOT / "openapi.json").read_text()
    current = dumps(generate())
    assert committed == current, (
        "openapi.json is out of date with the API: run `make openapi` (python -m stratum.api.openapi > openapi.json) "
        "and commit the result"
    )


def test_every_protected_operation_documents_its_errors():
    doc = json.loads((ROOT / "openapi.json").read_text())
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if (method, path) == ("get", "/v1/status"):
                continue
            codes = set(op["responses"])
            signed = path in ("/v1/uploads/{job_id}/content", "/v1/exports/{export_id}/content")
            need = {"400", "403", "429"} if not signed else {"400", "403"}
            if path == "/v1/hooks/in/{slug}":  # the hook's own token or signature, no API key
                need = {"400", "401", "413", "429"}
            assert need <= codes, (method, path, codes)
            assert op["responses"]["400"]["content"]["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }
            # signed URLs and inbound hooks are authorised by their signature or token, not by a key
            if not signed and path != "/v1/hooks/in/{slug}":
                assert op.get("security") == [{"ApiKey": []}], (method, path)


def _real_ids(case) -> None:
    """Aim half of the cases at data that exists, so the analytics code paths run (not just 404s)."""
    pp = case.path_parameters or {}
    for k, v in {"lot_id": WS_LOT, "wafer_id": "W01", "test_num": 1030}.items():
        if k in pp:
            pp[k] = v


def _fuzz(op, mode: GenerationMode, headers: dict[str, str], failures: list[str]) -> int:
    """Run ``EXAMPLES`` generated cases of one operation; 5xx go to ``failures``. Returns the calls made."""
    calls = 0

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=EXAMPLES <= 10,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case):
        nonlocal calls
        for aim in (False, True):
            if aim:
                if not case.path_parameters or "lot_id" not in case.path_parameters:
                    return
                _real_ids(case)
            calls += 1
            try:
                case.call_and_validate(headers=headers, checks=[not_a_server_error])
            except Exception as exc:  # noqa: BLE001 - collected, reported together
                failures.append(f"{op.label} [{mode.value}]: {case.as_curl_command()}\n  {exc}")

    try:
        run()
    except Unsatisfiable:  # e.g. no way to make a parameterless operation's request invalid
        pass
    return calls


def test_no_server_errors(seeded):
    schema = schemathesis.openapi.from_asgi("/openapi.json", seeded.app)
    failures: list[str] = []
    t0 = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    calls = sum(
        _fuzz(op, mode, seeded.headers("full"), failures)
        for op in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    )
    assert not failures, "server errors:\n" + "\n".join(failures[:20])
    assert calls > 100
    # the default run stays short: a budget per operation (the route count grows)
    assert EXAMPLES > 10 or time.monotonic() - t0 < 2.5 * len(operations)
