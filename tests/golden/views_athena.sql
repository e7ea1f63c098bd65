-- retest_policy=last, no wafer scope
WITH _members AS (SELECT * FROM (VALUES ('LOT-A', 'job_01A', CAST(1 AS BIGINT), 0, 'job_01B', false), ('LOT-A', 'job_01B', CAST(2 AS BIGINT), 1, 'job_01B', false), ('LOT''B', 'job_02A', CAST(3 AS BIGINT), 0, 'job_02A', false)) AS m(lot_id, job_id, file_num, file_order, snapshot_job_id, highest_bin)),
_raw_lot_files AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "file_name", "file_sha256", "file_size", "stdf_bytes", "byte_order", "cpu_type", "records", "partial", "setup_time", "start_time", "finish_time", "station", "mode_code", "retest_code", "protection_code", "burn_time", "command_mode", "part_type", "program", "program_rev", "node_name", "tester_type", "sublot_id", "operator", "exec_type", "exec_ver", "test_code", "test_temp", "user_text", "aux_file", "package_type", "family_id", "date_code", "facility_id", "floor_id", "process_id", "oper_freq", "spec_name", "spec_ver", "flow_id", "setup_id", "design_rev", "engineering_id", "rom_code", "serial_num", "supervisor", "disposition", "mrr_user_desc", "mrr_exc_desc", "wafer_size", "die_height", "die_width", "wafer_units", "wafer_flat", "center_x", "center_y", "pos_x", "pos_y", "parser_version", "retest_policy", "test_key", "ingested_at" FROM "stratum_db"."lot_files" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_wafer_runs AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "wafer_seq", "wafer_id", "head_num", "site_grp", "start_time", "finish_time", "part_cnt", "rtst_cnt", "abrt_cnt", "good_cnt", "func_cnt", "fabwf_id", "frame_id", "mask_id", "usr_desc", "exc_desc", "closed", "wir_rec_seq", "wrr_rec_seq" FROM "stratum_db"."wafer_runs" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_parts AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "wafer_seq", "head_num", "site_num", "part_id", "part_txt", "part_fix", "x", "y", "hard_bin", "soft_bin", "part_flg", "passed", "abort", "supersedes_id", "supersedes_xy", "num_test", "test_time_ms", "pir_rec_seq", "rec_seq", "byte_offset" FROM "stratum_db"."parts" WHERE workspace = 'acme' AND lot IN ('LOT%27B', 'LOT-A') AND job IN ('job_01A', 'job_01B', 'job_02A'))),
_raw_tests AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "test_idx", "test_num", "test_name", "test_type", "units", "lo_limit", "hi_limit", "lo_spec", "hi_spec", "res_scal", "llm_scal", "hlm_scal", "c_resfmt", "c_llmfmt", "c_hlmfmt", "opt_flag", "units_in", "start_in", "incr_in", "rtn_indx", "exec_count", "scale_mismatch", "first_rec_seq" FROM "stratum_db"."tests" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_results AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "test_idx", "test_num", "head_num", "site_num", "result", "valid", "passed", "test_flg", "parm_flg", "lo_limit", "hi_limit", "rec_seq" FROM "stratum_db"."results" WHERE workspace = 'acme' AND lot IN ('LOT-A') AND job IN ('job_01A', 'job_01B'))),
_raw_mpr_results AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "test_idx", "test_num", "head_num", "site_num", "pin_seq", "pmr_index", "result", "rtn_stat", "test_flg", "parm_flg", "lo_limit", "hi_limit", "valid", "passed", "rec_seq" FROM "stratum_db"."mpr_results" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_ftr_results AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "test_idx", "test_num", "head_num", "site_num", "test_flg", "opt_flag", "passed", "cycl_cnt", "rel_vadr", "rept_cnt", "num_fail", "xfail_ad", "yfail_ad", "vect_off", "rtn_indx", "rtn_stat", "pgm_indx", "pgm_stat", "fail_pin", "vect_nam", "time_set", "op_code", "alarm_id", "prog_txt", "rslt_txt", "patg_num", "spin_map", "rec_seq" FROM "stratum_db"."ftr_results" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_bin_records AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "bin_type", "head_num", "site_num", "bin_num", "bin_count", "pass_fail", "bin_name" FROM "stratum_db"."bin_records" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_part_counts AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "head_num", "site_num", "part_cnt", "rtst_cnt", "abrt_cnt", "good_cnt", "func_cnt" FROM "stratum_db"."part_counts" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_test_summaries AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "head_num", "site_num", "test_type", "test_num", "exec_count", "fail_count", "alarm_count", "test_name", "seq_name", "test_label", "opt_flag", "test_time", "test_min", "test_max", "test_sum", "test_sum_squares" FROM "stratum_db"."test_summaries" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_sites AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "head_num", "site_grp", "site_cnt", "site_num", "hand_typ", "hand_id", "card_typ", "card_id", "load_typ", "load_id", "dib_typ", "dib_id", "cabl_typ", "cabl_id", "cont_typ", "cont_id", "lasr_typ", "lasr_id", "extr_typ", "extr_id" FROM "stratum_db"."sites" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_pins AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "pmr_indx", "chan_typ", "chan_nam", "phy_nam", "log_nam", "head_num", "site_num" FROM "stratum_db"."pins" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_texts AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "byte_offset", "rec_type", "text" FROM "stratum_db"."texts" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_records AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "byte_offset", "rec_type", "rec_typ", "rec_sub", "fields" FROM "stratum_db"."records" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_wafer_patterns AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "wafer_seq", "wafer_id", "rank", "class_id", "family", "location", "severity", "refinement", "confidence", "die_count", "summary", "classifier_version", "wafer_dies" FROM "stratum_db"."wafer_patterns" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
lot_files AS (SELECT f.lot_id, f.job_id, f.file_num, f.file_name, f.file_sha256, f.file_size, f.stdf_bytes, f.byte_order, f.cpu_type, f.records, f.partial, f.setup_time, f.start_time, f.finish_time, f.station, f.mode_code, f.retest_code, f.protection_code, f.burn_time, f.command_mode, f.part_type, f.program, f.program_rev, f.node_name, f.tester_type, f.sublot_id, f.operator, f.exec_type, f.exec_ver, f.test_code, f.test_temp, f.user_text, f.aux_file, f.package_type, f.family_id, f.date_code, f.facility_id, f.floor_id, f.process_id, f.oper_freq, f.spec_name, f.spec_ver, f.flow_id, f.setup_id, f.design_rev, f.engineering_id, f.rom_code, f.serial_num, f.supervisor, f.disposition, f.mrr_user_desc, f.mrr_exc_desc, f.wafer_size, f.die_height, f.die_width, f.wafer_units, f.wafer_flat, f.center_x, f.center_y, f.pos_x, f.pos_y, f.parser_version, f.retest_policy, f.test_key, f.ingested_at, m.file_order FROM _raw_lot_files f JOIN _members m ON m.file_num = f.file_num),
_bin_names AS (
        SELECT lot_id, job_id, file_num, bin_type, bin_num,
               max_by(bin_name, CAST(head_num = 255 AS INTEGER) * 2 + CAST(bin_name IS NOT NULL AS INTEGER)) AS bin_name,
               max_by(pass_fail, CAST(head_num = 255 AS INTEGER) * 2 + CAST(pass_fail IS NOT NULL AS INTEGER)) AS pass_fail
        FROM _raw_bin_records GROUP BY lot_id, job_id, file_num, bin_type, bin_num),
_parts_x AS (
        SELECT * FROM (
          SELECT p.lot_id, p.job_id, p.file_num, p.part_seq, p.wafer_seq, p.head_num, p.site_num, p.part_id, p.part_txt, p.part_fix, p.x, p.y, p.hard_bin, p.soft_bin, p.part_flg, p.passed, p.abort, p.supersedes_id, p.supersedes_xy, p.num_test, p.test_time_ms, p.pir_rec_seq, p.rec_seq, p.byte_offset, w.wafer_id, f.sublot_id, f.test_code, m.file_order, m.snapshot_job_id, m.highest_bin,
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
        ) x ),
parts AS (
        SELECT p.lot_id, p.wafer_id, p.head_num, p.site_num, p.part_id, p.x, p.y, p.hard_bin, p.soft_bin,
               p.passed_any AS passed, p.num_test AS test_count, p.test_time_ms,
               row_number() OVER (PARTITION BY p.lot_id, coalesce(p.sublot_id, ''), coalesce(p.test_code, ''), p.die_key ORDER BY p.file_order, p.part_seq) > 1 AS is_retest,
               row_number() OVER (PARTITION BY p.lot_id, coalesce(p.sublot_id, ''), coalesce(p.test_code, ''), p.die_key ORDER BY p.file_order DESC, p.part_seq DESC) = 1 AS is_final,
               p.job_id, p.part_seq, row_number() OVER (PARTITION BY p.lot_id, coalesce(p.sublot_id, ''), coalesce(p.test_code, ''), p.die_key ORDER BY p.file_order, p.part_seq) - 1 AS retest_ordinal, p.abort, p.part_txt,
               p.sublot_id, p.test_code, p.rec_seq, p.file_num, p.wafer_seq IS NOT NULL AS on_wafer
        FROM _parts_x p),
