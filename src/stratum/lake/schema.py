"""The lake's stored tables (one Parquet dataset each) and their column types.

This module imports neither pyarrow nor duckdb: the API uses it for schema discovery, the ingest
writer turns it into Arrow schemas (``arrow_schema``), the query engine into typed empty relations,
and the CDK app into Glue columns.

Every stored table carries ``lot_id`` and ``job_id``. The *public* SQL tables (views with lot-level
semantics such as ``is_final``) are defined in ``stratum.query.views`` on top of these.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Col:
    name: str
    # string bool int8..int64 uint8..uint64 float32 float64 timestamp timestamp_us binary json list<uint8>
    # list<uint16>; timestamps are UTC, stored without a zone (timestamp: seconds, timestamp_us: microseconds)
    type: str
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    doc: str
    cols: tuple[Col, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cols]


def _t(name: str, doc: str, spec: str) -> Table:
    cols = [
        Col("lot_id", "string", "Lot id (MIR.LOT_ID, or the file name when the file has no MIR)"),
        Col("job_id", "string", "Ingest job that wrote the row"),
        Col("file_num", "int64", "Workspace-wide number of the file (job): the integer join key of its rows"),
    ]
    for line in spec.strip().splitlines():
        line = line.strip()
        if not line:
            continue
        head, _, doc_ = line.partition("|")
        n, t = head.split()
        cols.append(Col(n, t, doc_.strip()))
    return Table(name, doc, tuple(cols))


LOT_FILES = _t(
    "lot_files",
    "One row per ingested file (job): MIR, MRR, FAR, WCR and parse facts.",
    """
file_name string | Name of the ingested file
file_sha256 string | SHA-256 of the file as received
file_size int64 | Size in bytes as received (compressed size for .gz/.bz2/.zip)
stdf_bytes int64 | Size of the decompressed STDF stream
byte_order string | 'little' or 'big' (from the FAR REC_LEN bytes)
cpu_type uint8 | FAR.CPU_TYPE as written
records int64 | Number of records in the file
partial bool | True when a truncated file was accepted with --accept-truncated
setup_time timestamp | MIR.SETUP_T
start_time timestamp | MIR.START_T
finish_time timestamp | MRR.FINISH_T
station uint8 | MIR.STAT_NUM
mode_code string | MIR.MODE_COD
retest_code string | MIR.RTST_COD
protection_code string | MIR.PROT_COD
burn_time uint16 | MIR.BURN_TIM (minutes)
command_mode string | MIR.CMOD_COD
part_type string | MIR.PART_TYP
program string | MIR.JOB_NAM (test program)
program_rev string | MIR.JOB_REV
node_name string | MIR.NODE_NAM (tester host)
tester_type string | MIR.TSTR_TYP
sublot_id string | MIR.SBLOT_ID
operator string | MIR.OPER_NAM
exec_type string | MIR.EXEC_TYP
exec_ver string | MIR.EXEC_VER
test_code string | MIR.TEST_COD (e.g. WS1, FT1)
test_temp string | MIR.TST_TEMP
user_text string | MIR.USER_TXT
aux_file string | MIR.AUX_FILE
package_type string | MIR.PKG_TYP
family_id string | MIR.FAMLY_ID
date_code string | MIR.DATE_COD
facility_id string | MIR.FACIL_ID
floor_id string | MIR.FLOOR_ID
process_id string | MIR.PROC_ID
oper_freq string | MIR.OPER_FRQ
spec_name string | MIR.SPEC_NAM
spec_ver string | MIR.SPEC_VER
flow_id string | MIR.FLOW_ID
setup_id string | MIR.SETUP_ID
design_rev string | MIR.DSGN_REV
engineering_id string | MIR.ENG_ID
rom_code string | MIR.ROM_COD
serial_num string | MIR.SERL_NUM (tester serial)
supervisor string | MIR.SUPR_NAM
disposition string | MRR.DISP_COD
mrr_user_desc string | MRR.USR_DESC
mrr_exc_desc string | MRR.EXC_DESC
wafer_size float32 | WCR.WAFR_SIZ (in wafer_units)
die_height float32 | WCR.DIE_HT
die_width float32 | WCR.DIE_WID
wafer_units uint8 | WCR.WF_UNITS: 0 unknown, 1 in, 2 cm, 3 mm, 4 mil
wafer_flat string | WCR.WF_FLAT: U/D/L/R or null
center_x int16 | WCR.CENTER_X
center_y int16 | WCR.CENTER_Y
pos_x string | WCR.POS_X: direction of positive X (L/R) or null
pos_y string | WCR.POS_Y: direction of positive Y (U/D) or null
parser_version string | Reader version that produced the rows
retest_policy string | Retest policy recorded for this snapshot ('last' or 'highest_bin')
test_key string | Test identity key ('number_and_name' or 'number')
ingested_at timestamp | When the job finished writing
""",
)

WAFER_RUNS = _t(
    "wafer_runs",
    "One row per WIR/WRR pair (one wafer on one head) in one file.",
    """
