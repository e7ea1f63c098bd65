"""The public SQL schema as documentation: every view and column with its meaning (``PUBLIC``).

``docs/schema.md`` is generated from this table (``python -m stratum.query.schema_doc``) and a test keeps the
DuckDB views (``stratum.query.views``), this table and the document in step.
"""

from __future__ import annotations

from dataclasses import dataclass

from stratum.lake.schema import TABLES


@dataclass(frozen=True)
class View:
    name: str
    doc: str
    cols: tuple[tuple[str, str], ...]  # (column, description)


# the columns wafer_patterns and wafer_pattern_history share ({job}: what job_id means in each)
_PATTERN_COLUMNS = """
lot_id | Lot id
wafer_id | Wafer id
job_id | {job}
class_id | Taxonomy class, e.g. edge_loc/edge/high/ne
family | Pattern family ('none' when the wafer shows no pattern)
location | global, center, mid or edge
severity | low, med or high
confidence | Calibrated confidence of the family (null for 'none')
classifier_version | Classifier rules and calibration version
refinement | Octant, orientation, side or direction where the family has one
rank | 1 = the most confident pattern of the wafer
die_count | Dies in the detected region
summary | One-line explanation
"""


def _v(name: str, doc: str, spec: str) -> View:
    cols = []
    for line in spec.strip().splitlines():
        n, _, d = line.strip().partition("|")
        cols.append((n.strip(), d.strip()))
    return View(name, doc, tuple(cols))


def _stored(name: str, doc: str, *extra: tuple[str, str]) -> View:
    """A view exposing a stored table's columns with their documented meaning, plus ``extra`` columns."""
    return View(name, doc, tuple((c.name, c.doc.strip()) for c in TABLES[name].cols) + extra)