_tests_x AS (SELECT t.*, m.file_order FROM _raw_tests t JOIN _members m ON m.file_num = t.file_num),
tests AS (
        SELECT lot_id, test_num, test_name, test_type, max_by(units, file_order) AS units, max_by(lo_limit, file_order) AS lo_limit,
               max_by(hi_limit, file_order) AS hi_limit, max_by(job_id, file_order) AS job_id, max_by(lo_spec, file_order) AS lo_spec,
               max_by(hi_spec, file_order) AS hi_spec, max_by(res_scal, file_order) AS res_scal, max_by(llm_scal, file_order) AS llm_scal,
               max_by(hlm_scal, file_order) AS hlm_scal, bool_or(scale_mismatch) AS scale_mismatch,
               sum(exec_count) AS exec_count
        FROM _tests_x GROUP BY lot_id, test_num, test_name, test_type),
results AS (
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.result, r.valid, r.passed, p.is_final, r.job_id, p.is_retest, r.part_seq, t.units,
               r.lo_limit, r.hi_limit, r.test_flg, r.parm_flg, p.hard_bin, p.soft_bin, p.on_wafer
        FROM _raw_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx),
mpr_results AS (
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.pin_seq, r.pmr_index, coalesce(pm.log_nam, pm.chan_nam) AS pin_name, r.result, r.rtn_stat,
               r.valid, r.passed, p.is_final, r.job_id, r.lo_limit, r.hi_limit, t.units, p.is_retest
        FROM _raw_mpr_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx
        LEFT JOIN (SELECT file_num, pmr_indx, arbitrary(log_nam) AS log_nam, arbitrary(chan_nam) AS chan_nam
                   FROM _raw_pins GROUP BY file_num, pmr_indx) pm
               ON pm.file_num = r.file_num AND pm.pmr_indx = r.pmr_index),
ftr_results AS (
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.passed, p.is_final, r.job_id, r.num_fail, r.cycl_cnt, r.vect_nam, r.rslt_txt, r.test_flg, p.is_retest
        FROM _raw_ftr_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx),
_snap AS (SELECT DISTINCT lot_id, snapshot_job_id FROM _members),
bins AS (
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
            SELECT b.lot_id, b.bin_type, b.bin_num, max_by(b.bin_name, m.file_order) AS bin_name,
                   max_by(b.pass_fail, m.file_order) AS pass_fail
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
        LEFT JOIN summary sm ON sm.lot_id = c.lot_id AND sm.bin_type = c.bin_type AND sm.bin_num = c.bin_num),
wafers AS (
        WITH w AS (
            SELECT x.lot_id, x.wafer_id, min(x.start_time) AS start_time, max(x.finish_time) AS finish_time,
                   max_by(x.job_id, x.file_order) AS job_id, count(DISTINCT x.job_id) AS file_count,
                   sum(x.part_cnt) AS wrr_part_count, sum(x.good_cnt) AS wrr_good_count
            FROM (SELECT r.*, m.file_order FROM _raw_wafer_runs r JOIN _members m ON m.file_num = r.file_num) x
            
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
        FROM w LEFT JOIN p ON p.lot_id = w.lot_id AND p.wafer_id IS NOT DISTINCT FROM w.wafer_id),
lots AS (
        WITH f AS (
            SELECT lot_id, max_by(part_type, file_order) AS part_type,
                   max_by(program, file_order) AS program,
                   max_by(tester_type, file_order) AS tester_type,
                   max_by(node_name, file_order) AS node_name,
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
        FROM _snap s LEFT JOIN f ON f.lot_id = s.lot_id LEFT JOIN p ON p.lot_id = s.lot_id),
wafer_runs AS (SELECT r.lot_id, r.job_id, r.file_num, r.wafer_seq, r.wafer_id, r.head_num, r.site_grp, r.start_time, r.finish_time, r.part_cnt, r.rtst_cnt, r.abrt_cnt, r.good_cnt, r.func_cnt, r.fabwf_id, r.frame_id, r.mask_id, r.usr_desc, r.exc_desc, r.closed, r.wir_rec_seq, r.wrr_rec_seq FROM _raw_wafer_runs r JOIN _members m ON m.file_num = r.file_num),
test_summaries AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.head_num, r.site_num, r.test_type, r.test_num, r.exec_count, r.fail_count, r.alarm_count, r.test_name, r.seq_name, r.test_label, r.opt_flag, r.test_time, r.test_min, r.test_max, r.test_sum, r.test_sum_squares FROM _raw_test_summaries r JOIN _members m ON m.file_num = r.file_num),
part_counts AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.head_num, r.site_num, r.part_cnt, r.rtst_cnt, r.abrt_cnt, r.good_cnt, r.func_cnt FROM _raw_part_counts r JOIN _members m ON m.file_num = r.file_num),
bin_records AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.bin_type, r.head_num, r.site_num, r.bin_num, r.bin_count, r.pass_fail, r.bin_name FROM _raw_bin_records r JOIN _members m ON m.file_num = r.file_num),
sites AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.head_num, r.site_grp, r.site_cnt, r.site_num, r.hand_typ, r.hand_id, r.card_typ, r.card_id, r.load_typ, r.load_id, r.dib_typ, r.dib_id, r.cabl_typ, r.cabl_id, r.cont_typ, r.cont_id, r.lasr_typ, r.lasr_id, r.extr_typ, r.extr_id FROM _raw_sites r JOIN _members m ON m.file_num = r.file_num),
pins AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.pmr_indx, r.chan_typ, r.chan_nam, r.phy_nam, r.log_nam, r.head_num, r.site_num FROM _raw_pins r JOIN _members m ON m.file_num = r.file_num),
texts AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.byte_offset, r.rec_type, r.text FROM _raw_texts r JOIN _members m ON m.file_num = r.file_num),
records AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.byte_offset, r.rec_type, r.rec_typ, r.rec_sub, r.fields FROM _raw_records r JOIN _members m ON m.file_num = r.file_num),
_raw_wafer_patterns_final AS (SELECT * FROM (SELECT "lot_id", "job_id", "wafer_id", "rank", "class_id", "family", "location", "severity", "refinement", "confidence", "die_count", "summary", "classifier_version", "publish_seq", "classified_at" FROM "stratum_db"."wafer_patterns_final" WHERE workspace = 'acme' AND lot IN ('LOT%27B', 'LOT-A') AND job IN ('job_01A', 'job_01B', 'job_02A'))),
wafer_pattern_history AS (SELECT lot_id, wafer_id, job_id, class_id, family, location, severity, confidence, classifier_version, refinement, rank, die_count, summary, publish_seq, classified_at FROM _raw_wafer_patterns_final r WHERE EXISTS (SELECT 1 FROM _members m WHERE m.lot_id = r.lot_id AND m.job_id = r.job_id)),
wafer_patterns AS (
        WITH h AS (SELECT h.* FROM wafer_pattern_history h
                   WHERE EXISTS (SELECT 1 FROM _members m WHERE m.lot_id = h.lot_id AND m.job_id = h.job_id)),
        pick AS (SELECT lot_id, wafer_id, job_id, classifier_version,
                        row_number() OVER (PARTITION BY lot_id, wafer_id
                                           ORDER BY publish_seq DESC, classified_at DESC, classifier_version DESC) AS k
                 FROM (SELECT DISTINCT lot_id, wafer_id, job_id, classifier_version, publish_seq, classified_at
                       FROM h) u)
        SELECT h.lot_id, h.wafer_id, h.job_id, h.class_id, h.family, h.location, h.severity, h.confidence, h.classifier_version, h.refinement, h.rank, h.die_count, h.summary
        FROM h JOIN pick p ON p.lot_id = h.lot_id AND p.wafer_id = h.wafer_id AND p.job_id = h.job_id
                          AND p.classifier_version = h.classifier_version AND p.k = 1
        UNION ALL
        SELECT lot_id, wafer_id, job_id, class_id, family, location, severity, confidence, classifier_version, refinement, rank, die_count, summary FROM (
        SELECT lot_id, wafer_id, job_id, class_id, family, location, severity, confidence, classifier_version, refinement, rank, die_count, summary
        FROM (SELECT r.*, m.file_order,
                     first_value(r.file_num) OVER (PARTITION BY r.lot_id, r.wafer_id
                                                   ORDER BY r.wafer_dies DESC, m.file_order DESC) AS chosen
              FROM _raw_wafer_patterns r JOIN _members m ON m.file_num = r.file_num) x
        WHERE x.file_num = x.chosen) f
        WHERE NOT EXISTS (SELECT 1 FROM h WHERE h.lot_id = f.lot_id AND h.wafer_id = f.wafer_id))
SELECT 1;

