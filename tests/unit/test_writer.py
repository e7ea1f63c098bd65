"""STDF writer: encode_record is the inverse of decode_fields, and an independent reader (stdf_convert)
reads the writer's files back to exactly what was written."""

from __future__ import annotations

import bz2
import gzip
import io
import struct
from pathlib import Path
from typing import Any

import pytest

from stratum.devtools.stdf.writer import StdfWriter, encode_body, encode_record
from stratum.stdf.decode import decode_fields
from stratum.stdf.spec import BY_NAME, RECORDS, Field, RecordType

# One representative, fully populated record of every type. R4 values are exact in float32; arrays are
# non-empty; N1 arrays have odd counts; every GDR V1 type appears.
SAMPLES: dict[str, dict[str, Any]] = {
    "FAR": {"CPU_TYPE": 2, "STDF_VER": 4},
    "ATR": {"MOD_TIM": 1_700_000_123, "CMD_LINE": "merge --fix ünïcode"},
    "VUR": {"UPD_CNT": 2, "UPD_NAM": ["V4-2007", "Scan:2007.1"]},
    "MIR": {
        "SETUP_T": 1_700_000_000, "START_T": 1_700_000_060, "STAT_NUM": 3, "MODE_COD": "P", "RTST_COD": " ",
        "PROT_COD": "A", "BURN_TIM": 65535, "CMOD_COD": "C", "LOT_ID": "LOT42", "PART_TYP": "DEV-A",
        "NODE_NAM": "node", "TSTR_TYP": "93000", "JOB_NAM": "prog", "JOB_REV": "r2", "SBLOT_ID": "S1",
        "OPER_NAM": "op", "EXEC_TYP": "smt", "EXEC_VER": "7.5", "TEST_COD": "WS1", "TST_TEMP": "25",
        "USER_TXT": "u", "AUX_FILE": "", "PKG_TYP": "QFN", "FAMLY_ID": "F", "DATE_COD": "2611", "FACIL_ID": "FAB",
        "FLOOR_ID": "1", "PROC_ID": "N7", "OPER_FRQ": "", "SPEC_NAM": "S", "SPEC_VER": "1", "FLOW_ID": "P1",
        "SETUP_ID": "x", "DSGN_REV": "B", "ENG_ID": "e", "ROM_COD": "r", "SERL_NUM": "123", "SUPR_NAM": "boss",
    },
    "MRR": {"FINISH_T": 1_700_009_999, "DISP_COD": "Q", "USR_DESC": "fine", "EXC_DESC": ""},
    "PCR": {"HEAD_NUM": 255, "SITE_NUM": 0, "PART_CNT": 100, "RTST_CNT": 4, "ABRT_CNT": 0, "GOOD_CNT": 88,
            "FUNC_CNT": 4294967295},
    "HBR": {"HEAD_NUM": 1, "SITE_NUM": 2, "HBIN_NUM": 7, "HBIN_CNT": 12, "HBIN_PF": "F", "HBIN_NAM": "LEAK"},
    "SBR": {"HEAD_NUM": 1, "SITE_NUM": 2, "SBIN_NUM": 701, "SBIN_CNT": 3, "SBIN_PF": " ", "SBIN_NAM": "LEAK_HI"},
    "PMR": {"PMR_INDX": 9, "CHAN_TYP": 1, "CHAN_NAM": "CH9", "PHY_NAM": "P9", "LOG_NAM": "IO9", "HEAD_NUM": 1,
            "SITE_NUM": 3},
    "PGR": {"GRP_INDX": 32769, "GRP_NAM": "BUS", "INDX_CNT": 3, "PMR_INDX": [1, 2, 9]},
    "PLR": {"GRP_CNT": 2, "GRP_INDX": [1, 32769], "GRP_MODE": [0, 20], "GRP_RADX": [2, 16],
            "PGM_CHAR": ["0", "H"], "RTN_CHAR": ["L", "X"], "PGM_CHAL": ["", "1"], "RTN_CHAL": ["M", ""]},
    "RDR": {"NUM_BINS": 3, "RTST_BIN": [2, 5, 6]},
    "SDR": {
        "HEAD_NUM": 1, "SITE_GRP": 1, "SITE_CNT": 4, "SITE_NUM": [0, 1, 2, 3], "HAND_TYP": "prober",
        "HAND_ID": "PRB7", "CARD_TYP": "pc", "CARD_ID": "PC1", "LOAD_TYP": "lb", "LOAD_ID": "LB1", "DIB_TYP": "d",
        "DIB_ID": "D1", "CABL_TYP": "", "CABL_ID": "", "CONT_TYP": "c", "CONT_ID": "C1", "LASR_TYP": "",
        "LASR_ID": "", "EXTR_TYP": "x", "EXTR_ID": "X1",
    },
    "PSR": {
        "CONT_FLG": 0, "PSR_INDX": 1, "PSR_NAM": "scan_psr", "OPT_FLG": 0x01, "TOTP_CNT": 2, "LOCP_CNT": 2,
        "PAT_BGN": [0, 1 << 40], "PAT_END": [99, (1 << 40) + 5], "PAT_FILE": ["a.pat", "b.pat"], "PAT_LBL": ["A", "B"],
        "FILE_UID": ["u1", "u2"], "ATPG_DSC": ["d1", ""], "SRC_ID": ["", "s2"],
    },
    "NMR": {"CONT_FLG": 0, "TOTM_CNT": 2, "LOCM_CNT": 2, "PMR_INDX": [1, 2], "ATPG_NAM": ["sig_a", "sig_b"]},
    "CNR": {"CHN_NUM": 3, "BIT_POS": 70000, "CELL_NAM": "core/u1/reg_q" * 30},  # Sn over 255 bytes
    "SSR": {"SSR_NAM": "ssr0", "CHN_CNT": 3, "CHN_LIST": [1, 2, 3]},
    "CDR": {
        "CONT_FLG": 0, "CDR_INDX": 1, "CHN_NAM": "chain1", "CHN_LEN": 1000, "SIN_PIN": 4, "SOUT_PIN": 5,
        "MSTR_CNT": 2, "M_CLKS": [7, 8], "SLAV_CNT": 1, "S_CLKS": [9], "INV_VAL": 1, "LST_CNT": 2,
        "CELL_LST": ["cell_a", "cell_b"],
    },
    "WIR": {"HEAD_NUM": 1, "SITE_GRP": 255, "START_T": 1_700_000_100, "WAFER_ID": "W07"},
    "WRR": {
        "HEAD_NUM": 1, "SITE_GRP": 255, "FINISH_T": 1_700_000_900, "PART_CNT": 500, "RTST_CNT": 4, "ABRT_CNT": 0,
        "GOOD_CNT": 440, "FUNC_CNT": 4294967295, "WAFER_ID": "W07", "FABWF_ID": "FW7", "FRAME_ID": "F",
        "MASK_ID": "M", "USR_DESC": "u", "EXC_DESC": "e",
    },
    "WCR": {"WAFR_SIZ": 300.0, "DIE_HT": 2.5, "DIE_WID": 3.25, "WF_UNITS": 3, "WF_FLAT": "D", "CENTER_X": -32768,
            "CENTER_Y": 12, "POS_X": "L", "POS_Y": "U"},
    "PIR": {"HEAD_NUM": 0, "SITE_NUM": 0},
    "PRR": {
        "HEAD_NUM": 1, "SITE_NUM": 3, "PART_FLG": 0x0A, "NUM_TEST": 412, "HARD_BIN": 7, "SOFT_BIN": 701,
        "X_COORD": -3, "Y_COORD": 12, "TEST_T": 118, "PART_ID": "17", "PART_TXT": "txt", "PART_FIX": b"\x00\xff\x10",
    },
    "TSR": {
        "HEAD_NUM": 255, "SITE_NUM": 0, "TEST_TYP": "P", "TEST_NUM": 1000, "EXEC_CNT": 10, "FAIL_CNT": 1,
        "ALRM_CNT": 0, "TEST_NAM": "VDD", "SEQ_NAME": "seq", "TEST_LBL": "lbl", "OPT_FLAG": 0x04, "TEST_TIM": 0.5,
        "TEST_MIN": -1.5, "TEST_MAX": 2.25, "TST_SUMS": 10.0, "TST_SQRS": 30.5,
    },
    "PTR": {
        "TEST_NUM": 1000, "HEAD_NUM": 1, "SITE_NUM": 2, "TEST_FLG": 0x80, "PARM_FLG": 0xC8, "RESULT": 1.75,
        "TEST_TXT": "VDD_HI", "ALARM_ID": "", "OPT_FLAG": 0x4E, "RES_SCAL": -3, "LLM_SCAL": 3, "HLM_SCAL": 0,
        "LO_LIMIT": 0.0, "HI_LIMIT": 1.5, "UNITS": "V", "C_RESFMT": "%7.3f", "C_LLMFMT": "", "C_HLMFMT": "%9.4f",
        "LO_SPEC": -0.5, "HI_SPEC": 2.0,
    },
    "MPR": {
        "TEST_NUM": 5000, "HEAD_NUM": 1, "SITE_NUM": 1, "TEST_FLG": 0x80, "PARM_FLG": 0x08, "RTN_ICNT": 3,
        "RSLT_CNT": 2, "RTN_STAT": [1, 6, 15], "RTN_RSLT": [0.5, -1.25], "TEST_TXT": "VIH", "ALARM_ID": "al",
        "OPT_FLAG": 0x02, "RES_SCAL": 0, "LLM_SCAL": 0, "HLM_SCAL": 0, "LO_LIMIT": 0.25, "HI_LIMIT": 1.0,
        "START_IN": 0.0, "INCR_IN": 0.125, "RTN_INDX": [1, 2, 3], "UNITS": "V", "UNITS_IN": "mA", "C_RESFMT": "",
        "C_LLMFMT": "", "C_HLMFMT": "", "LO_SPEC": 0.0, "HI_SPEC": 4.0,
    },
    "FTR": {
        "TEST_NUM": 9000, "HEAD_NUM": 1, "SITE_NUM": 1, "TEST_FLG": 0x80, "OPT_FLAG": 0xF6, "CYCL_CNT": 1234,
        "REL_VADR": 5, "REPT_CNT": 1, "NUM_FAIL": 3, "XFAIL_AD": -1, "YFAIL_AD": 2, "VECT_OFF": -7, "RTN_ICNT": 3,
        "PGM_ICNT": 1, "RTN_INDX": [1, 2, 3], "RTN_STAT": [0, 5, 9], "PGM_INDX": [4], "PGM_STAT": [3],
        "FAIL_PIN": {"bit_count": 10, "bit_data": b"\x05\x02"}, "VECT_NAM": "v.pat", "TIME_SET": "ts",
        "OP_CODE": "op", "TEST_TXT": "FUNC", "ALARM_ID": "", "PROG_TXT": "p", "RSLT_TXT": "r", "PATG_NUM": 255,
        "SPIN_MAP": {"bit_count": 0, "bit_data": b""},
    },
    "STR": {
        "CONT_FLG": 0, "TEST_NUM": 2050, "HEAD_NUM": 1, "SITE_NUM": 1, "PSR_REF": 1, "TEST_FLG": 4,
        "LOG_TYP": "Standard", "TEST_TXT": "Scan", "ALARM_ID": "A", "PROG_TXT": "P", "RSLT_TXT": "Failed",
        "Z_VAL": 0, "FMU_FLG": 5, "MASK_MAP": {"bit_count": 9, "bit_data": b"\x04\x01"},
        "FAL_MAP": {"bit_count": 3, "bit_data": b"\x07"}, "CYC_CNT_T": 2, "TOTF_CNT": 3, "TOTL_CNT": 3,
        "CYC_BASE": 2, "BIT_BASE": 114, "COND_CNT": 2, "LIM_CNT": 1, "CYC_SIZE": 8, "PMR_SIZE": 2, "CHN_SIZE": 1,
        "PAT_SIZE": 4, "BIT_SIZE": 4, "U1_SIZE": 1, "U2_SIZE": 2, "U3_SIZE": 8, "UTX_SIZE": 3, "CAP_BGN": 0,
        "LIM_INDX": [1], "LIM_SPEC": [70000], "COND_LST": ["1.1V", "3.3V"], "CYC_CNT": 2,
        "CYC_OFST": [1, 1 << 40], "PMR_CNT": 1, "PMR_INDX": [300], "CHN_CNT": 2, "CHN_NUM": [1, 2], "EXP_CNT": 1,
        "EXP_DATA": [1], "CAP_CNT": 1, "CAP_DATA": [0], "NEW_CNT": 1, "NEW_DATA": [1], "PAT_CNT": 1,
        "PAT_NUM": [7], "BPOS_CNT": 1, "BIT_POS": [99], "USR1_CNT": 1, "USR1": [255], "USR2_CNT": 1,
        "USR2": [65535], "USR3_CNT": 1, "USR3": [1 << 33], "TXT_CNT": 2, "USER_TXT": ["abc", "xyz"],
    },
    "BPS": {"SEQ_NAME": "seq1"},
    "EPS": {},
    "GDR": {
        "FLD_CNT": 13,
        "GEN_DATA": [
            {"type": "B0", "value": None}, {"type": "U1", "value": 200}, {"type": "U2", "value": 60000},
            {"type": "U4", "value": 4_000_000_000}, {"type": "I1", "value": -5}, {"type": "I2", "value": -300},
            {"type": "I4", "value": -70000}, {"type": "R4", "value": 2.5}, {"type": "R8", "value": 1e-300},
            {"type": "Cn", "value": "text"}, {"type": "Bn", "value": "00ff"},
            {"type": "Dn", "value": {"bit_count": 12, "bit_data": "ab0c"}}, {"type": "N1", "value": 11},
        ],
    },
    "DTR": {"TEXT_DAT": "hello STDF"},
}  # fmt: skip