wafer_seq int32 | Order of the wafer in the file
wafer_id string | WRR.WAFER_ID, else WIR.WAFER_ID
head_num uint8 | Head the wafer was tested on
site_grp uint8 | Site group (links to the SDR; 255 = unknown)
start_time timestamp | WIR.START_T
finish_time timestamp | WRR.FINISH_T
part_cnt uint32 | WRR.PART_CNT (summary; null if missing)
rtst_cnt uint32 | WRR.RTST_CNT
abrt_cnt uint32 | WRR.ABRT_CNT
good_cnt uint32 | WRR.GOOD_CNT
func_cnt uint32 | WRR.FUNC_CNT
fabwf_id string | WRR.FABWF_ID
frame_id string | WRR.FRAME_ID
mask_id string | WRR.MASK_ID
usr_desc string | WRR.USR_DESC
exc_desc string | WRR.EXC_DESC
closed bool | False when the wafer had no WRR
wir_rec_seq int64 | Record number of the WIR
wrr_rec_seq int64 | Record number of the WRR
""",
)

PARTS = _t(
    "parts",
    "One row per PRR (every execution, retests included).",
    """
part_seq int64 | Part number within the file (order of its PIR)
wafer_seq int32 | Wafer (wafer_runs.wafer_seq) the part belongs to; null for final test
head_num uint8 | PRR.HEAD_NUM
site_num uint8 | PRR.SITE_NUM
part_id string | PRR.PART_ID
part_txt string | PRR.PART_TXT
part_fix binary | PRR.PART_FIX
x int16 | PRR.X_COORD (null when -32768)
y int16 | PRR.Y_COORD (null when -32768)
hard_bin uint16 | PRR.HARD_BIN
soft_bin uint16 | PRR.SOFT_BIN (null when 65535)
part_flg uint8 | PRR.PART_FLG
passed bool | PART_FLG bit 3 (null when bit 4 says no pass/fail indication)
abort bool | PART_FLG bit 2: abnormal end of testing
supersedes_id bool | PART_FLG bit 0: retest of the same PART_ID
supersedes_xy bool | PART_FLG bit 1: retest of the same X/Y
num_test uint16 | PRR.NUM_TEST
test_time_ms uint32 | PRR.TEST_T in ms (null when 0)
pir_rec_seq int64 | Record number of the PIR (null for a PRR without PIR)
rec_seq int64 | Record number of the PRR
byte_offset int64 | Byte offset of the PRR in the decompressed file
""",
)

TESTS = _t(
    "tests",
    "One row per test key (record type, TEST_NUM, TEST_TXT) with its default data.",
    """
test_idx int32 | Test index within the file
test_num uint32 | TEST_NUM
test_name string | TEST_TXT
test_type string | 'P' (PTR), 'M' (MPR) or 'F' (FTR)
units string | UNITS (base units; results and limits are stored unscaled)
lo_limit float32 | Default low test limit (null: no low limit)
hi_limit float32 | Default high test limit (null: no high limit)
lo_spec float32 | Low specification limit
hi_spec float32 | High specification limit
res_scal int8 | RES_SCAL display exponent
llm_scal int8 | LLM_SCAL display exponent
hlm_scal int8 | HLM_SCAL display exponent
c_resfmt string | C_RESFMT
c_llmfmt string | C_LLMFMT
c_hlmfmt string | C_HLMFMT
opt_flag uint8 | OPT_FLAG of the record that set the defaults
units_in string | MPR UNITS_IN
start_in float32 | MPR START_IN
incr_in float32 | MPR INCR_IN
rtn_indx list<uint16> | MPR default RTN_INDX (PMR indexes of the pins)
exec_count int64 | Executions inside parts
scale_mismatch bool | RES_SCAL differs from LLM_SCAL/HLM_SCAL
first_rec_seq int64 | Record number of the first record of the test
""",
)

RESULTS = _t(
    "results",
    "One row per PTR inside a part.",
    """