-- retest_policy=highest_bin, wafers W01 and W'02
WITH _members AS (SELECT * FROM (VALUES ('LOT-A', 'job_01A', CAST(1 AS BIGINT), 0, 'job_01B', true), ('LOT-A', 'job_01B', CAST(2 AS BIGINT), 1, 'job_01B', true), ('LOT''B', 'job_02A', CAST(3 AS BIGINT), 0, 'job_02A', true)) AS m(lot_id, job_id, file_num, file_order, snapshot_job_id, highest_bin)),
_raw_lot_files AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "file_name", "file_sha256", "file_size", "stdf_bytes", "byte_order", "cpu_type", "records", "partial", "setup_time", "start_time", "finish_time", "station", "mode_code", "retest_code", "protection_code", "burn_time", "command_mode", "part_type", "program", "program_rev", "node_name", "tester_type", "sublot_id", "operator", "exec_type", "exec_ver", "test_code", "test_temp", "user_text", "aux_file", "package_type", "family_id", "date_code", "facility_id", "floor_id", "process_id", "oper_freq", "spec_name", "spec_ver", "flow_id", "setup_id", "design_rev", "engineering_id", "rom_code", "serial_num", "supervisor", "disposition", "mrr_user_desc", "mrr_exc_desc", "wafer_size", "die_height", "die_width", "wafer_units", "wafer_flat", "center_x", "center_y", "pos_x", "pos_y", "parser_version", "retest_policy", "test_key", "ingested_at" FROM "stratum_db"."lot_files" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_wafer_runs AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "wafer_seq", "wafer_id", "head_num", "site_grp", "start_time", "finish_time", "part_cnt", "rtst_cnt", "abrt_cnt", "good_cnt", "func_cnt", "fabwf_id", "frame_id", "mask_id", "usr_desc", "exc_desc", "closed", "wir_rec_seq", "wrr_rec_seq" FROM "stratum_db"."wafer_runs" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_parts AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "wafer_seq", "head_num", "site_num", "part_id", "part_txt", "part_fix", "x", "y", "hard_bin", "soft_bin", "part_flg", "passed", "abort", "supersedes_id", "supersedes_xy", "num_test", "test_time_ms", "pir_rec_seq", "rec_seq", "byte_offset" FROM "stratum_db"."parts" WHERE workspace = 'acme' AND lot IN ('LOT%27B', 'LOT-A') AND job IN ('job_01A', 'job_01B', 'job_02A'))),
_raw_tests AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "test_idx", "test_num", "test_name", "test_type", "units", "lo_limit", "hi_limit", "lo_spec", "hi_spec", "res_scal", "llm_scal", "hlm_scal", "c_resfmt", "c_llmfmt", "c_hlmfmt", "opt_flag", "units_in", "start_in", "incr_in", "rtn_indx", "exec_count", "scale_mismatch", "first_rec_seq" FROM "stratum_db"."tests" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_results AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "test_idx", "test_num", "head_num", "site_num", "result", "valid", "passed", "test_flg", "parm_flg", "lo_limit", "hi_limit", "rec_seq" FROM "stratum_db"."results" WHERE workspace = 'acme' AND lot IN ('LOT-A') AND job IN ('job_01A', 'job_01B'))),
_raw_mpr_results AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "test_idx", "test_num", "head_num", "site_num", "pin_seq", "pmr_index", "result", "rtn_stat", "test_flg", "parm_flg", "lo_limit", "hi_limit", "valid", "passed", "rec_seq" FROM "stratum_db"."mpr_results" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_ftr_results AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "test_idx", "test_num", "head_num", "site_num", "test_flg", "opt_flag", "passed", "cycl_cnt", "rel_vadr", "rept_cnt", "num_fail", "xfail_ad", "yfail_ad", "vect_off", "rtn_indx", "rtn_stat", "pgm_indx", "pgm_stat", "fail_pin", "vect_nam", "time_set", "op_code", "alarm_id", "prog_txt", "rslt_txt", "patg_num", "spin_map", "rec_seq" FROM "stratum_db"."ftr_results" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_bin_records AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "bin_type", "head_num", "site_num", "bin_num", "bin_count", "pass_fail", "bin_name" FROM "stratum_db"."bin_records" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_part_counts AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "head_num", "site_num", "part_cnt", "rtst_cnt", "abrt_cnt", "good_cnt", "func_cnt" FROM "stratum_db"."part_counts" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_test_summaries AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "head_num", "site_num", "test_type", "test_num", "exec_count", "fail_count", "alarm_count", "test_name", "seq_name", "test_label", "opt_flag", "test_time", "test_min", "test_max", "test_sum", "test_sum_squares" FROM "stratum_db"."test_summaries" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_sites AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "head_num", "site_grp", "site_cnt", "site_num", "hand_typ", "hand_id", "card_typ", "card_id", "load_typ", "load_id", "dib_typ", "dib_id", "cabl_typ", "cabl_id", "cont_typ", "cont_id", "lasr_typ", "lasr_id", "extr_typ", "extr_id" FROM "stratum_db"."sites" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_pins AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "pmr_indx", "chan_typ", "chan_nam", "phy_nam", "log_nam", "head_num", "site_num" FROM "stratum_db"."pins" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_texts AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "byte_offset", "rec_type", "text" FROM "stratum_db"."texts" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_records AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "byte_offset", "rec_type", "rec_typ", "rec_sub", "fields" FROM "stratum_db"."records" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_wafer_patterns AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "wafer_seq", "wafer_id", "rank", "class_id", "family", "location", "severity", "refinement", "confidence", "die_count", "summary", "classifier_version", "wafer_dies" FROM "stratum_db"."wafer_patterns" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
lot_files AS (SELECT f.lot_id, f.job_id, f.file_num, f.file_name, f.file_sha256, f.file_size, f.stdf_bytes, f.byte_order, f.cpu_type, f.records, f.partial, f.setup_time, f.start_time, f.finish_time, f.station, f.mode_code, f.retest_code, f.protection_code, f.burn_time, f.command_mode, f.part_type, f.program, f.program_rev, f.node_name, f.tester_type, f.sublot_id, f.operator, f.exec_type, f.exec_ver, f.test_code, f.test_temp, f.user_text, f.aux_file, f.package_type, f.family_id, f.date_code, f.facility_id, f.floor_id, f.process_id, f.oper_freq, f.spec_name, f.spec_ver, f.flow_id, f.setup_id, f.design_rev, f.engineering_id, f.rom_code, f.serial_num, f.supervisor, f.disposition, f.mrr_user_desc, f.mrr_exc_desc, f.wafer_size, f.die_height, f.die_width, f.wafer_units, f.wafer_flat, f.center_x, f.center_y, f.pos_x, f.pos_y, f.parser_version, f.retest_policy, f.test_key, f.ingested_at, m.file_order FROM _raw_lot_files f JOIN _members m ON m.file_num = f.file_num),
_bin_names AS (
        SELECT lot_id, job_id, file_num, bin_type, bin_num,
               max_by(bin_name, CAST(head_num = 255 AS INTEGER) * 2 + CAST(bin_name IS NOT NULL AS INTEGER)) AS bin_name,
               max_by(pass_fail, CAST(head_num = 255 AS INTEGER) * 2 + CAST(pass_fail IS NOT NULL AS INTEGER)) AS pass_fail
        FROM _raw_bin_records GROUP BY lot_id, job_id, file_num, bin_type, bin_num),
_parts_x AS (
        SELECT * FROM (
          SELECT p.lot_id, p.job_id, p.file_num, p.part_seq, p.wafer_seq, p.head_num, p.site_num, p.part_id, p.part_txt, p.part_fix, p.x, p.y, p.hard_bin, p.soft_bin, p.part_flg, p.passed, p.abort, p.supersedes_id, p.supersedes_xy, p.num_test, p.test_time_ms, p.pir_rec_seq, p.rec_seq, p.byte_offset, w.wafer_id, f.sublot_id, f.test_code, m.file_order, m.snapshot_job_id, m.highest_bin,
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
        ) x WHERE x.wafer_id IN ('W01', 'W''02')),
parts AS (
        SELECT p.lot_id, p.wafer_id, p.head_num, p.site_num, p.part_id, p.x, p.y, p.hard_bin, p.soft_bin,
               p.passed_any AS passed, p.num_test AS test_count, p.test_time_ms,
               row_number() OVER (PARTITION BY p.lot_id, coalesce(p.sublot_id, ''), coalesce(p.test_code, ''), p.die_key ORDER BY p.file_order, p.part_seq) > 1 AS is_retest,
               row_number() OVER (PARTITION BY p.lot_id, coalesce(p.sublot_id, ''), coalesce(p.test_code, ''), p.die_key ORDER BY p.hard_bin DESC NULLS LAST, p.file_order DESC, p.part_seq DESC) = 1 AS is_final,
               p.job_id, p.part_seq, row_number() OVER (PARTITION BY p.lot_id, coalesce(p.sublot_id, ''), coalesce(p.test_code, ''), p.die_key ORDER BY p.file_order, p.part_seq) - 1 AS retest_ordinal, p.abort, p.part_txt,
               p.sublot_id, p.test_code, p.rec_seq, p.file_num, p.wafer_seq IS NOT NULL AS on_wafer
        FROM _parts_x p),