BYTE_ORDERS = [pytest.param(False, id="le"), pytest.param(True, id="be")]


def _fixed_spec(rt: RecordType) -> RecordType:
    """``rt`` with ``Uf@COUNT#SIZE`` fields split properly (see test_str_full_round_trip_with_spec_as_is)."""
    fields = []
    for f in rt.fields:
        if f.count and "#" in f.count:
            count, size = f.count.split("#")
            f = Field(f.name, f.type, count, size)
        fields.append(f)
    return RecordType(rt.name, rt.typ, rt.sub, tuple(fields), rt.v2007)


def _decode(name: str, body: bytes, be: bool) -> dict[str, Any]:
    rt = BY_NAME[name]
    return decode_fields(_fixed_spec(rt) if name == "STR" else rt, body, be)


def _split(rec: bytes, be: bool) -> tuple[int, int, int, bytes]:
    rec_len, typ, sub = struct.unpack(">HBB" if be else "<HBB", rec[:4])
    return rec_len, typ, sub, rec[4:]


def test_samples_cover_every_record_type() -> None:
    assert set(SAMPLES) == {r.name for r in RECORDS}
    for r in RECORDS:
        assert list(SAMPLES[r.name]) == [f.name for f in r.fields], r.name


@pytest.mark.parametrize("be", BYTE_ORDERS)
@pytest.mark.parametrize("name", [r.name for r in RECORDS])
def test_round_trip_full_record(name: str, be: bool) -> None:
    fields = SAMPLES[name]
    rec = encode_record(name, fields, big_endian=be)
    rec_len, typ, sub, body = _split(rec, be)
    rt = BY_NAME[name]
    assert (rec_len, typ, sub) == (len(body), rt.typ, rt.sub)
    assert _decode(name, body, be) == fields
    assert encode_body(name, fields, big_endian=be) == body


