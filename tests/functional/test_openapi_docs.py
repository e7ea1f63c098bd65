"""The API's OpenAPI document is complete: every operation, parameter and schema field is described, every
route shows an example of its answer, ratios state their unit, and the security scheme names the real key
prefixes. Each test lists every offending item by its place in the document."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from stratum.api.openapi import generate

# binary answers have no JSON example: the media type is described instead (its schema's description)
BINARY = re.compile(r"^(image/|text/csv|application/octet-stream|application/vnd\.apache\.arrow)")
# a field whose name says it is a ratio must say which scale: a fraction 0-1 or a percentage 0-100
RATIO_WORDS = {"yield", "percent", "pct", "rate", "share", "fraction", "ratio", "density", "confidence"}
UNIT = re.compile(r"\b0\s*[-–]\s*1\b|\b0\s*[-–]\s*100\b")
METHODS = {"get", "put", "post", "patch", "delete", "head", "options"}


@pytest.fixture(scope="module")
def doc() -> dict:
    return generate()


def _operations(doc: dict) -> Iterator[tuple[str, dict]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", op


def _resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def _walk(doc: dict, schema: Any, where: str, seen: set[str]) -> Iterator[tuple[str, str, dict]]:
    """(place, property name, property schema) of every property reachable from ``schema``."""
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return
        seen.add(name)
        yield from _walk(doc, doc["components"]["schemas"][name], name, seen)
    for prop, sub in (schema.get("properties") or {}).items():
        yield where, prop, sub
        yield from _walk(doc, sub, f"{where}.{prop}", seen)
    for key in ("allOf", "anyOf", "oneOf", "prefixItems"):
        for sub in schema.get(key) or []:
            yield from _walk(doc, sub, where, seen)
    for key in ("items", "additionalProperties", "not"):
        yield from _walk(doc, schema.get(key), where, seen)


def _all_properties(doc: dict) -> Iterator[tuple[str, str, dict]]:
    seen: set[str] = set()
    for name, schema in doc["components"]["schemas"].items():
        if name not in seen:
            seen.add(name)
            yield from _walk(doc, schema, name, seen)
    # inline schemas of request bodies, responses (problem+json included) and parameters
    for label, op in _operations(doc):
        for mt, media in (op.get("requestBody", {}).get("content") or {}).items():
            yield from _walk(doc, media.get("schema"), f"{label} request {mt}", seen)
        for code, resp in op.get("responses", {}).items():
            for mt, media in (resp.get("content") or {}).items():
                yield from _walk(doc, media.get("schema"), f"{label} {code} {mt}", seen)


def _is_number(doc: dict, schema: dict) -> bool:
    schema = _resolve(doc, schema)
    if schema.get("type") == "number":
        return True
    return any(_is_number(doc, s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def _says_ratio(name: str) -> bool:
    return bool(RATIO_WORDS & set(name.lower().replace("-", "_").split("_")))


def test_every_operation_has_a_summary_a_description_and_a_described_tag(doc):
    tags = {t["name"]: t.get("description", "") for t in doc.get("tags", [])}
    bad = []
    for label, op in _operations(doc):
        if not op.get("summary", "").strip():
            bad.append(f"{label}: no summary")
        if not op.get("description", "").strip():
            bad.append(f"{label}: no description")
        if not op.get("tags"):
            bad.append(f"{label}: no tag")
        for t in op.get("tags", []):
            if not tags.get(t, "").strip():
                bad.append(f"{label}: tag {t!r} is not in the top-level tags list with a description")
    assert not bad, f"{len(bad)} operation problems:\n" + "\n".join(bad)


def test_every_parameter_is_described(doc):
    bad = [
        f"{label}: parameter {p.get('in')} {p['name']!r}"
        for label, op in _operations(doc)
        for p in op.get("parameters", [])
        if not p.get("description", "").strip()
    ]
    assert not bad, f"{len(bad)} parameters without a description:\n" + "\n".join(bad)


def test_every_schema_field_is_described(doc):
    bad = sorted({f"{where}.{prop}" for where, prop, sub in _all_properties(doc) if not sub.get("description")})
    assert not bad, f"{len(bad)} schema fields without a description:\n" + "\n".join(bad)


def test_every_route_shows_an_example_of_its_answer(doc):
    bad = []
    for label, op in _operations(doc):
        ok = [(c, r) for c, r in op.get("responses", {}).items() if c.startswith("2")]
        if not ok:
            bad.append(f"{label}: no 2xx response")
        for code, resp in ok:
            if not resp.get("description", "").strip():
                bad.append(f"{label} {code}: no response description")
            for mt, media in (resp.get("content") or {}).items():
                schema = media.get("schema") or {}
                if BINARY.match(mt):
                    if not schema.get("description", "").strip():
                        bad.append(f"{label} {code} {mt}: binary answer without a described schema")
                    continue
                resolved = _resolve(doc, schema)
                if not (media.get("example") or media.get("examples") or resolved.get("example")):
                    if not resolved.get("examples"):
                        bad.append(f"{label} {code} {mt}: no example")
    assert not bad, f"{len(bad)} answers without an example:\n" + "\n".join(bad)


def test_ratios_state_their_unit(doc):
    bad = []
    for where, prop, sub in _all_properties(doc):
        if _is_number(doc, sub) and _says_ratio(prop) and not UNIT.search(sub.get("description", "")):
            bad.append(f"{where}.{prop}: {sub.get('description', '')!r}")
    for label, op in _operations(doc):
        for p in op.get("parameters", []):
            if _is_number(doc, p.get("schema", {})) and _says_ratio(p["name"]):
                if not UNIT.search(p.get("description", "")):
                    bad.append(f"{label}: parameter {p['name']!r}")
    assert not bad, f"{len(bad)} ratio fields without their unit (0-1 or 0-100) in the description:\n" + "\n".join(bad)


def test_yield_is_a_fraction_and_bin_percent_a_percentage(doc):
    """The two scales the API uses, stated where the fields are."""
    schemas = doc["components"]["schemas"]
    for name in ("LotSummary", "LotDetail", "WaferOut"):
        assert "0-1" in schemas[name]["properties"]["yield"]["description"], name
        assert "0-1" in schemas[name]["properties"]["first_pass_yield"]["description"], name
    percents = [(w, sub) for w, p, sub in _all_properties(doc) if p == "percent"]
    assert percents, "the bin summary rows are typed, with their percent field"
    for where, sub in percents:
        assert "0-100" in sub["description"], where


def test_security_scheme_names_local_and_production_keys(doc):
    scheme = doc["components"]["securitySchemes"]["ApiKey"]
    text = scheme["description"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert "stm_test_" in text and "stm_live_" in text
    # which prefix is which: local/development keys are stm_test_, production keys are stm_live_
    clauses = re.split(r"[;.]\s", text)
    assert any("stm_test_" in c and "local" in c and "stm_live_" not in c for c in clauses), text
    assert any("stm_live_" in c and "production" in c and "stm_test_" not in c for c in clauses), text
    assert "stratum keys create" in text
    assert "stm_live_" not in doc["info"]["description"] or "stm_test_" in doc["info"]["description"]


def test_validation_errors_are_documented_as_the_400_they_are(doc):
    """The app answers invalid requests with 400 problem+json: no FastAPI 422 HTTPValidationError is shown."""
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    bad = [
        f"{label}: 422"
        for label, op in _operations(doc)
        for media in (op.get("responses", {}).get("422", {}).get("content") or {}).values()
        if "HTTPValidationError" in str(media.get("schema"))
    ]
    assert not bad, "\n".join(bad)