_tests_x AS (SELECT t.*, m.file_order FROM _raw_tests t JOIN _members m ON m.file_num = t.file_num),
tests AS (
        SELECT lot_id, test_num, test_name, test_type, max_by(units, file_order) AS units, max_by(lo_limit, file_order) AS lo_limit,
               max_by(hi_limit, file_order) AS hi_limit, max_by(job_id, file_order) AS job_id, max_by(lo_spec, file_order) AS lo_spec,
               max_by(hi_spec, file_order) AS hi_spec, max_by(res_scal, file_order) AS res_scal, max_by(llm_scal, file_order) AS llm_scal,
               max_by(hlm_scal, file_order) AS hlm_scal, bool_or(scale_mismatch) AS scale_mismatch,
               sum(exec_count) AS exec_count
        FROM _tests_x GROUP BY lot_id, test_num, test_name, test_type),
results AS (
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.result, r.valid, r.passed, p.is_final, r.job_id, p.is_retest, r.part_seq, t.units,
               r.lo_limit, r.hi_limit, r.test_flg, r.parm_flg, p.hard_bin, p.soft_bin, p.on_wafer
        FROM _raw_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx),
mpr_results AS (
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.pin_seq, r.pmr_index, coalesce(pm.log_nam, pm.chan_nam) AS pin_name, r.result, r.rtn_stat,
               r.valid, r.passed, p.is_final, r.job_id, r.lo_limit, r.hi_limit, t.units, p.is_retest
        FROM _raw_mpr_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx
        LEFT JOIN (SELECT file_num, pmr_indx, arbitrary(log_nam) AS log_nam, arbitrary(chan_nam) AS chan_nam
                   FROM _raw_pins GROUP BY file_num, pmr_indx) pm
               ON pm.file_num = r.file_num AND pm.pmr_indx = r.pmr_index),
ftr_results AS (
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.passed, p.is_final, r.job_id, r.num_fail, r.cycl_cnt, r.vect_nam, r.rslt_txt, r.test_flg, p.is_retest
        FROM _raw_ftr_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx),
_snap AS (SELECT DISTINCT lot_id, snapshot_job_id FROM _members),
bins AS (
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
            SELECT b.lot_id, b.bin_type, b.bin_num, max_by(b.bin_name, m.file_order) AS bin_name,
                   max_by(b.pass_fail, m.file_order) AS pass_fail
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
        LEFT JOIN summary sm ON sm.lot_id = c.lot_id AND sm.bin_type = c.bin_type AND sm.bin_num = c.bin_num),
wafers AS (
        WITH w AS (
            SELECT x.lot_id, x.wafer_id, min(x.start_time) AS start_time, max(x.finish_time) AS finish_time,
                   max_by(x.job_id, x.file_order) AS job_id, count(DISTINCT x.job_id) AS file_count,
                   sum(x.part_cnt) AS wrr_part_count, sum(x.good_cnt) AS wrr_good_count
            FROM (SELECT r.*, m.file_order FROM _raw_wafer_runs r JOIN _members m ON m.file_num = r.file_num) x
            WHERE x.wafer_id IN ('W01', 'W''02')
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
        FROM w LEFT JOIN p ON p.lot_id = w.lot_id AND p.wafer_id IS NOT DISTINCT FROM w.wafer_id),
lots AS (
        WITH f AS (
            SELECT lot_id, max_by(part_type, file_order) AS part_type,
                   max_by(program, file_order) AS program,
                   max_by(tester_type, file_order) AS tester_type,
                   max_by(node_name, file_order) AS node_name,
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
        FROM _snap s LEFT JOIN f ON f.lot_id = s.lot_id LEFT JOIN p ON p.lot_id = s.lot_id),
wafer_runs AS (SELECT r.lot_id, r.job_id, r.file_num, r.wafer_seq, r.wafer_id, r.head_num, r.site_grp, r.start_time, r.finish_time, r.part_cnt, r.rtst_cnt, r.abrt_cnt, r.good_cnt, r.func_cnt, r.fabwf_id, r.frame_id, r.mask_id, r.usr_desc, r.exc_desc, r.closed, r.wir_rec_seq, r.wrr_rec_seq FROM _raw_wafer_runs r JOIN _members m ON m.file_num = r.file_num),
test_summaries AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.head_num, r.site_num, r.test_type, r.test_num, r.exec_count, r.fail_count, r.alarm_count, r.test_name, r.seq_name, r.test_label, r.opt_flag, r.test_time, r.test_min, r.test_max, r.test_sum, r.test_sum_squares FROM _raw_test_summaries r JOIN _members m ON m.file_num = r.file_num),
part_counts AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.head_num, r.site_num, r.part_cnt, r.rtst_cnt, r.abrt_cnt, r.good_cnt, r.func_cnt FROM _raw_part_counts r JOIN _members m ON m.file_num = r.file_num),
bin_records AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.bin_type, r.head_num, r.site_num, r.bin_num, r.bin_count, r.pass_fail, r.bin_name FROM _raw_bin_records r JOIN _members m ON m.file_num = r.file_num),
sites AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.head_num, r.site_grp, r.site_cnt, r.site_num, r.hand_typ, r.hand_id, r.card_typ, r.card_id, r.load_typ, r.load_id, r.dib_typ, r.dib_id, r.cabl_typ, r.cabl_id, r.cont_typ, r.cont_id, r.lasr_typ, r.lasr_id, r.extr_typ, r.extr_id FROM _raw_sites r JOIN _members m ON m.file_num = r.file_num),
pins AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.pmr_indx, r.chan_typ, r.chan_nam, r.phy_nam, r.log_nam, r.head_num, r.site_num FROM _raw_pins r JOIN _members m ON m.file_num = r.file_num),
texts AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.byte_offset, r.rec_type, r.text FROM _raw_texts r JOIN _members m ON m.file_num = r.file_num),
records AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.byte_offset, r.rec_type, r.rec_typ, r.rec_sub, r.fields FROM _raw_records r JOIN _members m ON m.file_num = r.file_num),
_raw_wafer_patterns_final AS (SELECT * FROM (SELECT "lot_id", "job_id", "wafer_id", "rank", "class_id", "family", "location", "severity", "refinement", "confidence", "die_count", "summary", "classifier_version", "publish_seq", "classified_at" FROM "stratum_db"."wafer_patterns_final" WHERE workspace = 'acme' AND lot IN ('LOT%27B', 'LOT-A') AND job IN ('job_01A', 'job_01B', 'job_02A'))),
wafer_pattern_history AS (SELECT lot_id, wafer_id, job_id, class_id, family, location, severity, confidence, classifier_version, refinement, rank, die_count, summary, publish_seq, classified_at FROM _raw_wafer_patterns_final r WHERE EXISTS (SELECT 1 FROM _members m WHERE m.lot_id = r.lot_id AND m.job_id = r.job_id)),
wafer_patterns AS (
        WITH h AS (SELECT h.* FROM wafer_pattern_history h
                   WHERE EXISTS (SELECT 1 FROM _members m WHERE m.lot_id = h.lot_id AND m.job_id = h.job_id)),
        pick AS (SELECT lot_id, wafer_id, job_id, classifier_version,
                        row_number() OVER (PARTITION BY lot_id, wafer_id
                                           ORDER BY publish_seq DESC, classified_at DESC, classifier_version DESC) AS k
                 FROM (SELECT DISTINCT lot_id, wafer_id, job_id, classifier_version, publish_seq, classified_at
                       FROM h) u)
        SELECT h.lot_id, h.wafer_id, h.job_id, h.class_id, h.family, h.location, h.severity, h.confidence, h.classifier_version, h.refinement, h.rank, h.die_count, h.summary
        FROM h JOIN pick p ON p.lot_id = h.lot_id AND p.wafer_id = h.wafer_id AND p.job_id = h.job_id
                          AND p.classifier_version = h.classifier_version AND p.k = 1
        UNION ALL
        SELECT lot_id, wafer_id, job_id, class_id, family, location, severity, confidence, classifier_version, refinement, rank, die_count, summary FROM (
        SELECT lot_id, wafer_id, job_id, class_id, family, location, severity, confidence, classifier_version, refinement, rank, die_count, summary
        FROM (SELECT r.*, m.file_order,
                     first_value(r.file_num) OVER (PARTITION BY r.lot_id, r.wafer_id
                                                   ORDER BY r.wafer_dies DESC, m.file_order DESC) AS chosen
              FROM _raw_wafer_patterns r JOIN _members m ON m.file_num = r.file_num) x
        WHERE x.file_num = x.chosen) f
        WHERE NOT EXISTS (SELECT 1 FROM h WHERE h.lot_id = f.lot_id AND h.wafer_id = f.wafer_id))