@pytest.mark.parametrize("be", BYTE_ORDERS)
@pytest.mark.parametrize("name", [r.name for r in RECORDS if r.name != "VUR"])
def test_round_trip_every_short_form(name: str, be: bool) -> None:
    """Cut the record after each field: the shortened record decodes to exactly the fields given."""
    fields = SAMPLES[name]
    keys = list(fields)
    for n in range(len(keys) + 1):
        prefix = {k: fields[k] for k in keys[:n]}
        body = encode_body(name, prefix, big_endian=be)
        assert _decode(name, body, be) == prefix, (name, keys[n - 1] if n else None)


def test_str_full_round_trip() -> None:
    body = encode_body("STR", SAMPLES["STR"], big_endian=False)
    assert decode_fields(BY_NAME["STR"], body, False) == SAMPLES["STR"]


@pytest.mark.parametrize("be", BYTE_ORDERS)
def test_vur_is_written_in_the_2007_1_layout(be: bool) -> None:
    rec = encode_record("VUR", {"UPD_NAM": ["V4-2007", "Scan:2007.1"]}, big_endian=be)
    assert rec[4:] == b"\x02\x07V4-2007\x0bScan:2007.1"
    assert decode_fields(BY_NAME["VUR"], rec[4:], be) == {"UPD_CNT": 2, "UPD_NAM": ["V4-2007", "Scan:2007.1"]}


