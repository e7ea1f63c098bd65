"""The public SQL schema: views over a snapshot's stored Parquet files.

A *snapshot* is, per lot, the set of member jobs (files) published up to a job. The views give
lot-level meaning to the per-file rows:

- every execution is kept; ``is_retest`` marks all but the first execution of a die and ``is_final``
  the one execution the retest policy keeps (``last``: the newest by file START_T then publish order
  then position in the file; ``highest_bin``: the highest hard bin); ``stratum.query.final_dies`` applies
  the same rule in numpy for the on-publish classification (tests compare the two): change both together;
- a die is (sublot, test code, wafer, X, Y) for parts on a wafer and (sublot, test code, PART_ID) for
  final test, so files of different test stages never supersede each other (stdf-semantics §9);
- bin names and pass/fail come from HBR/SBR; counts from PRRs.

This module holds the view bodies, engine-neutral (DuckDB and Athena/Trino spellings via :class:`Dialect`).
``stratum.query.public_schema`` documents every view and column; ``stratum.query.duckdb_views`` turns the
bodies into DuckDB statements. Golden files (``tests/golden/``) show any change to the generated SQL as a diff.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stratum.lake.schema import LATE_TABLES, TABLES, duckdb_type

if TYPE_CHECKING:
    from stratum.models import SnapshotMember

RAW_PASSTHROUGH = ("wafer_runs", "test_summaries", "part_counts", "bin_records", "sites", "pins", "texts", "records")


@dataclass
class Member:
    lot_id: str
    job_id: str
    file_num: int
    order: int  # file order within the lot (retest order)
    snapshot_job_id: str
    tables: tuple[str, ...]


def ordered_members(lot_id: str, snapshot_job_id: str, members: Sequence[SnapshotMember]) -> list[Member]:
    """A lot snapshot's members in retest order (file START_T, then publish order): ``Member.order``."""
    ms = sorted(members, key=lambda m: (m.start_time or 0, m.publish_seq))
    return [Member(lot_id, m.job_id, m.file_num, i, snapshot_job_id, tuple(m.tables)) for i, m in enumerate(ms)]


def sql_literal(s: str | None) -> str:
    """A SQL string literal (or NULL); refuses NUL, which no SQL string can carry."""
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
    files = ", ".join(sql_literal(u) for u in uris)
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
    with_metadata: bool = False,
) -> list[tuple[str, str]]:
    """(name, SELECT) for every view of a snapshot, in dependency order.

    ``raw_scan(table, members)`` returns the relation of a stored table's rows for those members (DuckDB:
    ``read_parquet`` of their files; Athena: the Glue table filtered on its partitions). The SQL stays in
    the subset both engines read alike: explicit casts and GROUP BY lists, inline windows, DOUBLE division.
    ``with_metadata``: the relations of ``public_schema.METADATA_RELATIONS`` exist (DuckDB sessions); without
    them (Athena) ``wafer_pattern_history`` is a view over the lake table ``wafer_patterns_final``.
    """
    d = dialect
    out: list[tuple[str, str]] = []

    def policy(lot_id: str) -> str:  # one policy for every lot, or one per lot (a lot's snapshot has one)
        return retest_policy if isinstance(retest_policy, str) else retest_policy.get(lot_id, "last")

    policies = {policy(m.lot_id) for m in members} or {policy("")}

    def add(name: str, body: str) -> None:
        out.append((name, body))

    if members:
        rows = ", ".join(
            f"({sql_literal(m.lot_id)}, {sql_literal(m.job_id)}, CAST({int(m.file_num)} AS BIGINT), {int(m.order)}, "
            f"{sql_literal(m.snapshot_job_id)}, {'true' if policy(m.lot_id) == 'highest_bin' else 'false'})"
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
        if t not in LATE_TABLES:
            add(f"_raw_{t}", f"SELECT * FROM {raw_scan(t, [m for m in members if t in m.tables])}")

    wafer_filter = ""
    if wafer_ids is not None:
        wafer_filter = "WHERE x.wafer_id IN (" + (", ".join(sql_literal(w) for w in wafer_ids) or "NULL") + ")"
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
    # ingest rows (per file, the lake): a wafer's patterns come from the file of the snapshot that tested
    # most of it (a retest file holds only the retested dies), the newest such file on a tie
    pattern_cols = (
        "lot_id, wafer_id, job_id, class_id, family, location, severity, confidence, classifier_version, "
        "refinement, rank, die_count, summary"
    )
    per_file = f"""
        SELECT {pattern_cols}
        FROM (SELECT r.*, m.file_order,
                     first_value(r.file_num) OVER (PARTITION BY r.lot_id, r.wafer_id
                                                   ORDER BY r.wafer_dies DESC, m.file_order DESC) AS chosen
              FROM _raw_wafer_patterns r JOIN _members m ON m.file_num = r.file_num) x
        WHERE x.file_num = x.chosen"""
    # stored classifications of the final view (on publish and by the classify API): DuckDB reads them from the
    # metadata store (wafer_pattern_history), Athena from the lake objects written with them (wafer_patterns_final,
    # a member job's partition; written after publish, so every member may have some)
    if not with_metadata:
        hist_cols = pattern_cols + ", publish_seq, classified_at"
        add("_raw_wafer_patterns_final", f"SELECT * FROM {raw_scan('wafer_patterns_final', members)}")
        add(
            "wafer_pattern_history",
            f"SELECT {hist_cols} FROM _raw_wafer_patterns_final r "
            "WHERE EXISTS (SELECT 1 FROM _members m WHERE m.lot_id = r.lot_id AND m.job_id = r.job_id)",
        )
    # per wafer, the newest member job that classified it (publish order), then that job's most recently
    # classified version; the per-file rows for the other wafers
    add(
        "wafer_patterns",
        f"""
        WITH h AS (SELECT h.* FROM wafer_pattern_history h
                   WHERE EXISTS (SELECT 1 FROM _members m WHERE m.lot_id = h.lot_id AND m.job_id = h.job_id)),
        pick AS (SELECT lot_id, wafer_id, job_id, classifier_version,
                        row_number() OVER (PARTITION BY lot_id, wafer_id
                                           ORDER BY publish_seq DESC, classified_at DESC, classifier_version DESC) AS k
                 FROM (SELECT DISTINCT lot_id, wafer_id, job_id, classifier_version, publish_seq, classified_at
                       FROM h) u)
        SELECT {", ".join("h." + c for c in pattern_cols.split(", "))}
        FROM h JOIN pick p ON p.lot_id = h.lot_id AND p.wafer_id = h.wafer_id AND p.job_id = h.job_id
                          AND p.classifier_version = h.classifier_version AND p.k = 1
        UNION ALL
        SELECT {pattern_cols} FROM ({per_file}) f
        WHERE NOT EXISTS (SELECT 1 FROM h WHERE h.lot_id = f.lot_id AND h.wafer_id = f.wafer_id)""",
    )
    return out