SELECT 1;

-- retest_policy per lot (LOT-A highest_bin, LOT'B last)
WITH _members AS (SELECT * FROM (VALUES ('LOT-A', 'job_01A', CAST(1 AS BIGINT), 0, 'job_01B', true), ('LOT-A', 'job_01B', CAST(2 AS BIGINT), 1, 'job_01B', true), ('LOT''B', 'job_02A', CAST(3 AS BIGINT), 0, 'job_02A', false)) AS m(lot_id, job_id, file_num, file_order, snapshot_job_id, highest_bin)),
_raw_lot_files AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "file_name", "file_sha256", "file_size", "stdf_bytes", "byte_order", "cpu_type", "records", "partial", "setup_time", "start_time", "finish_time", "station", "mode_code", "retest_code", "protection_code", "burn_time", "command_mode", "part_type", "program", "program_rev", "node_name", "tester_type", "sublot_id", "operator", "exec_type", "exec_ver", "test_code", "test_temp", "user_text", "aux_file", "package_type", "family_id", "date_code", "facility_id", "floor_id", "process_id", "oper_freq", "spec_name", "spec_ver", "flow_id", "setup_id", "design_rev", "engineering_id", "rom_code", "serial_num", "supervisor", "disposition", "mrr_user_desc", "mrr_exc_desc", "wafer_size", "die_height", "die_width", "wafer_units", "wafer_flat", "center_x", "center_y", "pos_x", "pos_y", "parser_version", "retest_policy", "test_key", "ingested_at" FROM "stratum_db"."lot_files" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_wafer_runs AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "wafer_seq", "wafer_id", "head_num", "site_grp", "start_time", "finish_time", "part_cnt", "rtst_cnt", "abrt_cnt", "good_cnt", "func_cnt", "fabwf_id", "frame_id", "mask_id", "usr_desc", "exc_desc", "closed", "wir_rec_seq", "wrr_rec_seq" FROM "stratum_db"."wafer_runs" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_parts AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "wafer_seq", "head_num", "site_num", "part_id", "part_txt", "part_fix", "x", "y", "hard_bin", "soft_bin", "part_flg", "passed", "abort", "supersedes_id", "supersedes_xy", "num_test", "test_time_ms", "pir_rec_seq", "rec_seq", "byte_offset" FROM "stratum_db"."parts" WHERE workspace = 'acme' AND lot IN ('LOT%27B', 'LOT-A') AND job IN ('job_01A', 'job_01B', 'job_02A'))),
_raw_tests AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "test_idx", "test_num", "test_name", "test_type", "units", "lo_limit", "hi_limit", "lo_spec", "hi_spec", "res_scal", "llm_scal", "hlm_scal", "c_resfmt", "c_llmfmt", "c_hlmfmt", "opt_flag", "units_in", "start_in", "incr_in", "rtn_indx", "exec_count", "scale_mismatch", "first_rec_seq" FROM "stratum_db"."tests" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_results AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "test_idx", "test_num", "head_num", "site_num", "result", "valid", "passed", "test_flg", "parm_flg", "lo_limit", "hi_limit", "rec_seq" FROM "stratum_db"."results" WHERE workspace = 'acme' AND lot IN ('LOT-A') AND job IN ('job_01A', 'job_01B'))),
_raw_mpr_results AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "test_idx", "test_num", "head_num", "site_num", "pin_seq", "pmr_index", "result", "rtn_stat", "test_flg", "parm_flg", "lo_limit", "hi_limit", "valid", "passed", "rec_seq" FROM "stratum_db"."mpr_results" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_ftr_results AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "test_idx", "test_num", "head_num", "site_num", "test_flg", "opt_flag", "passed", "cycl_cnt", "rel_vadr", "rept_cnt", "num_fail", "xfail_ad", "yfail_ad", "vect_off", "rtn_indx", "rtn_stat", "pgm_indx", "pgm_stat", "fail_pin", "vect_nam", "time_set", "op_code", "alarm_id", "prog_txt", "rslt_txt", "patg_num", "spin_map", "rec_seq" FROM "stratum_db"."ftr_results" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_bin_records AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "bin_type", "head_num", "site_num", "bin_num", "bin_count", "pass_fail", "bin_name" FROM "stratum_db"."bin_records" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_part_counts AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "head_num", "site_num", "part_cnt", "rtst_cnt", "abrt_cnt", "good_cnt", "func_cnt" FROM "stratum_db"."part_counts" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_test_summaries AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "head_num", "site_num", "test_type", "test_num", "exec_count", "fail_count", "alarm_count", "test_name", "seq_name", "test_label", "opt_flag", "test_time", "test_min", "test_max", "test_sum", "test_sum_squares" FROM "stratum_db"."test_summaries" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_sites AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "head_num", "site_grp", "site_cnt", "site_num", "hand_typ", "hand_id", "card_typ", "card_id", "load_typ", "load_id", "dib_typ", "dib_id", "cabl_typ", "cabl_id", "cont_typ", "cont_id", "lasr_typ", "lasr_id", "extr_typ", "extr_id" FROM "stratum_db"."sites" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_pins AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "pmr_indx", "chan_typ", "chan_nam", "phy_nam", "log_nam", "head_num", "site_num" FROM "stratum_db"."pins" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_texts AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "byte_offset", "rec_type", "text" FROM "stratum_db"."texts" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_records AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "byte_offset", "rec_type", "rec_typ", "rec_sub", "fields" FROM "stratum_db"."records" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_wafer_patterns AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "wafer_seq", "wafer_id", "rank", "class_id", "family", "location", "severity", "refinement", "confidence", "die_count", "summary", "classifier_version", "wafer_dies" FROM "stratum_db"."wafer_patterns" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
lot_files AS (SELECT f.lot_id, f.job_id, f.file_num, f.file_name, f.file_sha256, f.file_size, f.stdf_bytes, f.byte_order, f.cpu_type, f.records, f.partial, f.setup_time, f.start_time, f.finish_time, f.station, f.mode_code, f.retest_code, f.protection_code, f.burn_time, f.command_mode, f.part_type, f.program, f.program_rev, f.node_name, f.tester_type, f.sublot_id, f.operator, f.exec_type, f.exec_ver, f.test_code, f.test_temp, f.user_text, f.aux_file, f.package_type, f.family_id, f.date_code, f.facility_id, f.floor_id, f.process_id, f.oper_freq, f.spec_name, f.spec_ver, f.flow_id, f.setup_id, f.design_rev, f.engineering_id, f.rom_code, f.serial_num, f.supervisor, f.disposition, f.mrr_user_desc, f.mrr_exc_desc, f.wafer_size, f.die_height, f.die_width, f.wafer_units, f.wafer_flat, f.center_x, f.center_y, f.pos_x, f.pos_y, f.parser_version, f.retest_policy, f.test_key, f.ingested_at, m.file_order FROM _raw_lot_files f JOIN _members m ON m.file_num = f.file_num),
_bin_names AS (
        SELECT lot_id, job_id, file_num, bin_type, bin_num,
               max_by(bin_name, CAST(head_num = 255 AS INTEGER) * 2 + CAST(bin_name IS NOT NULL AS INTEGER)) AS bin_name,
               max_by(pass_fail, CAST(head_num = 255 AS INTEGER) * 2 + CAST(pass_fail IS NOT NULL AS INTEGER)) AS pass_fail
        FROM _raw_bin_records GROUP BY lot_id, job_id, file_num, bin_type, bin_num),
_parts_x AS (
        SELECT * FROM (
          SELECT p.lot_id, p.job_id, p.file_num, p.part_seq, p.wafer_seq, p.head_num, p.site_num, p.part_id, p.part_txt, p.part_fix, p.x, p.y, p.hard_bin, p.soft_bin, p.part_flg, p.passed, p.abort, p.supersedes_id, p.supersedes_xy, p.num_test, p.test_time_ms, p.pir_rec_seq, p.rec_seq, p.byte_offset, w.wafer_id, f.sublot_id, f.test_code, m.file_order, m.snapshot_job_id, m.highest_bin,
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
        ) x ),
parts AS (
        SELECT p.lot_id, p.wafer_id, p.head_num, p.site_num, p.part_id, p.x, p.y, p.hard_bin, p.soft_bin,
               p.passed_any AS passed, p.num_test AS test_count, p.test_time_ms,
               row_number() OVER (PARTITION BY p.lot_id, coalesce(p.sublot_id, ''), coalesce(p.test_code, ''), p.die_key ORDER BY p.file_order, p.part_seq) > 1 AS is_retest,
               row_number() OVER (PARTITION BY p.lot_id, coalesce(p.sublot_id, ''), coalesce(p.test_code, ''), p.die_key ORDER BY CASE WHEN p.highest_bin THEN p.hard_bin END DESC NULLS LAST, p.file_order DESC, p.part_seq DESC) = 1 AS is_final,
               p.job_id, p.part_seq, row_number() OVER (PARTITION BY p.lot_id, coalesce(p.sublot_id, ''), coalesce(p.test_code, ''), p.die_key ORDER BY p.file_order, p.part_seq) - 1 AS retest_ordinal, p.abort, p.part_txt,
               p.sublot_id, p.test_code, p.rec_seq, p.file_num, p.wafer_seq IS NOT NULL AS on_wafer
        FROM _parts_x p),