def test_headers_and_byte_order() -> None:
    assert encode_record("FAR", {"CPU_TYPE": 2, "STDF_VER": 4}, big_endian=False) == b"\x02\x00\x00\x0a\x02\x04"
    assert encode_record("FAR", {"CPU_TYPE": 1, "STDF_VER": 4}, big_endian=True) == b"\x00\x02\x00\x0a\x01\x04"
    le = encode_record("PTR", {"TEST_NUM": 0x01020304, "HEAD_NUM": 1, "SITE_NUM": 2}, big_endian=False)
    be = encode_record("PTR", {"TEST_NUM": 0x01020304, "HEAD_NUM": 1, "SITE_NUM": 2}, big_endian=True)
    assert le == b"\x06\x00\x0f\x0a\x04\x03\x02\x01\x01\x02"
    assert be == b"\x00\x06\x0f\x0a\x01\x02\x03\x04\x01\x02"
    assert encode_record("EPS", {}, big_endian=False) == b"\x00\x00\x14\x14"


def test_short_ptr_ends_after_alarm_id() -> None:
    short = {k: SAMPLES["PTR"][k] for k in list(SAMPLES["PTR"])[:8]}
    rec = encode_record("PTR", short, big_endian=False)
    assert len(rec) == 4 + 12 + 1 + len("VDD_HI") + 1