part_seq int64 | Part (parts.part_seq) the result belongs to
test_idx int32 | Test (tests.test_idx)
test_num uint32 | PTR.TEST_NUM
head_num uint8 | PTR.HEAD_NUM
site_num uint8 | PTR.SITE_NUM
result float32 | PTR.RESULT in base units (null when absent)
valid bool | TEST_FLG & 0x3F == 0 and PARM_FLG & 0x07 == 0 and a finite result
passed bool | Pass/fail (TEST_FLG bit 7, or a limit comparison when bit 6 is set); null if unknown
test_flg uint8 | PTR.TEST_FLG
parm_flg uint8 | PTR.PARM_FLG
lo_limit float32 | Low limit in effect for this record (default data or the record's own)
hi_limit float32 | High limit in effect for this record
rec_seq int64 | Record number of the PTR
""",
)

MPR_RESULTS = _t(
    "mpr_results",
    "One row per (MPR inside a part, pin index).",
    """
part_seq int64 | Part the result belongs to
test_idx int32 | Test (tests.test_idx)
test_num uint32 | MPR.TEST_NUM
head_num uint8 | MPR.HEAD_NUM
site_num uint8 | MPR.SITE_NUM
pin_seq int32 | Position of the pin in the record (0-based)
pmr_index uint16 | PMR index of the pin (RTN_INDX, or the test's default)
result float32 | RTN_RSLT[pin_seq] (null when RSLT_CNT <= pin_seq)
rtn_stat uint8 | RTN_STAT[pin_seq] (null when RTN_ICNT <= pin_seq)
test_flg uint8 | MPR.TEST_FLG
parm_flg uint8 | MPR.PARM_FLG
lo_limit float32 | Low limit in effect
hi_limit float32 | High limit in effect
valid bool | Record flags valid and a finite result
passed bool | Pass/fail of this pin: its result against the limits, else the record's TEST_FLG (null if unknown)
rec_seq int64 | Record number of the MPR
""",
)

FTR_RESULTS = _t(
    "ftr_results",
    "One row per FTR inside a part (functional tests: pass/fail only).",
    """
part_seq int64 | Part the result belongs to
test_idx int32 | Test (tests.test_idx)
test_num uint32 | FTR.TEST_NUM
head_num uint8 | FTR.HEAD_NUM
site_num uint8 | FTR.SITE_NUM
test_flg uint8 | FTR.TEST_FLG
opt_flag uint8 | FTR.OPT_FLAG
passed bool | TEST_FLG bit 7 (null when bit 6: no pass/fail indication)
cycl_cnt uint32 | CYCL_CNT
rel_vadr uint32 | REL_VADR
rept_cnt uint32 | REPT_CNT
num_fail uint32 | NUM_FAIL
xfail_ad int32 | XFAIL_AD
yfail_ad int32 | YFAIL_AD
vect_off int16 | VECT_OFF
rtn_indx list<uint16> | RTN_INDX
rtn_stat list<uint8> | RTN_STAT
pgm_indx list<uint16> | PGM_INDX
pgm_stat list<uint8> | PGM_STAT
fail_pin binary | FAIL_PIN bitmap
vect_nam string | VECT_NAM
time_set string | TIME_SET
op_code string | OP_CODE
alarm_id string | ALARM_ID
prog_txt string | PROG_TXT
rslt_txt string | RSLT_TXT
patg_num uint8 | PATG_NUM
spin_map binary | SPIN_MAP bitmap
rec_seq int64 | Record number of the FTR
""",
)

BIN_DEFS = _t(
    "bin_records",
    "HBR and SBR records as written (summaries; names and pass/fail).",
    """
rec_seq int64 | Record number
bin_type string | 'H' (HBR) or 'S' (SBR)
head_num uint8 | HEAD_NUM (255 = summary over all sites)
site_num uint8 | SITE_NUM
bin_num uint16 | Bin number
bin_count uint32 | Bin count as written (null if missing)
pass_fail string | 'P', 'F' or null (unknown)
bin_name string | Bin name
""",
)

PART_COUNTS = _t(
    "part_counts",
    "PCR records (per site and HEAD_NUM 255 summaries).",
    """
rec_seq int64 | Record number
head_num uint8 | HEAD_NUM (255 = all sites)
site_num uint8 | SITE_NUM
part_cnt uint32 | PART_CNT
rtst_cnt uint32 | RTST_CNT
abrt_cnt uint32 | ABRT_CNT
good_cnt uint32 | GOOD_CNT
func_cnt uint32 | FUNC_CNT
""",
)

TEST_SUMMARIES = _t(
    "test_summaries",
    "TSR records (per site and HEAD_NUM 255 summaries).",
    """
rec_seq int64 | Record number
head_num uint8 | HEAD_NUM (255 = all sites)
site_num uint8 | SITE_NUM
test_type string | TEST_TYP: P, M, F or null
test_num uint32 | TEST_NUM
exec_count uint32 | EXEC_CNT
fail_count uint32 | FAIL_CNT
alarm_count uint32 | ALRM_CNT
test_name string | TEST_NAM
seq_name string | SEQ_NAME
test_label string | TEST_LBL
opt_flag uint8 | OPT_FLAG
test_time float32 | TEST_TIM (null when flagged invalid)
test_min float32 | TEST_MIN
test_max float32 | TEST_MAX
test_sum float32 | TST_SUMS
test_sum_squares float32 | TST_SQRS
""",
)

SITES = _t(
    "sites",
    "SDR records: equipment per site group (prober/handler, probe card, load board...).",
    """
rec_seq int64 | Record number
head_num uint8 | HEAD_NUM
site_grp uint8 | SITE_GRP
site_cnt uint8 | SITE_CNT
site_num list<uint8> | Sites in the group
hand_typ string | Handler/prober type
hand_id string | Handler/prober id
card_typ string | Probe card type
card_id string | Probe card id
load_typ string | Load board type
load_id string | Load board id
dib_typ string | DIB type
dib_id string | DIB id
cabl_typ string | Cable type
cabl_id string | Cable id
cont_typ string | Contactor type
cont_id string | Contactor id
lasr_typ string | Laser type
lasr_id string | Laser id
extr_typ string | Extra equipment type
extr_id string | Extra equipment id
""",
)

PINS = _t(
    "pins",
    "PMR records: pin map.",
    """
rec_seq int64 | Record number
pmr_indx uint16 | PMR index
chan_typ uint16 | Channel type
chan_nam string | Channel name
phy_nam string | Physical pin name
log_nam string | Logical pin name
head_num uint8 | HEAD_NUM
site_num uint8 | SITE_NUM
""",
)

TEXTS = _t(
    "texts",
    "DTR text and GDR generic data (as JSON) in file order.",
    """
rec_seq int64 | Record number
byte_offset int64 | Byte offset in the decompressed file
rec_type string | 'DTR' or 'GDR'
text string | DTR.TEXT_DAT, or the GDR fields as JSON
""",
)

RECORDS = _t(
    "records",
    "Every other record, decoded, as JSON (FAR, ATR, VUR, MIR, MRR, PGR, PLR, RDR, "
    "PSR, NMR, CNR, SSR, CDR, STR, BPS, EPS, WIR, WRR, WCR, HBR, SBR, PCR, TSR, SDR, PMR; "
    "unknown types as raw hex).",
    """
rec_seq int64 | Record number
byte_offset int64 | Byte offset in the decompressed file
rec_type string | Record name, or UNKNOWN
rec_typ uint8 | REC_TYP
rec_sub uint8 | REC_SUB
fields json | Decoded fields as a JSON object (absent trailing fields are left out)
""",
)

WAFER_PATTERNS = _t(
    "wafer_patterns",
    "Spatial fail patterns of each wafer in one file, classified when the file is ingested (one row per "
    "detected pattern; one 'none' row for a wafer without a pattern).",
    """
wafer_seq int32 | Wafer sequence in the file (joins wafer_runs)
wafer_id string | Wafer id (WRR, else WIR)
rank int16 | 1 = the most confident pattern of the wafer
class_id string | Taxonomy class, e.g. edge_loc/edge/high/ne (GET /v1/patterns)
family string | Pattern family (none, random, center, donut, edge_ring, edge_loc, loc, scratch, ...)
location string | global, center, mid or edge (equal-area radial thirds)
severity string | low, med or high (fail density inside the pattern region)
refinement string | Octant, orientation, side or direction where the family has one
confidence float64 | Calibrated confidence of the family (null for 'none')
die_count int32 | Dies in the detected region
summary string | One-line explanation
classifier_version string | Classifier rules and calibration version
wafer_dies int32 | Located dies of the wafer in this file (a retest file holds only part of the wafer)
""",
)

# Written after publish (not by the ingest writer, and not listed in the job's manifest): one object per stored
# classification of a lake wafer, under the snapshot job's partition (``stratum.lake.final_patterns``). Athena
# cannot read the metadata store, so its ``wafer_patterns`` reads these; DuckDB reads the store's rows.
WAFER_PATTERNS_FINAL = Table(
    "wafer_patterns_final",
    "Spatial fail patterns of a wafer's final die map (the snapshot's retest view), classified on publish or by "
    "POST /v1/classify on a lake wafer: one object per (lot, wafer, snapshot job, classifier version), one row "
    "per detected pattern (one 'none' row for a wafer without a pattern). The same rows as the metadata store's "
    "wafer_pattern_history.",
    (
        Col("lot_id", "string", "Lot id"),
        Col("job_id", "string", "Snapshot job whose final die map was classified"),
        Col("wafer_id", "string", "Wafer id"),
        Col("rank", "int16", "1 = the most confident pattern of the wafer"),
        Col("class_id", "string", "Taxonomy class, e.g. edge_loc/edge/high/ne (GET /v1/patterns)"),
        Col("family", "string", "Pattern family ('none' when the wafer shows no pattern)"),
        Col("location", "string", "global, center, mid or edge (equal-area radial thirds)"),
        Col("severity", "string", "low, med or high (fail density inside the pattern region)"),
        Col("refinement", "string", "Octant, orientation, side or direction where the family has one"),
        Col("confidence", "float64", "Calibrated confidence of the family (null for 'none')"),
        Col("die_count", "int32", "Dies in the detected region"),
        Col("summary", "string", "One-line explanation"),
        Col("classifier_version", "string", "Classifier rules and calibration version"),
        Col("publish_seq", "int64", "Publish order of job_id within the lot"),
        Col("classified_at", "timestamp_us", "When this (job, classifier_version) was first classified (UTC)"),
    ),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        LOT_FILES,
        WAFER_RUNS,
        PARTS,
        TESTS,
        RESULTS,
        MPR_RESULTS,
        FTR_RESULTS,
        BIN_DEFS,
        PART_COUNTS,
        TEST_SUMMARIES,
        SITES,
        PINS,
        TEXTS,
        RECORDS,
        WAFER_PATTERNS,
        WAFER_PATTERNS_FINAL,
    )
}

#: stored tables written after publish: not in a job's manifest, so a member's ``tables`` never lists them
LATE_TABLES = ("wafer_patterns_final",)

# reader table name -> stored table name
READER_TABLES = {"bins": "bin_records"}

_DUCK = {
    "string": "VARCHAR",
    "json": "VARCHAR",
    "bool": "BOOLEAN",
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "uint8": "UTINYINT",
    "uint16": "USMALLINT",
    "uint32": "UINTEGER",
    "uint64": "UBIGINT",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "timestamp": "TIMESTAMP",
    "timestamp_us": "TIMESTAMP",
    "binary": "BLOB",
    "list<uint8>": "UTINYINT[]",
    "list<uint16>": "USMALLINT[]",
}
_GLUE = {
    "string": "string",
    "json": "string",
    "bool": "boolean",
    "int8": "tinyint",
    "int16": "smallint",
    "int32": "int",
    "int64": "bigint",
    "uint8": "smallint",
    "uint16": "int",
    "uint32": "bigint",
    "uint64": "decimal(20,0)",
    "float32": "float",
    "float64": "double",
    "timestamp": "timestamp",
    "timestamp_us": "timestamp",
    "binary": "binary",
    "list<uint8>": "array<smallint>",
    "list<uint16>": "array<int>",
}


def duckdb_type(t: str) -> str:
    return _DUCK[t]


def glue_type(t: str) -> str:
    return _GLUE[t]


def arrow_type(t: str):
    import pyarrow as pa

    return {
        "string": pa.string(),
        "json": pa.string(),
        "bool": pa.bool_(),
        "int8": pa.int8(),
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "uint8": pa.uint8(),
        "uint16": pa.uint16(),
        "uint32": pa.uint32(),
        "uint64": pa.uint64(),
        "float32": pa.float32(),
        "float64": pa.float64(),
        "timestamp": pa.timestamp("s"),
        "timestamp_us": pa.timestamp("us"),
        "binary": pa.binary(),
        "list<uint8>": pa.list_(pa.uint8()),
        "list<uint16>": pa.list_(pa.uint16()),
    }[t]


def arrow_schema(table: str):
    import pyarrow as pa

    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in TABLES[table].cols])


def glue_columns(table: str) -> list[tuple[str, str, str]]:
    """(name, Glue type, comment) for the CDK Glue tables."""
    return [(c.name, glue_type(c.type), c.doc[:255]) for c in TABLES[table].cols]