_tests_x AS (SELECT t.*, m.file_order FROM _raw_tests t JOIN _members m ON m.file_num = t.file_num),
tests AS (
        SELECT lot_id, test_num, test_name, test_type, max_by(units, file_order) AS units, max_by(lo_limit, file_order) AS lo_limit,
               max_by(hi_limit, file_order) AS hi_limit, max_by(job_id, file_order) AS job_id, max_by(lo_spec, file_order) AS lo_spec,
               max_by(hi_spec, file_order) AS hi_spec, max_by(res_scal, file_order) AS res_scal, max_by(llm_scal, file_order) AS llm_scal,
               max_by(hlm_scal, file_order) AS hlm_scal, bool_or(scale_mismatch) AS scale_mismatch,
               sum(exec_count) AS exec_count
        FROM _tests_x GROUP BY lot_id, test_num, test_name, test_type),
results AS (
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.result, r.valid, r.passed, p.is_final, r.job_id, p.is_retest, r.part_seq, t.units,
               r.lo_limit, r.hi_limit, r.test_flg, r.parm_flg, p.hard_bin, p.soft_bin, p.on_wafer
        FROM _raw_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx),
mpr_results AS (
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.pin_seq, r.pmr_index, coalesce(pm.log_nam, pm.chan_nam) AS pin_name, r.result, r.rtn_stat,
               r.valid, r.passed, p.is_final, r.job_id, r.lo_limit, r.hi_limit, t.units, p.is_retest
        FROM _raw_mpr_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx
        LEFT JOIN (SELECT file_num, pmr_indx, arbitrary(log_nam) AS log_nam, arbitrary(chan_nam) AS chan_nam
                   FROM _raw_pins GROUP BY file_num, pmr_indx) pm
               ON pm.file_num = r.file_num AND pm.pmr_indx = r.pmr_index),
ftr_results AS (
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.passed, p.is_final, r.job_id, r.num_fail, r.cycl_cnt, r.vect_nam, r.rslt_txt, r.test_flg, p.is_retest
        FROM _raw_ftr_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx),
_snap AS (SELECT DISTINCT lot_id, snapshot_job_id FROM _members),
bins AS (
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
            SELECT b.lot_id, b.bin_type, b.bin_num, max_by(b.bin_name, m.file_order) AS bin_name,
                   max_by(b.pass_fail, m.file_order) AS pass_fail
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
        LEFT JOIN summary sm ON sm.lot_id = c.lot_id AND sm.bin_type = c.bin_type AND sm.bin_num = c.bin_num),
wafers AS (
        WITH w AS (
            SELECT x.lot_id, x.wafer_id, min(x.start_time) AS start_time, max(x.finish_time) AS finish_time,
                   max_by(x.job_id, x.file_order) AS job_id, count(DISTINCT x.job_id) AS file_count,
                   sum(x.part_cnt) AS wrr_part_count, sum(x.good_cnt) AS wrr_good_count
            FROM (SELECT r.*, m.file_order FROM _raw_wafer_runs r JOIN _members m ON m.file_num = r.file_num) x
            
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
        FROM w LEFT JOIN p ON p.lot_id = w.lot_id AND p.wafer_id IS NOT DISTINCT FROM w.wafer_id),
lots AS (
        WITH f AS (
            SELECT lot_id, max_by(part_type, file_order) AS part_type,
                   max_by(program, file_order) AS program,
                   max_by(tester_type, file_order) AS tester_type,
                   max_by(node_name, file_order) AS node_name,
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
        FROM _snap s LEFT JOIN f ON f.lot_id = s.lot_id LEFT JOIN p ON p.lot_id = s.lot_id),
wafer_runs AS (SELECT r.lot_id, r.job_id, r.file_num, r.wafer_seq, r.wafer_id, r.head_num, r.site_grp, r.start_time, r.finish_time, r.part_cnt, r.rtst_cnt, r.abrt_cnt, r.good_cnt, r.func_cnt, r.fabwf_id, r.frame_id, r.mask_id, r.usr_desc, r.exc_desc, r.closed, r.wir_rec_seq, r.wrr_rec_seq FROM _raw_wafer_runs r JOIN _members m ON m.file_num = r.file_num),
test_summaries AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.head_num, r.site_num, r.test_type, r.test_num, r.exec_count, r.fail_count, r.alarm_count, r.test_name, r.seq_name, r.test_label, r.opt_flag, r.test_time, r.test_min, r.test_max, r.test_sum, r.test_sum_squares FROM _raw_test_summaries r JOIN _members m ON m.file_num = r.file_num),
part_counts AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.head_num, r.site_num, r.part_cnt, r.rtst_cnt, r.abrt_cnt, r.good_cnt, r.func_cnt FROM _raw_part_counts r JOIN _members m ON m.file_num = r.file_num),
bin_records AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.bin_type, r.head_num, r.site_num, r.bin_num, r.bin_count, r.pass_fail, r.bin_name FROM _raw_bin_records r JOIN _members m ON m.file_num = r.file_num),
sites AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.head_num, r.site_grp, r.site_cnt, r.site_num, r.hand_typ, r.hand_id, r.card_typ, r.card_id, r.load_typ, r.load_id, r.dib_typ, r.dib_id, r.cabl_typ, r.cabl_id, r.cont_typ, r.cont_id, r.lasr_typ, r.lasr_id, r.extr_typ, r.extr_id FROM _raw_sites r JOIN _members m ON m.file_num = r.file_num),
pins AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.pmr_indx, r.chan_typ, r.chan_nam, r.phy_nam, r.log_nam, r.head_num, r.site_num FROM _raw_pins r JOIN _members m ON m.file_num = r.file_num),
texts AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.byte_offset, r.rec_type, r.text FROM _raw_texts r JOIN _members m ON m.file_num = r.file_num),
records AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.byte_offset, r.rec_type, r.rec_typ, r.rec_sub, r.fields FROM _raw_records r JOIN _members m ON m.file_num = r.file_num),
_raw_wafer_patterns_final AS (SELECT * FROM (SELECT "lot_id", "job_id", "wafer_id", "rank", "class_id", "family", "location", "severity", "refinement", "confidence", "die_count", "summary", "classifier_version", "publish_seq", "classified_at" FROM "stratum_db"."wafer_patterns_final" WHERE workspace = 'acme' AND lot IN ('LOT%27B', 'LOT-A') AND job IN ('job_01A', 'job_01B', 'job_02A'))),
wafer_pattern_history AS (SELECT lot_id, wafer_id, job_id, class_id, family, location, severity, confidence, classifier_version, refinement, rank, die_count, summary, publish_seq, classified_at FROM _raw_wafer_patterns_final r WHERE EXISTS (SELECT 1 FROM _members m WHERE m.lot_id = r.lot_id AND m.job_id = r.job_id)),
wafer_patterns AS (
        WITH h AS (SELECT h.* FROM wafer_pattern_history h
                   WHERE EXISTS (SELECT 1 FROM _members m WHERE m.lot_id = h.lot_id AND m.job_id = h.job_id)),
        pick AS (SELECT lot_id, wafer_id, job_id, classifier_version,
                        row_number() OVER (PARTITION BY lot_id, wafer_id
                                           ORDER BY publish_seq DESC, classified_at DESC, classifier_version DESC) AS k
                 FROM (SELECT DISTINCT lot_id, wafer_id, job_id, classifier_version, publish_seq, classified_at
                       FROM h) u)
        SELECT h.lot_id, h.wafer_id, h.job_id, h.class_id, h.family, h.location, h.severity, h.confidence, h.classifier_version, h.refinement, h.rank, h.die_count, h.summary
        FROM h JOIN pick p ON p.lot_id = h.lot_id AND p.wafer_id = h.wafer_id AND p.job_id = h.job_id
                          AND p.classifier_version = h.classifier_version AND p.k = 1
        UNION ALL
        SELECT lot_id, wafer_id, job_id, class_id, family, location, severity, confidence, classifier_version, refinement, rank, die_count, summary FROM (
        SELECT lot_id, wafer_id, job_id, class_id, family, location, severity, confidence, classifier_version, refinement, rank, die_count, summary
        FROM (SELECT r.*, m.file_order,
                     first_value(r.file_num) OVER (PARTITION BY r.lot_id, r.wafer_id
                                                   ORDER BY r.wafer_dies DESC, m.file_order DESC) AS chosen
              FROM _raw_wafer_patterns r JOIN _members m ON m.file_num = r.file_num) x
        WHERE x.file_num = x.chosen) f
        WHERE NOT EXISTS (SELECT 1 FROM h WHERE h.lot_id = f.lot_id AND h.wafer_id = f.wafer_id))