def test_n1_packing_low_nibble_first_padded() -> None:
    fields = {"TEST_NUM": 1, "HEAD_NUM": 1, "SITE_NUM": 1, "TEST_FLG": 0, "PARM_FLG": 0, "RTN_STAT": [1, 2, 3]}
    with pytest.raises(ValueError, match="RTN_STAT given after missing field RSLT_CNT"):
        encode_body("MPR", fields, big_endian=False)  # RSLT_CNT comes before RTN_STAT
    fields["RTN_RSLT"] = []
    body = encode_body("MPR", fields, big_endian=False)
    assert body[8:12] == b"\x03\x00\x00\x00"
    assert body[12:] == bytes([0x21, 0x03])
    assert decode_fields(BY_NAME["MPR"], body, False)["RTN_STAT"] == [1, 2, 3]


def test_counts_are_filled_and_checked() -> None:
    assert encode_body("RDR", {"RTST_BIN": [2, 3]}, big_endian=False) == b"\x02\x00\x02\x00\x03\x00"
    assert encode_body("RDR", {"NUM_BINS": 0}, big_endian=False) == b"\x00\x00"
    with pytest.raises(ValueError, match="NUM_BINS"):
        encode_body("RDR", {"NUM_BINS": 3, "RTST_BIN": [2, 3]}, big_endian=False)
    with pytest.raises(ValueError, match="RTN_ICNT"):
        encode_body(
            "FTR",
            {**{k: SAMPLES["FTR"][k] for k in list(SAMPLES["FTR"])[:13]}, "RTN_INDX": [1, 2], "RTN_STAT": [1]},
            big_endian=False,
        )
    # a zero count lets its arrays be left out mid-record
    ftr = dict(SAMPLES["FTR"], RTN_ICNT=0, PGM_ICNT=0)
    for k in ("RTN_INDX", "RTN_STAT", "PGM_INDX", "PGM_STAT"):
        del ftr[k]
    assert _decode("FTR", encode_body("FTR", ftr, big_endian=False), False) == {
        **ftr, "RTN_INDX": [], "RTN_STAT": [], "PGM_INDX": [], "PGM_STAT": []
    }  # fmt: skip


