"""The GDR fast path (``gdr_values``) gives exactly what the general decoder gives for a GDR (``decode_counted``
then the reader's JSON form): the same items, the same bytes used, the same error on a cut record."""

from __future__ import annotations

import json
import random
import struct

import pytest

from stratum.devtools.stdf.writer import encode_body
from stratum.stdf.decode import decode_counted, gdr_values
from stratum.stdf.errors import RecordFormatError
from stratum.stdf.reader import _dumps, _json
from stratum.stdf.spec import BY_NAME

GDR = BY_NAME["GDR"]
BYTE_ORDERS = [pytest.param(False, id="le"), pytest.param(True, id="be")]

EVERY_TYPE = [
    {"type": "B0", "value": None},
    {"type": "U1", "value": 200},
    {"type": "U2", "value": 60000},
    {"type": "U4", "value": 4_000_000_000},
    {"type": "I1", "value": -5},
    {"type": "I2", "value": -300},
    {"type": "I4", "value": -70000},
    {"type": "R4", "value": 2.5},
    {"type": "R8", "value": 1e-300},
    {"type": "Cn", "value": "text ünï"},
    {"type": "Cn", "value": ""},
    {"type": "Bn", "value": "00ff"},
    {"type": "Dn", "value": {"bit_count": 12, "bit_data": "ab0c"}},
    {"type": "N1", "value": 11},
]


def _general(body: bytes, be: bool) -> tuple[str, int]:
    d, used = decode_counted(GDR, body, be)
    return _json(d.get("GEN_DATA", [])), used


def _fast(body: bytes, be: bool) -> tuple[str, int]:
    items, used = gdr_values(body, be)
    return _dumps(items), used


def _body(items: list[dict], be: bool) -> bytes:
    return encode_body(GDR, {"FLD_CNT": len(items), "GEN_DATA": items}, big_endian=be)


@pytest.mark.parametrize("be", BYTE_ORDERS)
def test_every_type_decodes_as_the_general_decoder(be: bool) -> None:
    body = _body(EVERY_TYPE, be)
    text, used = _fast(body, be)
    assert (text, used) == _general(body, be)
    assert used == len(body)
    assert json.loads(text) == EVERY_TYPE


@pytest.mark.parametrize("be", BYTE_ORDERS)
def test_nan_floats_become_null_and_trailing_bytes_are_not_used(be: bool) -> None:
    nan4 = struct.pack(">f" if be else "<f", float("nan"))
    nan8 = struct.pack(">d" if be else "<d", float("nan"))
    body = struct.pack(">H" if be else "<H", 2) + b"\x07" + nan4 + b"\x08" + nan8 + b"\x99\x98"
    assert _fast(body, be) == _general(body, be)
    assert _fast(body, be) == ('[{"type": "R4", "value": null}, {"type": "R8", "value": null}]', len(body) - 2)


@pytest.mark.parametrize("be", BYTE_ORDERS)
def test_every_cut_of_a_record_fails_or_decodes_as_the_general_decoder(be: bool) -> None:
    body = _body(EVERY_TYPE, be)
    for cut in range(len(body) + 1):
        part = body[:cut]
        try:
            want: tuple | str = _general(part, be)
        except RecordFormatError as exc:
            want = f"{exc} field={exc.field} record={exc.record} offset={exc.offset}"
        try:
            got: tuple | str = _fast(part, be)
        except RecordFormatError as exc:
            got = f"{exc} field={exc.field} record={exc.record} offset={exc.offset}"
        assert got == want, cut
    assert _fast(b"", be) == ("[]", 0)
    assert _fast(body[:2], be) == ("[]", 2)  # FLD_CNT without values: no GEN_DATA


@pytest.mark.parametrize("be", BYTE_ORDERS)
def test_an_unknown_type_code_is_the_same_error(be: bool) -> None:
    body = struct.pack(">H" if be else "<H", 2) + b"\x01\x05\x09\x00"
    with pytest.raises(RecordFormatError) as fast:
        gdr_values(body, be, offset=123)
    with pytest.raises(RecordFormatError) as general:
        decode_counted(GDR, body, be, 123)
    assert (
        str(fast.value)
        == str(general.value)
        == ("unknown GDR data type code 9 (record GDR, field GEN_DATA, byte offset 123)")
    )
    assert (fast.value.offset, fast.value.record, fast.value.field) == (123, "GDR", "GEN_DATA")
    assert (general.value.offset, general.value.record, general.value.field) == (123, "GDR", "GEN_DATA")


@pytest.mark.parametrize("be", BYTE_ORDERS)
def test_random_records_decode_as_the_general_decoder(be: bool) -> None:
    rnd = random.Random(16)
    for _ in range(200):
        items = [rnd.choice(EVERY_TYPE) for _ in range(rnd.randrange(0, 60))]
        body = _body(items, be)
        assert _fast(body, be) == _general(body, be)


@pytest.mark.parametrize(
    "name",
    ["advantest_93k_ft_be.stdf", "teradyne_a530_ws_be_lot3.stdf.gz", "libstdf_all_records_v4_2007.stdf"],
)
def test_corpus_gdrs_decode_as_the_general_decoder(name: str) -> None:
    import gzip

    from tests.conftest import corpus_file

    p = corpus_file(name)
    data = (gzip.open if name.endswith(".gz") else open)(p, "rb").read()
    be = data[4] == 1  # FAR CPU_TYPE: 1 = big-endian
    header = struct.Struct(">HBB" if be else "<HBB")
    pos, n = 0, 0
    while pos + 4 <= len(data):
        length, typ, sub = header.unpack_from(data, pos)
        if (typ, sub) == (50, 10):
            body = data[pos + 4 : pos + 4 + length]
            assert _fast(body, be) == _general(body, be), pos
            n += 1
        pos += 4 + length
    assert n == {"advantest_93k_ft_be.stdf": 9, "teradyne_a530_ws_be_lot3.stdf.gz": 810}.get(name, 1)