SELECT 1;

-- no members
WITH _members AS (SELECT CAST(NULL AS VARCHAR) AS lot_id, CAST(NULL AS VARCHAR) AS job_id, CAST(NULL AS BIGINT) AS file_num, CAST(NULL AS INTEGER) AS file_order, CAST(NULL AS VARCHAR) AS snapshot_job_id, CAST(NULL AS BOOLEAN) AS highest_bin WHERE false),
_raw_lot_files AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "file_name", "file_sha256", "file_size", "stdf_bytes", "byte_order", "cpu_type", "records", "partial", "setup_time", "start_time", "finish_time", "station", "mode_code", "retest_code", "protection_code", "burn_time", "command_mode", "part_type", "program", "program_rev", "node_name", "tester_type", "sublot_id", "operator", "exec_type", "exec_ver", "test_code", "test_temp", "user_text", "aux_file", "package_type", "family_id", "date_code", "facility_id", "floor_id", "process_id", "oper_freq", "spec_name", "spec_ver", "flow_id", "setup_id", "design_rev", "engineering_id", "rom_code", "serial_num", "supervisor", "disposition", "mrr_user_desc", "mrr_exc_desc", "wafer_size", "die_height", "die_width", "wafer_units", "wafer_flat", "center_x", "center_y", "pos_x", "pos_y", "parser_version", "retest_policy", "test_key", "ingested_at" FROM "stratum_db"."lot_files" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_wafer_runs AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "wafer_seq", "wafer_id", "head_num", "site_grp", "start_time", "finish_time", "part_cnt", "rtst_cnt", "abrt_cnt", "good_cnt", "func_cnt", "fabwf_id", "frame_id", "mask_id", "usr_desc", "exc_desc", "closed", "wir_rec_seq", "wrr_rec_seq" FROM "stratum_db"."wafer_runs" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_parts AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "wafer_seq", "head_num", "site_num", "part_id", "part_txt", "part_fix", "x", "y", "hard_bin", "soft_bin", "part_flg", "passed", "abort", "supersedes_id", "supersedes_xy", "num_test", "test_time_ms", "pir_rec_seq", "rec_seq", "byte_offset" FROM "stratum_db"."parts" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_tests AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "test_idx", "test_num", "test_name", "test_type", "units", "lo_limit", "hi_limit", "lo_spec", "hi_spec", "res_scal", "llm_scal", "hlm_scal", "c_resfmt", "c_llmfmt", "c_hlmfmt", "opt_flag", "units_in", "start_in", "incr_in", "rtn_indx", "exec_count", "scale_mismatch", "first_rec_seq" FROM "stratum_db"."tests" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_results AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "test_idx", "test_num", "head_num", "site_num", "result", "valid", "passed", "test_flg", "parm_flg", "lo_limit", "hi_limit", "rec_seq" FROM "stratum_db"."results" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_mpr_results AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "test_idx", "test_num", "head_num", "site_num", "pin_seq", "pmr_index", "result", "rtn_stat", "test_flg", "parm_flg", "lo_limit", "hi_limit", "valid", "passed", "rec_seq" FROM "stratum_db"."mpr_results" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_ftr_results AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "part_seq", "test_idx", "test_num", "head_num", "site_num", "test_flg", "opt_flag", "passed", "cycl_cnt", "rel_vadr", "rept_cnt", "num_fail", "xfail_ad", "yfail_ad", "vect_off", "rtn_indx", "rtn_stat", "pgm_indx", "pgm_stat", "fail_pin", "vect_nam", "time_set", "op_code", "alarm_id", "prog_txt", "rslt_txt", "patg_num", "spin_map", "rec_seq" FROM "stratum_db"."ftr_results" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_bin_records AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "bin_type", "head_num", "site_num", "bin_num", "bin_count", "pass_fail", "bin_name" FROM "stratum_db"."bin_records" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_part_counts AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "head_num", "site_num", "part_cnt", "rtst_cnt", "abrt_cnt", "good_cnt", "func_cnt" FROM "stratum_db"."part_counts" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_test_summaries AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "head_num", "site_num", "test_type", "test_num", "exec_count", "fail_count", "alarm_count", "test_name", "seq_name", "test_label", "opt_flag", "test_time", "test_min", "test_max", "test_sum", "test_sum_squares" FROM "stratum_db"."test_summaries" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_sites AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "head_num", "site_grp", "site_cnt", "site_num", "hand_typ", "hand_id", "card_typ", "card_id", "load_typ", "load_id", "dib_typ", "dib_id", "cabl_typ", "cabl_id", "cont_typ", "cont_id", "lasr_typ", "lasr_id", "extr_typ", "extr_id" FROM "stratum_db"."sites" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_pins AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "pmr_indx", "chan_typ", "chan_nam", "phy_nam", "log_nam", "head_num", "site_num" FROM "stratum_db"."pins" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_texts AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "byte_offset", "rec_type", "text" FROM "stratum_db"."texts" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_records AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "rec_seq", "byte_offset", "rec_type", "rec_typ", "rec_sub", "fields" FROM "stratum_db"."records" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
_raw_wafer_patterns AS (SELECT * FROM (SELECT "lot_id", "job_id", "file_num", "wafer_seq", "wafer_id", "rank", "class_id", "family", "location", "severity", "refinement", "confidence", "die_count", "summary", "classifier_version", "wafer_dies" FROM "stratum_db"."wafer_patterns" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
lot_files AS (SELECT f.lot_id, f.job_id, f.file_num, f.file_name, f.file_sha256, f.file_size, f.stdf_bytes, f.byte_order, f.cpu_type, f.records, f.partial, f.setup_time, f.start_time, f.finish_time, f.station, f.mode_code, f.retest_code, f.protection_code, f.burn_time, f.command_mode, f.part_type, f.program, f.program_rev, f.node_name, f.tester_type, f.sublot_id, f.operator, f.exec_type, f.exec_ver, f.test_code, f.test_temp, f.user_text, f.aux_file, f.package_type, f.family_id, f.date_code, f.facility_id, f.floor_id, f.process_id, f.oper_freq, f.spec_name, f.spec_ver, f.flow_id, f.setup_id, f.design_rev, f.engineering_id, f.rom_code, f.serial_num, f.supervisor, f.disposition, f.mrr_user_desc, f.mrr_exc_desc, f.wafer_size, f.die_height, f.die_width, f.wafer_units, f.wafer_flat, f.center_x, f.center_y, f.pos_x, f.pos_y, f.parser_version, f.retest_policy, f.test_key, f.ingested_at, m.file_order FROM _raw_lot_files f JOIN _members m ON m.file_num = f.file_num),
_bin_names AS (
        SELECT lot_id, job_id, file_num, bin_type, bin_num,
               max_by(bin_name, CAST(head_num = 255 AS INTEGER) * 2 + CAST(bin_name IS NOT NULL AS INTEGER)) AS bin_name,
               max_by(pass_fail, CAST(head_num = 255 AS INTEGER) * 2 + CAST(pass_fail IS NOT NULL AS INTEGER)) AS pass_fail
        FROM _raw_bin_records GROUP BY lot_id, job_id, file_num, bin_type, bin_num),
_parts_x AS (
        SELECT * FROM (
          SELECT p.lot_id, p.job_id, p.file_num, p.part_seq, p.wafer_seq, p.head_num, p.site_num, p.part_id, p.part_txt, p.part_fix, p.x, p.y, p.hard_bin, p.soft_bin, p.part_flg, p.passed, p.abort, p.supersedes_id, p.supersedes_xy, p.num_test, p.test_time_ms, p.pir_rec_seq, p.rec_seq, p.byte_offset, w.wafer_id, f.sublot_id, f.test_code, m.file_order, m.snapshot_job_id, m.highest_bin,
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
        ) x ),
parts AS (
        SELECT p.lot_id, p.wafer_id, p.head_num, p.site_num, p.part_id, p.x, p.y, p.hard_bin, p.soft_bin,
               p.passed_any AS passed, p.num_test AS test_count, p.test_time_ms,
               row_number() OVER (PARTITION BY p.lot_id, coalesce(p.sublot_id, ''), coalesce(p.test_code, ''), p.die_key ORDER BY p.file_order, p.part_seq) > 1 AS is_retest,
               row_number() OVER (PARTITION BY p.lot_id, coalesce(p.sublot_id, ''), coalesce(p.test_code, ''), p.die_key ORDER BY p.file_order DESC, p.part_seq DESC) = 1 AS is_final,
               p.job_id, p.part_seq, row_number() OVER (PARTITION BY p.lot_id, coalesce(p.sublot_id, ''), coalesce(p.test_code, ''), p.die_key ORDER BY p.file_order, p.part_seq) - 1 AS retest_ordinal, p.abort, p.part_txt,
               p.sublot_id, p.test_code, p.rec_seq, p.file_num, p.wafer_seq IS NOT NULL AS on_wafer
        FROM _parts_x p),
_tests_x AS (SELECT t.*, m.file_order FROM _raw_tests t JOIN _members m ON m.file_num = t.file_num),
tests AS (
        SELECT lot_id, test_num, test_name, test_type, max_by(units, file_order) AS units, max_by(lo_limit, file_order) AS lo_limit,
               max_by(hi_limit, file_order) AS hi_limit, max_by(job_id, file_order) AS job_id, max_by(lo_spec, file_order) AS lo_spec,
               max_by(hi_spec, file_order) AS hi_spec, max_by(res_scal, file_order) AS res_scal, max_by(llm_scal, file_order) AS llm_scal,
               max_by(hlm_scal, file_order) AS hlm_scal, bool_or(scale_mismatch) AS scale_mismatch,
               sum(exec_count) AS exec_count
        FROM _tests_x GROUP BY lot_id, test_num, test_name, test_type),
results AS (
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.result, r.valid, r.passed, p.is_final, r.job_id, p.is_retest, r.part_seq, t.units,
               r.lo_limit, r.hi_limit, r.test_flg, r.parm_flg, p.hard_bin, p.soft_bin, p.on_wafer
        FROM _raw_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx),
mpr_results AS (
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.pin_seq, r.pmr_index, coalesce(pm.log_nam, pm.chan_nam) AS pin_name, r.result, r.rtn_stat,
               r.valid, r.passed, p.is_final, r.job_id, r.lo_limit, r.hi_limit, t.units, p.is_retest
        FROM _raw_mpr_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx
        LEFT JOIN (SELECT file_num, pmr_indx, arbitrary(log_nam) AS log_nam, arbitrary(chan_nam) AS chan_nam
                   FROM _raw_pins GROUP BY file_num, pmr_indx) pm
               ON pm.file_num = r.file_num AND pm.pmr_indx = r.pmr_index),
ftr_results AS (
        SELECT r.lot_id, p.wafer_id, r.head_num, r.site_num, p.part_id, p.x, p.y, r.test_num, t.test_name,
               r.passed, p.is_final, r.job_id, r.num_fail, r.cycl_cnt, r.vect_nam, r.rslt_txt, r.test_flg, p.is_retest
        FROM _raw_ftr_results r
        JOIN parts p ON p.file_num = r.file_num AND p.part_seq = r.part_seq
        JOIN _raw_tests t ON t.file_num = r.file_num AND t.test_idx = r.test_idx),
_snap AS (SELECT DISTINCT lot_id, snapshot_job_id FROM _members),
bins AS (
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
            SELECT b.lot_id, b.bin_type, b.bin_num, max_by(b.bin_name, m.file_order) AS bin_name,
                   max_by(b.pass_fail, m.file_order) AS pass_fail
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
        LEFT JOIN summary sm ON sm.lot_id = c.lot_id AND sm.bin_type = c.bin_type AND sm.bin_num = c.bin_num),
wafers AS (
        WITH w AS (
            SELECT x.lot_id, x.wafer_id, min(x.start_time) AS start_time, max(x.finish_time) AS finish_time,
                   max_by(x.job_id, x.file_order) AS job_id, count(DISTINCT x.job_id) AS file_count,
                   sum(x.part_cnt) AS wrr_part_count, sum(x.good_cnt) AS wrr_good_count
            FROM (SELECT r.*, m.file_order FROM _raw_wafer_runs r JOIN _members m ON m.file_num = r.file_num) x
            
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
        FROM w LEFT JOIN p ON p.lot_id = w.lot_id AND p.wafer_id IS NOT DISTINCT FROM w.wafer_id),
lots AS (
        WITH f AS (
            SELECT lot_id, max_by(part_type, file_order) AS part_type,
                   max_by(program, file_order) AS program,
                   max_by(tester_type, file_order) AS tester_type,
                   max_by(node_name, file_order) AS node_name,
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
        FROM _snap s LEFT JOIN f ON f.lot_id = s.lot_id LEFT JOIN p ON p.lot_id = s.lot_id),
wafer_runs AS (SELECT r.lot_id, r.job_id, r.file_num, r.wafer_seq, r.wafer_id, r.head_num, r.site_grp, r.start_time, r.finish_time, r.part_cnt, r.rtst_cnt, r.abrt_cnt, r.good_cnt, r.func_cnt, r.fabwf_id, r.frame_id, r.mask_id, r.usr_desc, r.exc_desc, r.closed, r.wir_rec_seq, r.wrr_rec_seq FROM _raw_wafer_runs r JOIN _members m ON m.file_num = r.file_num),
test_summaries AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.head_num, r.site_num, r.test_type, r.test_num, r.exec_count, r.fail_count, r.alarm_count, r.test_name, r.seq_name, r.test_label, r.opt_flag, r.test_time, r.test_min, r.test_max, r.test_sum, r.test_sum_squares FROM _raw_test_summaries r JOIN _members m ON m.file_num = r.file_num),
part_counts AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.head_num, r.site_num, r.part_cnt, r.rtst_cnt, r.abrt_cnt, r.good_cnt, r.func_cnt FROM _raw_part_counts r JOIN _members m ON m.file_num = r.file_num),
bin_records AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.bin_type, r.head_num, r.site_num, r.bin_num, r.bin_count, r.pass_fail, r.bin_name FROM _raw_bin_records r JOIN _members m ON m.file_num = r.file_num),
sites AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.head_num, r.site_grp, r.site_cnt, r.site_num, r.hand_typ, r.hand_id, r.card_typ, r.card_id, r.load_typ, r.load_id, r.dib_typ, r.dib_id, r.cabl_typ, r.cabl_id, r.cont_typ, r.cont_id, r.lasr_typ, r.lasr_id, r.extr_typ, r.extr_id FROM _raw_sites r JOIN _members m ON m.file_num = r.file_num),
pins AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.pmr_indx, r.chan_typ, r.chan_nam, r.phy_nam, r.log_nam, r.head_num, r.site_num FROM _raw_pins r JOIN _members m ON m.file_num = r.file_num),
texts AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.byte_offset, r.rec_type, r.text FROM _raw_texts r JOIN _members m ON m.file_num = r.file_num),
records AS (SELECT r.lot_id, r.job_id, r.file_num, r.rec_seq, r.byte_offset, r.rec_type, r.rec_typ, r.rec_sub, r.fields FROM _raw_records r JOIN _members m ON m.file_num = r.file_num),
_raw_wafer_patterns_final AS (SELECT * FROM (SELECT "lot_id", "job_id", "wafer_id", "rank", "class_id", "family", "location", "severity", "refinement", "confidence", "die_count", "summary", "classifier_version", "publish_seq", "classified_at" FROM "stratum_db"."wafer_patterns_final" WHERE workspace = 'acme' AND lot IN ('%00') AND job IN ('none') AND false)),
wafer_pattern_history AS (SELECT lot_id, wafer_id, job_id, class_id, family, location, severity, confidence, classifier_version, refinement, rank, die_count, summary, publish_seq, classified_at FROM _raw_wafer_patterns_final r WHERE EXISTS (SELECT 1 FROM _members m WHERE m.lot_id = r.lot_id AND m.job_id = r.job_id)),
wafer_patterns AS (
        WITH h AS (SELECT h.* FROM wafer_pattern_history h
                   WHERE EXISTS (SELECT 1 FROM _members m WHERE m.lot_id = h.lot_id AND m.job_id = h.job_id)),
        pick AS (SELECT lot_id, wafer_id, job_id, classifier_version,
                        row_number() OVER (PARTITION BY lot_id, wafer_id
                                           ORDER BY publish_seq DESC, classified_at DESC, classifier_version DESC) AS k
                 FROM (SELECT DISTINCT lot_id, wafer_id, job_id, classifier_version, publish_seq, classified_at
                       FROM h) u)
        SELECT h.lot_id, h.wafer_id, h.job_id, h.class_id, h.family, h.location, h.severity, h.confidence, h.classifier_version, h.refinement, h.rank, h.die_count, h.summary
        FROM h JOIN pick p ON p.lot_id = h.lot_id AND p.wafer_id = h.wafer_id AND p.job_id = h.job_id
                          AND p.classifier_version = h.classifier_version AND p.k = 1
        UNION ALL
        SELECT lot_id, wafer_id, job_id, class_id, family, location, severity, confidence, classifier_version, refinement, rank, die_count, summary FROM (
        SELECT lot_id, wafer_id, job_id, class_id, family, location, severity, confidence, classifier_version, refinement, rank, die_count, summary
        FROM (SELECT r.*, m.file_order,
                     first_value(r.file_num) OVER (PARTITION BY r.lot_id, r.wafer_id
                                                   ORDER BY r.wafer_dies DESC, m.file_order DESC) AS chosen
              FROM _raw_wafer_patterns r JOIN _members m ON m.file_num = r.file_num) x
        WHERE x.file_num = x.chosen) f
        WHERE NOT EXISTS (SELECT 1 FROM h WHERE h.lot_id = f.lot_id AND h.wafer_id = f.wafer_id))
SELECT 1;