PUBLIC: dict[str, View] = {
    v.name: v
    for v in (
        _v(
            "lots",
            "One row per lot (its snapshot: the active one, or the pinned snapshot_job_id).",
            """
lot_id | Lot id
part_type | Product (MIR.PART_TYP) of the newest file
program | Test program (MIR.JOB_NAM) of the newest file
tester_type | Tester type (MIR.TSTR_TYP) of the newest file
node_name | Tester host (MIR.NODE_NAM) of the newest file
start_time | Earliest MIR.START_T of the lot's files
finish_time | Latest MRR.FINISH_T of the lot's files
job_id | Snapshot job: the job whose publish produced this view of the lot
file_count | Files (jobs) in the snapshot
part_count | Dies/parts after retests (final view)
good_count | Passing dies/parts after retests
yield | good_count / part_count, a fraction 0-1
first_pass_count | Dies/parts at their first execution
first_pass_good | Dies/parts passing at their first execution
first_pass_yield | first_pass_good / first_pass_count, a fraction 0-1
retest_count | Executions that are retests
wafer_count | Distinct wafers
""",
        ),
        _stored(
            "lot_files",
            "One row per file (job) in the snapshot, with its MIR/MRR/WCR fields.",
            ("file_order", "Order of the file in the lot (MIR.START_T, then publish order); retests follow this order"),
        ),
        _v(
            "wafers",
            "One row per wafer of a lot (all its executions merged; counts from PRRs).",
            """
lot_id | Lot id
wafer_id | Wafer id (WRR.WAFER_ID, else WIR.WAFER_ID)
start_time | First WIR.START_T of the wafer
finish_time | Last WRR.FINISH_T of the wafer
part_count | Dies after retests
good_count | Passing dies after retests
job_id | Newest job (file) holding the wafer
yield | good_count / part_count, a fraction 0-1
first_pass_count | Dies at their first execution
first_pass_good | Dies passing at their first execution
first_pass_yield | first_pass_good / first_pass_count, a fraction 0-1
retest_count | Die executions that are retests
file_count | Files holding the wafer
wrr_part_count | Sum of WRR.PART_CNT (summary records; cross-check only)
wrr_good_count | Sum of WRR.GOOD_CNT (summary records; cross-check only)
""",
        ),
        _v(
            "parts",
            "One row per PRR: every execution of every die/part, with retest flags.",
            """
lot_id | Lot id
wafer_id | Wafer id (null for final test)
head_num | Test head
site_num | Test site
part_id | PRR.PART_ID
x | Die X (PRR.X_COORD, raw; null when missing)
y | Die Y (PRR.Y_COORD, raw; null when missing)
hard_bin | Hard bin
soft_bin | Soft bin (null when missing)
passed | Pass/fail (PRR PART_FLG, else the hard bin's HBR pass/fail)
test_count | Tests executed (PRR.NUM_TEST)
test_time_ms | Test time in ms
is_retest | Not the first execution of this die/part
is_final | The execution the retest policy keeps
job_id | Job (file) of the execution
part_seq | Part number within its file
retest_ordinal | 0 for the first execution of the die, 1 for the first retest, ...
abort | Abnormal end of testing (PART_FLG bit 2)
part_txt | PRR.PART_TXT
sublot_id | MIR.SBLOT_ID of the file
test_code | MIR.TEST_COD of the file
rec_seq | Record number of the PRR in its file
file_num | Workspace-wide number of the file (integer join key)
on_wafer | Tested on a wafer (between a WIR and its WRR); wafer_id is null when the file leaves WAFER_ID empty
""",
        ),
        _v(
            "tests",
            "One row per test of a lot (key: number, name, type), limits from the newest file.",
            """
lot_id | Lot id
test_num | Test number
test_name | Test name (TEST_TXT)
test_type | 'P' parametric (PTR), 'M' multi-pin (MPR), 'F' functional (FTR)
units | Units (base units; results are stored unscaled)
lo_limit | Default low limit (null: none)
hi_limit | Default high limit (null: none)
job_id | Newest job (file) holding the test
lo_spec | Low specification limit
hi_spec | High specification limit
res_scal | Result display exponent (RES_SCAL)
llm_scal | Low limit display exponent
hlm_scal | High limit display exponent
scale_mismatch | RES_SCAL differs from the limit scales
exec_count | Executions in the snapshot (all files)
""",
        ),
        _v(
            "results",
            "One row per PTR result inside a part (all executions; filter is_final for the final view).",
            """
lot_id | Lot id
wafer_id | Wafer id (null for final test)
head_num | Test head
site_num | Test site
part_id | PRR.PART_ID of the part
x | Die X
y | Die Y
test_num | Test number
test_name | Test name
result | Result in base units
valid | Usable for statistics (flags valid, finite value)
passed | Pass/fail of this result (null if unknown)
is_final | The part's execution is the final one of its die
job_id | Job (file) of the execution
is_retest | The part's execution is a retest
part_seq | Part number within its file
units | Test units
lo_limit | Low limit in effect for this result
hi_limit | High limit in effect for this result
test_flg | PTR.TEST_FLG
parm_flg | PTR.PARM_FLG
hard_bin | Hard bin of the part
soft_bin | Soft bin of the part
on_wafer | The part was tested on a wafer (wafer_id may still be null: an empty WAFER_ID)
""",
        ),
        _v(
            "mpr_results",
            "One row per pin result of an MPR inside a part.",
            """
lot_id | Lot id
wafer_id | Wafer id
head_num | Test head
site_num | Test site
part_id | PRR.PART_ID
x | Die X
y | Die Y
test_num | Test number
test_name | Test name
pin_seq | Position of the pin in the record
pmr_index | PMR index of the pin
pin_name | Logical pin name (PMR.LOG_NAM, else CHAN_NAM)
result | Result in base units
rtn_stat | Return state nibble
valid | Usable for statistics
passed | Pass/fail (null if unknown)
is_final | The part's execution is the final one of its die
job_id | Job (file)
lo_limit | Low limit in effect
hi_limit | High limit in effect
units | Test units
is_retest | The part's execution is a retest
""",
        ),
        _v(
            "ftr_results",
            "One row per functional test (FTR) inside a part.",
            """
lot_id | Lot id
wafer_id | Wafer id
head_num | Test head
site_num | Test site
part_id | PRR.PART_ID
x | Die X
y | Die Y
test_num | Test number
test_name | Test name
passed | Pass/fail (null when no indication)
is_final | The part's execution is the final one of its die
job_id | Job (file)
num_fail | NUM_FAIL
cycl_cnt | CYCL_CNT
vect_nam | VECT_NAM
rslt_txt | RSLT_TXT
test_flg | FTR.TEST_FLG
is_retest | The part's execution is a retest
""",
        ),
        _v(
            "bins",
            "Bin summary per lot: counts from PRRs (final and first pass), names and pass/fail from HBR/SBR.",
            """
lot_id | Lot id
bin_type | 'H' hard bin or 'S' soft bin
bin_num | Bin number
bin_name | Bin name (HBR/SBR)
pass_fail | 'P', 'F' or null (HBR/SBR; else derived from the parts)
part_count | Dies/parts in the bin after retests
job_id | Snapshot job
percent | part_count as a percentage 0-100 of the lot's dies/parts after retests
first_pass_count | Dies/parts in the bin at their first execution
summary_count | Count from the HBR/SBR summary records (HEAD_NUM 255, else the per-site sum); cross-check only
""",
        ),
        _stored("wafer_runs", "One row per WIR/WRR (a wafer tested in one file)."),
        _stored("test_summaries", "TSR records of the snapshot's files."),
        _stored("part_counts", "PCR records of the snapshot's files."),
        _stored("bin_records", "HBR/SBR records of the snapshot's files, as written."),
        _stored("sites", "SDR records: equipment per site group."),
        _stored("pins", "PMR records: pin map."),
        _stored("texts", "DTR/GDR records."),
        _stored("records", "Every other record, decoded, as JSON."),
        _v(
            "wafer_patterns",
            "Spatial fail patterns per wafer (GET /v1/patterns describes each class), one row per detected pattern. "
            "A wafer's rows are the classification of its final die map (the retest policy's view, as GET "
            ".../wafers/{wafer_id}/map draws it) stored on publish or by POST /v1/classify: the newest snapshot "
            "job that classified it, at the most recently classified classifier_version (every version: "
            "wafer_pattern_history). Wafers published before final-view classification show the rows classified "
            "per file at ingest (the file that tested most of the wafer). DuckDB and Athena answer alike (Athena "
            "reads the stored classifications from the lake table wafer_patterns_final).",
            _PATTERN_COLUMNS.format(
                job="Snapshot job whose final die map was classified (per-file rows: the file's ingest job)"
            ),
        ),
        _v(
            "wafer_pattern_history",
            "Every stored classification of the snapshot's wafers: each snapshot job and classifier_version that "
            "classified a wafer's final die map (on publish, POST /v1/classify, POST /v1/batch), one row per "
            "detected pattern (DuckDB: from the metadata store; Athena: from the lake table wafer_patterns_final, "
            "written with each stored classification).",
            _PATTERN_COLUMNS.format(job="Snapshot job whose final die map was classified")
            + """publish_seq | Publish order of job_id within the lot (the newest classified map has the highest)
classified_at | When this (job, classifier_version) was first classified
""",
        ),
        _v(
            "monitor_findings",
            "Findings of the workspace's monitors (newest first; from the metadata store, not the lake; DuckDB only).",
            """
finding_id | Finding id (one per monitor, fired/recovered, snapshot and subject)
monitor_id | Monitor
run_id | Run that recorded it
kind | 'fired' or 'recovered'
rule | Rule kind
rule_version | Version of the monitor's rule when it was evaluated
lot_id | Lot of the subject
wafer_id | Wafer of the subject (null when the subject is not a wafer)
subject | The subject as JSON (lot, wafer, site, test, metric, ...)
params | Rule parameters as JSON
values | The aggregates that triggered it, as JSON
message | Human-readable summary
snapshot_job_ids | JSON list of the snapshot jobs read (to reproduce the numbers)
created_at | When it was recorded
""",
        ),
    )
}

#: relations whose rows come from the metadata store (filled per query by ``QueryEngine.row_sources``)
METADATA_RELATIONS = {
    "monitor_findings": (
        "finding_id VARCHAR, monitor_id VARCHAR, run_id VARCHAR, kind VARCHAR, rule VARCHAR, rule_version INTEGER, "
        'lot_id VARCHAR, wafer_id VARCHAR, subject VARCHAR, params VARCHAR, "values" VARCHAR, message VARCHAR, '
        "snapshot_job_ids VARCHAR, created_at TIMESTAMPTZ"
    ),
    "wafer_pattern_history": (
        "lot_id VARCHAR, wafer_id VARCHAR, job_id VARCHAR, class_id VARCHAR, family VARCHAR, location VARCHAR, "
        "severity VARCHAR, confidence DOUBLE, classifier_version VARCHAR, refinement VARCHAR, rank SMALLINT, "
        "die_count INTEGER, summary VARCHAR, publish_seq BIGINT, classified_at TIMESTAMPTZ"
    ),
}

#: a query naming one of these words reads the relation (``wafer_patterns`` is a view over the history)
METADATA_TRIGGERS = {"monitor_findings": ("monitor_findings",), "wafer_pattern_history": ("wafer_pattern",)}