def test_field_after_a_missing_one_is_an_error() -> None:
    with pytest.raises(ValueError, match="given after missing field SITE_NUM"):
        encode_record("PTR", {"TEST_NUM": 1, "HEAD_NUM": 1, "TEST_FLG": 0}, big_endian=False)
    with pytest.raises(ValueError, match="unknown field"):
        encode_record("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1, "SITE": 2}, big_endian=False)
    with pytest.raises(KeyError):
        encode_record("XYZ", {}, big_endian=False)


def test_value_errors() -> None:
    ok = encode_record("DTR", {"TEXT_DAT": "x" * 255}, big_endian=False)
    assert len(ok) == 4 + 256
    with pytest.raises(ValueError, match="255"):
        encode_record("DTR", {"TEXT_DAT": "x" * 256}, big_endian=False)
    with pytest.raises(ValueError, match="255"):
        encode_record("DTR", {"TEXT_DAT": "é" * 128}, big_endian=False)  # 256 bytes in UTF-8
    with pytest.raises(ValueError, match="PIR"):
        encode_record("PIR", {"HEAD_NUM": 256, "SITE_NUM": 1}, big_endian=False)
    with pytest.raises(ValueError, match="C1"):
        encode_record("HBR", {**SAMPLES["HBR"], "HBIN_PF": "PF"}, big_endian=False)
    with pytest.raises(ValueError, match="N1"):
        encode_record("MPR", {**SAMPLES["MPR"], "RTN_STAT": [1, 16, 0]}, big_endian=False)
    with pytest.raises(ValueError, match="Dn"):
        bad_dn = {"bit_count": 17, "bit_data": b"\x00\x00"}
        encode_record("FTR", {**SAMPLES["FTR"], "FAIL_PIN": bad_dn}, big_endian=False)
    with pytest.raises(ValueError, match="65535"):
        encode_record("GDR", {"GEN_DATA": [{"type": "Cn", "value": "x" * 255}] * 300}, big_endian=False)
    with pytest.raises(ValueError, match="GDR"):
        encode_record("GDR", {"GEN_DATA": [{"type": "U3", "value": 1}]}, big_endian=False)
    with pytest.raises(ValueError, match="Cf"):
        encode_record("STR", {**SAMPLES["STR"], "USER_TXT": ["abcd", "xyz"]}, big_endian=False)


def test_alternative_value_forms() -> None:
    """B1 as a 1-byte bytes (stdf_convert's form), C1/Cn as bytes, Bn/Dn in GDR as bytes or hex."""
    a = encode_record("PTR", {**SAMPLES["PTR"], "TEST_FLG": b"\x80", "PARM_FLG": b"\xc8"}, big_endian=False)
    assert a == encode_record("PTR", SAMPLES["PTR"], big_endian=False)
    b = encode_record("HBR", {**SAMPLES["HBR"], "HBIN_PF": b"F", "HBIN_NAM": b"LEAK"}, big_endian=True)
    assert b == encode_record("HBR", SAMPLES["HBR"], big_endian=True)
    gdr_bytes = {"GEN_DATA": [{"type": "Bn", "value": b"\x00\xff"}, {"type": "Dn", "value": {"bit_count": 12,
                 "bit_data": b"\xab\x0c"}}]}  # fmt: skip
    gdr_hex = {"GEN_DATA": [SAMPLES["GDR"]["GEN_DATA"][10], SAMPLES["GDR"]["GEN_DATA"][11]]}
    assert encode_record("GDR", gdr_bytes, big_endian=False) == encode_record("GDR", gdr_hex, big_endian=False)


@pytest.mark.corpus
@pytest.mark.parametrize(
    "name",
    [
        "stdf2xls4_all_v4_records.stdf", "libstdf_all_records_v4_2007.stdf", "advantest_93k_ft_4site_dtr.stdf",
        "advantest_93k_ft_be.stdf", "ltx_diamond_d10_ft_2site.std", "teradyne_catalyst_a595_3wafers_be.stdf.gz",
    ],
)  # fmt: skip
def test_real_records_re_encode_byte_for_byte(name: str) -> None:
    """Every record of real files: encode(decode(body)) gives back the original bytes."""
    from tests.conftest import corpus_file

    data = corpus_file(name).read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    be = data[:2] == b"\x00\x02"
    pos = n = 0
    while pos < len(data):
        rec_len, typ, sub, _ = _split(data[pos : pos + 4], be)
        rec = data[pos : pos + 4 + rec_len]
        rt = next(r for r in RECORDS if (r.typ, r.sub) == (typ, sub))
        assert encode_record(rt.name, _decode(rt.name, rec[4:], be), big_endian=be) == rec, (rt.name, pos)
        pos += 4 + rec_len
        n += 1
    assert n > 1


# ------------------------------------------------------------------------------------------ StdfWriter


def test_writer_far_counts_raw_and_file_object() -> None:
    buf = io.BytesIO()
    with StdfWriter(buf, byte_order="big") as w:
        w.write("MIR", **{k: SAMPLES["MIR"][k] for k in list(SAMPLES["MIR"])[:9]})
        w.write_record("PIR", {"HEAD_NUM": 1, "SITE_NUM": 1})
        w.write_raw(b"\x00\x01\x05\x0a")  # a truncated PIR header + body
        assert w.records == 3 and w.counts == {"FAR": 1, "MIR": 1, "PIR": 1}
    assert not buf.closed
    data = buf.getvalue()
    assert data[:6] == b"\x00\x02\x00\x0a\x01\x04"
    assert data.endswith(b"\x00\x01\x05\x0a")
    assert w.bytes_written == len(data)


@pytest.mark.parametrize("compression,magic,opener", [("gzip", b"\x1f\x8b", gzip.decompress),
                                                      ("bzip2", b"BZh", bz2.decompress)])  # fmt: skip
def test_writer_compression_is_deterministic(tmp_path: Path, compression: str, magic: bytes, opener: Any) -> None:
    outs = []
    for i in range(2):
        p = tmp_path / f"f{i}.stdf"
        with StdfWriter(p, compression=compression) as w:
            for s in range(50):
                w.write("PTR", **{**SAMPLES["PTR"], "SITE_NUM": s % 4})
        outs.append(p.read_bytes())
    assert outs[0] == outs[1] and outs[0].startswith(magic)
    raw = opener(outs[0])
    assert len(raw) == w.bytes_written and raw[:2] == b"\x02\x00"


def test_writer_rejects_bad_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        StdfWriter(tmp_path / "x", byte_order="middle")
    with pytest.raises(ValueError):
        StdfWriter(tmp_path / "x", compression="zip")
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------------- oracle: stdf_convert


def _oracle_value(v: Any, ftype: str) -> Any:
    """stdf_convert's representation -> decode_fields's."""
    if ftype == "B1":
        return v[0]
    if ftype == "V1":
        out = []
        for item in v:
            t = item["TYPE"]
            val = item.get(t)
            if t == "Bn":
                val = val.hex()
            elif t == "Dn":
                val = {"bit_count": val["bit_count"], "bit_data": val["bit_data"].hex()}
            out.append({"type": t, "value": None if t == "B0" else val})
        return out
    return v


def _write_all_types(path: Path, be: bool, compression: str | None) -> list[tuple[str, dict]]:
    written = []
    with StdfWriter(path, byte_order="big" if be else "little", compression=compression) as w:
        written.append(("FAR", {"CPU_TYPE": 1 if be else 2, "STDF_VER": 4}))
        for rt in RECORDS:
            if rt.name == "FAR":
                continue
            fields = dict(SAMPLES[rt.name])
            if rt.name == "VUR":
                fields.pop("UPD_CNT")
            w.write_record(rt.name, fields)
            written.append((rt.name, SAMPLES[rt.name]))
            if rt.name in ("PTR", "MPR"):  # and a short one
                short = {k: v for k, v in list(SAMPLES[rt.name].items()) if k not in _DEFAULT_DATA}
                w.write_record(rt.name, short)
                written.append((rt.name, short))
    return written


_DEFAULT_DATA = {
    "OPT_FLAG", "RES_SCAL", "LLM_SCAL", "HLM_SCAL", "LO_LIMIT", "HI_LIMIT", "START_IN", "INCR_IN", "RTN_INDX",
    "UNITS", "UNITS_IN", "C_RESFMT", "C_LLMFMT", "C_HLMFMT", "LO_SPEC", "HI_SPEC",
}  # fmt: skip


@pytest.mark.parametrize(
    "be,compression,suffix",
    [(False, None, ".stdf"), (True, None, ".stdf"), (False, "gzip", ".stdf.gz"), (True, "bzip2", ".stdf.bz2")],
)
def test_oracle_reads_back_every_field(tmp_path: Path, be: bool, compression: str | None, suffix: str) -> None:
    stdf_convert = pytest.importorskip("stdf_convert")
    path = tmp_path / f"all{suffix}"
    written = _write_all_types(path, be, compression)
    tables = stdf_convert.tables(str(path))
    expected_counts: dict[str, int] = {}
    for name, _ in written:
        expected_counts[name] = expected_counts.get(name, 0) + 1
    assert {k: t.num_rows for k, t in tables.items()} == expected_counts
    rows = {k: t.to_pylist() for k, t in tables.items()}
    seen: dict[str, int] = {}
    for seq, (name, fields) in enumerate(written):
        i = seen[name] = seen.get(name, -1) + 1
        row = rows[name][i]
        assert row["sequence_number"] == seq
        types = {f.name: f.type for f in BY_NAME[name].fields}
        got = {k: _oracle_value(row[k], types[k]) for k in fields}
        assert got == fields, name
        if name in ("PTR", "MPR") and "OPT_FLAG" not in fields:
            assert row["OPT_FLAG"] is None and row["LO_LIMIT"] is None
