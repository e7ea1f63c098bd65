"""Runs of fixed-width fields read with one ``unpack_from`` (``decode.decode_counted``) give exactly what reading
them one field at a time gives: the same fields present, values, bytes used and errors, for every record type,
both byte orders, every cut of a record."""

from __future__ import annotations

import math
import random

import pytest

from stratum.devtools.stdf.writer import encode_body
from stratum.stdf import decode
from stratum.stdf.errors import RecordFormatError
from stratum.stdf.spec import RECORDS

TYPES = [rt for rt in RECORDS if rt.name not in ("VUR", "GDR") and len(decode._runs(rt))]


def _outcome(rt, body: bytes, be: bool, runs: bool, monkeypatch) -> tuple:
    if not runs:
        monkeypatch.setitem(decode._RUNS, rt.name, {})
    try:
        d, used = decode.decode_counted(rt, body, be, offset=7)
    except RecordFormatError as exc:
        return ("error", str(exc), exc.field, exc.offset)
    finally:
        monkeypatch.undo()
    # NaN != NaN: compare floats by their text
    return ("ok", repr({k: (repr(v) if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}), used)


def test_the_common_record_types_have_runs():
    names = {rt.name for rt in TYPES}
    assert {"TSR", "HBR", "SBR", "PCR", "PRR", "PTR", "MPR", "WIR", "WRR", "MIR"} <= names


@pytest.mark.parametrize("be", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("rt", TYPES, ids=lambda rt: rt.name)
def test_runs_read_as_field_by_field(rt, be, monkeypatch):
    rng = random.Random(rt.code * 2 + be)
    bodies = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 90))) for _ in range(40)]
    for body in bodies:
        for cut in range(len(body) + 1):
            b = body[:cut]
            assert _outcome(rt, b, be, True, monkeypatch) == _outcome(rt, b, be, False, monkeypatch), (rt.name, b)


def test_a_full_tsr_decodes_to_its_fields():
    rt = next(rt for rt in RECORDS if rt.name == "TSR")
    fields = {
        "HEAD_NUM": 1, "SITE_NUM": 3, "TEST_TYP": "P", "TEST_NUM": 1000, "EXEC_CNT": 50, "FAIL_CNT": 2,
        "ALRM_CNT": 0, "TEST_NAM": "vdd_leak", "SEQ_NAME": "", "TEST_LBL": "lbl", "OPT_FLAG": 0,
        "TEST_TIM": 0.5, "TEST_MIN": -1.0, "TEST_MAX": 2.0, "TST_SUMS": 10.0, "TST_SQRS": 30.0,
    }  # fmt: skip
    for be in (False, True):
        body = encode_body(rt, fields, big_endian=be)
        d, used = decode.decode_counted(rt, body, be)
        assert d == fields and used == len(body)
