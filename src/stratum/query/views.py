"""The public SQL schema: views over a snapshot's stored Parquet files.

A *snapshot* is, per lot, the set of member jobs (files) published up to a job. The views give
lot-level meaning to the per-file rows:

- every execution is kept; ``is_retest`` marks all but the first execution of a die and ``is_final``
  the one execution the retest policy keeps (``last``: the newest by file START_T then publish order
  then position in the file; ``highest_bin``: the highest hard bin);
- a die is (sublot, test code, wafer, X, Y) for parts on a wafer and (sublot, test code, PART_ID) for
  final test, so files of different test stages never supersede each other (stdf-semantics §9);
- bin names and pass/fail come from HBR/SBR; counts from PRRs.

``PUBLIC`` documents every view and column; ``docs/schema.md`` is generated from it and a test keeps
the DuckDB views, this table and the document in step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from stratum.lake.schema import TABLES, duckdb_type


@dataclass(frozen=True)
class View:
    name: str
    doc: str
    cols: tuple[tuple[str, str], ...]  # (column, description)


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
yield | good_count / part_count
first_pass_count | Dies/parts at their first execution
first_pass_good | Dies/parts passing at their first execution
first_pass_yield | first_pass_good / first_pass_count
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
yield | good_count / part_count
first_pass_count | Dies at their first execution
first_pass_good | Dies passing at their first execution
first_pass_yield | first_pass_good / first_pass_count
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
percent | part_count as a percentage of the lot's dies/parts after retests
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
    )
}

RAW_PASSTHROUGH = ("wafer_runs", "test_summaries", "part_counts", "bin_records", "sites", "pins", "texts", "records")


@dataclass
class Member:
    lot_id: str
    job_id: str
    file_num: int
    order: int  # file order within the lot (retest order)
    snapshot_job_id: str
    tables: tuple[str, ...]


def _lit(s: str | None) -> str:
    if s is None:
        return "NULL"
    if "\x00" in s:  # SQL string literals cannot carry NUL; ingest strips it from identifiers
        raise ValueError("identifier contains a NUL character")
    return "'" + s.replace("'", "''") + "'"


def empty_relation(table: str) -> str:
    cols = ", ".join(f"CAST(NULL AS {duckdb_type(c.type)}) AS {c.name}" for c in TABLES[table].cols)
    return f"(SELECT {cols} WHERE false)"


def scan(table: str, uris: list[str]) -> str:
    if not uris:
        return empty_relation(table)
    files = ", ".join(_lit(u) for u in uris)
    return f"read_parquet([{files}])"


@dataclass(frozen=True)
class Dialect:
    """The few spellings that differ between DuckDB and Athena (Trino)."""

    name: str
    arg_max: str  # arg_max / max_by
    any_value: str  # any_value / arbitrary

    def argmax(self, x: str, y: str) -> str:
        return f"{self.arg_max}({x}, {y})"


DUCKDB = Dialect("duckdb", "arg_max", "any_value")
TRINO = Dialect("trino", "max_by", "arbitrary")


def view_bodies(
    members: list[Member],
    raw_scan: Callable[[str, list[Member]], str],
    *,
    retest_policy: str | Mapping[str, str] = "last",
    wafer_ids: list[str] | None = None,
    dialect: Dialect = DUCKDB,
) -> list[tuple[str, str]]:
    """(name, SELECT) for every view of a snapshot, in dependency order.

    ``raw_scan(table, members)`` returns the relation of a stored table's rows for those members (DuckDB:
    ``read_parquet`` of their files; Athena: the Glue table filtered on its partitions). The SQL stays in
    the subset both engines read alike: explicit casts and GROUP BY lists, inline windows, DOUBLE division.
    ``retest_policy`` is one policy for every lot, or a policy per lot id (a lot's snapshot has one).
    """
    d = dialect
    out: list[tuple[str, str]] = []

    def policy(lot_id: str) -> str:
        return retest_policy if isinstance(retest_policy, str) else retest_policy.get(lot_id, "last")

    policies = {policy(m.lot_id) for m in members} or {policy("")}

    def add(name: str, body: str) -> None:
        out.append((name, body))

    if members:
        rows = ", ".join(
            f"({_lit(m.lot_id)}, {_lit(m.job_id)}, CAST({int(m.file_num)} AS BIGINT), {int(m.order)}, "
            f"{_lit(m.snapshot_job_id)}, {'true' if policy(m.lot_id) == 'highest_bin' else 'false'})"
            for m in members
        )
        add(
            "_members",
            f"SELECT * FROM (VALUES {rows}) AS m(lot_id, job_id, file_num, file_order, snapshot_job_id, highest_bin)",
        )
    else:
        add(
            "_members",
            "SELECT CAST(NULL AS VARCHAR) AS lot_id, CAST(NULL AS VARCHAR) AS job_id, "
            "CAST(NULL AS BIGINT) AS file_num, CAST(NULL AS INTEGER) AS file_order, "
            "CAST(NULL AS VARCHAR) AS snapshot_job_id, CAST(NULL AS BOOLEAN) AS highest_bin WHERE false",
        )
    for t in TABLES:
        add(f"_raw_{t}", f"SELECT * FROM {raw_scan(t, [m for m in members if t in m.tables])}")

    wafer_filter = ""
    if wafer_ids is not None:
        wafer_filter = "WHERE x.wafer_id IN (" + (", ".join(_lit(w) for w in wafer_ids) or "NULL") + ")"
    die = "p.lot_id, coalesce(p.sublot_id, ''), coalesce(p.test_code, ''), p.die_key"
    first_w = f"(PARTITION BY {die} ORDER BY p.file_order, p.part_seq)"
    if policies == {"highest_bin"}:
        final_w = f"(PARTITION BY {die} ORDER BY p.hard_bin DESC NULLS LAST, p.file_order DESC, p.part_seq DESC)"
    elif policies == {"last"}:
        final_w = f"(PARTITION BY {die} ORDER BY p.file_order DESC, p.part_seq DESC)"
    else:  # lots with different policies: a die never spans lots, so each partition has one policy
        final_w = (
            f"(PARTITION BY {die} ORDER BY CASE WHEN p.highest_bin THEN p.hard_bin END DESC NULLS LAST, "
            "p.file_order DESC, p.part_seq DESC)"
        )
    lf_cols = ", ".join(f"f.{c}" for c in TABLES["lot_files"].names)
    add("lot_files", f"SELECT {lf_cols}, m.file_order FROM _raw_lot_files f JOIN _members m ON m.file_num = f.file_num")
    rank = "CAST(head_num = 255 AS INTEGER) * 2 + CAST({} IS NOT NULL AS INTEGER)"
    add(
        "_bin_names",
        f"""
        SELECT lot_id, job_id, file_num, bin_type, bin_num,
               {d.argmax("bin_name", rank.format("bin_name"))} AS bin_name,
               {d.argmax("pass_fail", rank.format("pass_fail"))} AS pass_fail
        FROM _raw_bin_records GROUP BY lot_id, job_id, file_num, bin_type, bin_num""",
    )
    parts_cols = ", ".join(f"p.{c}" for c in TABLES["parts"].names)
    add(
        "_parts_x",
        f"""
        SELECT * FROM (
          SELECT {parts_cols}, w.wafer_id, f.sublot_id, f.test_code, m.file_order, m.snapshot_job_id, m.highest_bin,
                 CASE WHEN p.wafer_seq IS NOT NULL AND p.x IS NOT NULL AND p.y IS NOT NULL
                        THEN 'W' || coalesce(w.wafer_id, '') || '|' || CAST(p.x AS VARCHAR)
                             || '|' || CAST(p.y AS VARCHAR)
                      WHEN p.part_id IS NOT NULL THEN 'P' || p.part_id
                      ELSE 'J' || p.job_id || '|' || CAST(p.part_seq AS VARCHAR) END AS die_key,
                 coalesce(p.passed, hb.pass_fail = 'P') AS passed_any
          FROM _raw_parts p
          JOIN _members m ON m.file_num = p.file_num
          LEFT JOIN _raw_wafer_runs w ON w.file_num = p.file_num AND w.wafer_seq = p.wafer_seq
          LEFT JOIN _raw_lot_files f ON f.file_num = p.file_num
          LEFT JOIN _bin_names hb ON hb.file_num = p.file_num AND hb.bin_type = 'H' AND hb.bin_num = p.hard_bin
        ) x {wafer_filter}""",
    )
    add(
        "parts",
        f"""
        SELECT p.lot_id, p.wafer_id, p.head_num, p.site_num, p.part_id, p.x, p.y, p.hard_bin, p.soft_bin,
               p.passed_any AS passed, p.num_test AS test_count, p.test_time_ms,
               row_number() OVER {first_w} > 1 AS is_retest,
               row_number() OVER {final_w} = 1 AS is_final,
               p.job_id, p.part_seq, row_number() OVER {first_w} - 1 AS retest_ordinal, p.abort, p.part_txt,
               p.sublot_id, p.test_code, p.rec_seq, p.file_num, p.wafer_seq IS NOT NULL AS on_wafer
        FROM _parts_x p""",
    )
    add("_tests_x", "SELECT t.*, m.file_order FROM _raw_tests t JOIN _members m ON m.file_num = t.file_num")
    latest = {
        c: d.argmax(c, "file_order")
        for c in ("units", "lo_limit", "hi_limit", "job_id", "lo_spec", "hi_spec", "res_scal", "llm_scal", "hlm_scal")
    }
    add(
        "tests",
        f"""
        SELECT lot_id, test_num, test_name, test_type, {latest["units"]} AS units, {latest["lo_limit"]} AS lo_limit,
               {latest["hi_limit"]} AS hi_limit, {latest["job_id"]} AS job_id, {latest["lo_spec"]} AS lo_spec,
               {latest["hi_spec"]} AS hi_spec, {latest["res_scal"]} AS res_scal, {latest["llm_scal"]} AS llm_scal,
               {latest["hlm_scal"]} AS hlm_scal, bool_or(scale_mismatch) AS scale_mismatch,
               sum(exec_count) AS exec_count
        FROM _tests_x GROUP BY lot_id, test_num, test_name, test_type""",
    )
    add(
        "results",
        """
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.result, r.valid, r.passed, p.is_final, r.job_id, p.is_retest, r.part_seq, t.units,
               r.lo_limit, r.hi_limit, r.test_flg, r.parm_flg, p.hard_bin, p.soft_bin, p.on_wafer
        FROM _raw_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx""",
    )
    add(
        "mpr_results",
        f"""
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.pin_seq, r.pmr_index, coalesce(pm.log_nam, pm.chan_nam) AS pin_name, r.result, r.rtn_stat,
               r.valid, r.passed, p.is_final, r.job_id, r.lo_limit, r.hi_limit, t.units, p.is_retest
        FROM _raw_mpr_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx
        LEFT JOIN (SELECT file_num, pmr_indx, {d.any_value}(log_nam) AS log_nam, {d.any_value}(chan_nam) AS chan_nam
                   FROM _raw_pins GROUP BY file_num, pmr_indx) pm
               ON pm.file_num = r.file_num AND pm.pmr_indx = r.pmr_index""",
    )
    add(
        "ftr_results",
        """
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.passed, p.is_final, r.job_id, r.num_fail, r.cycl_cnt, r.vect_nam, r.rslt_txt, r.test_flg, p.is_retest
        FROM _raw_ftr_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx""",
    )
    add("_snap", "SELECT DISTINCT lot_id, snapshot_job_id FROM _members")
    add(
        "bins",
        f"""
        WITH lot_total AS (SELECT lot_id, count(*) FILTER (WHERE is_final) AS n FROM parts GROUP BY lot_id),
        counted AS (
            SELECT lot_id, 'H' AS bin_type, hard_bin AS bin_num, count(*) FILTER (WHERE is_final) AS part_count,
                   count(*) FILTER (WHERE NOT is_retest) AS first_pass_count, bool_and(passed) AS all_pass,
                   bool_or(passed) AS any_pass
            FROM parts WHERE hard_bin IS NOT NULL GROUP BY lot_id, hard_bin
            UNION ALL
            SELECT lot_id, 'S', soft_bin, count(*) FILTER (WHERE is_final), count(*) FILTER (WHERE NOT is_retest),
                   bool_and(passed), bool_or(passed)
            FROM parts WHERE soft_bin IS NOT NULL GROUP BY lot_id, soft_bin),
        named AS (
            SELECT b.lot_id, b.bin_type, b.bin_num, {d.argmax("b.bin_name", "m.file_order")} AS bin_name,
                   {d.argmax("b.pass_fail", "m.file_order")} AS pass_fail
            FROM _bin_names b JOIN _members m ON m.file_num = b.file_num GROUP BY b.lot_id, b.bin_type, b.bin_num),
        summary AS (
            SELECT r.lot_id, r.bin_type, r.bin_num,
                   CASE WHEN bool_or(r.head_num = 255) THEN sum(r.bin_count) FILTER (WHERE r.head_num = 255)
                        ELSE sum(r.bin_count) END AS summary_count
            FROM _raw_bin_records r JOIN _members m ON m.file_num = r.file_num GROUP BY r.lot_id, r.bin_type, r.bin_num)
        SELECT c.lot_id, c.bin_type, c.bin_num, n.bin_name,
               coalesce(n.pass_fail, CASE WHEN c.all_pass THEN 'P' WHEN NOT c.any_pass THEN 'F' END) AS pass_fail,
               c.part_count, s.snapshot_job_id AS job_id,
               round(100.0 * CAST(c.part_count AS DOUBLE) / nullif(t.n, 0), 4) AS percent, c.first_pass_count,
               sm.summary_count
        FROM counted c
        JOIN _snap s ON s.lot_id = c.lot_id
        LEFT JOIN lot_total t ON t.lot_id = c.lot_id
        LEFT JOIN named n ON n.lot_id = c.lot_id AND n.bin_type = c.bin_type AND n.bin_num = c.bin_num
        LEFT JOIN summary sm ON sm.lot_id = c.lot_id AND sm.bin_type = c.bin_type AND sm.bin_num = c.bin_num""",
    )
    add(
        "wafers",
        f"""
        WITH w AS (
            SELECT x.lot_id, x.wafer_id, min(x.start_time) AS start_time, max(x.finish_time) AS finish_time,
                   {d.argmax("x.job_id", "x.file_order")} AS job_id, count(DISTINCT x.job_id) AS file_count,
                   sum(x.part_cnt) AS wrr_part_count, sum(x.good_cnt) AS wrr_good_count
            FROM (SELECT r.*, m.file_order FROM _raw_wafer_runs r JOIN _members m ON m.file_num = r.file_num) x
            {wafer_filter}
            GROUP BY x.lot_id, x.wafer_id),
        p AS (
            SELECT lot_id, wafer_id, count(*) FILTER (WHERE is_final) AS part_count,
                   count(*) FILTER (WHERE is_final AND passed) AS good_count,
                   count(*) FILTER (WHERE NOT is_retest) AS first_pass_count,
                   count(*) FILTER (WHERE NOT is_retest AND passed) AS first_pass_good,
                   count(*) FILTER (WHERE is_retest) AS retest_count
            FROM parts WHERE on_wafer GROUP BY lot_id, wafer_id)
        SELECT w.lot_id, w.wafer_id, w.start_time, w.finish_time, coalesce(p.part_count, 0) AS part_count,
               coalesce(p.good_count, 0) AS good_count, w.job_id,
               CAST(p.good_count AS DOUBLE) / nullif(p.part_count, 0) AS yield,
               coalesce(p.first_pass_count, 0) AS first_pass_count, coalesce(p.first_pass_good, 0) AS first_pass_good,
               CAST(p.first_pass_good AS DOUBLE) / nullif(p.first_pass_count, 0) AS first_pass_yield,
               coalesce(p.retest_count, 0) AS retest_count, w.file_count, w.wrr_part_count, w.wrr_good_count
        FROM w LEFT JOIN p ON p.lot_id = w.lot_id AND p.wafer_id IS NOT DISTINCT FROM w.wafer_id""",
    )
    add(
        "lots",
        f"""
        WITH f AS (
            SELECT lot_id, {d.argmax("part_type", "file_order")} AS part_type,
                   {d.argmax("program", "file_order")} AS program,
                   {d.argmax("tester_type", "file_order")} AS tester_type,
                   {d.argmax("node_name", "file_order")} AS node_name,
                   min(start_time) AS start_time, max(finish_time) AS finish_time, count(*) AS file_count
            FROM lot_files GROUP BY lot_id),
        p AS (
            SELECT lot_id, count(*) FILTER (WHERE is_final) AS part_count,
                   count(*) FILTER (WHERE is_final AND passed) AS good_count,
                   count(*) FILTER (WHERE NOT is_retest) AS first_pass_count,
                   count(*) FILTER (WHERE NOT is_retest AND passed) AS first_pass_good,
                   count(*) FILTER (WHERE is_retest) AS retest_count,
                   count(DISTINCT wafer_id)
                     + max(CASE WHEN on_wafer AND wafer_id IS NULL THEN 1 ELSE 0 END) AS wafer_count
            FROM parts GROUP BY lot_id)
        SELECT s.lot_id, f.part_type, f.program, f.tester_type, f.node_name, f.start_time, f.finish_time,
               s.snapshot_job_id AS job_id, f.file_count, coalesce(p.part_count, 0) AS part_count,
               coalesce(p.good_count, 0) AS good_count, CAST(p.good_count AS DOUBLE) / nullif(p.part_count, 0) AS yield,
               coalesce(p.first_pass_count, 0) AS first_pass_count, coalesce(p.first_pass_good, 0) AS first_pass_good,
               CAST(p.first_pass_good AS DOUBLE) / nullif(p.first_pass_count, 0) AS first_pass_yield,
               coalesce(p.retest_count, 0) AS retest_count, coalesce(p.wafer_count, 0) AS wafer_count
        FROM _snap s LEFT JOIN f ON f.lot_id = s.lot_id LEFT JOIN p ON p.lot_id = s.lot_id""",
    )
    for t in RAW_PASSTHROUGH:
        cols = ", ".join(f"r.{c}" for c in TABLES[t].names)
        add(t, f"SELECT {cols} FROM _raw_{t} r JOIN _members m ON m.file_num = r.file_num")
    return out


MATERIALIZED = ("lot_files", "_bin_names", "parts", "tests")  # immutable snapshot: computed once per session


def view_sql(
    members: list[Member],
    uri_of: Callable[[str, Member], str],
    *,
    retest_policy: str | Mapping[str, str] = "last",
    wafer_ids: list[str] | None = None,
) -> list[str]:
    """DuckDB statements for a snapshot (members of one or more lots): TEMP VIEWs, except ``parts`` (the
    retest window every lot-level query needs), which is materialised as a TEMP TABLE."""

    def raw_scan(table: str, ms: list[Member]) -> str:
        return scan(table, [uri_of(table, m) for m in ms])

    return [
        f"CREATE TEMP {'TABLE' if name in MATERIALIZED else 'VIEW'} {name} AS {body}"
        for name, body in view_bodies(members, raw_scan, retest_policy=retest_policy, wafer_ids=wafer_ids)
    ]
