"""The lake comparison devtool: same code twice is the same lake; one changed value (or NaN bit) is reported."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from stratum.devtools import lake_diff
from tests.conftest import corpus_file

FILE = "advantest_93k_ft_be.stdf"


def test_the_same_code_writes_the_same_lake_and_a_changed_value_is_found(tmp_path, capsys):
    f = str(corpus_file(FILE))
    lake_diff.dump(tmp_path / "a", [f])
    lake_diff.dump(tmp_path / "b", [f])  # other job ids and ingest times: compared as nulls
    assert lake_diff.compare(tmp_path / "a", tmp_path / "b") == 0
    assert f"{FILE}: same" in capsys.readouterr().out

    p = tmp_path / "b" / FILE / "mpr_results.parquet"
    t = pq.read_table(p)
    r = t.column("result").to_numpy(zero_copy_only=False).copy()
    r[3] = np.float32(np.nan) if not np.isnan(r[3]) else np.float32(1.0)  # one value, same schema and size
    i = t.column_names.index("result")
    pq.write_table(t.set_column(i, t.schema.field(i), pa.array(r, pa.float32(), from_pandas=False)), p)
    assert lake_diff.compare(tmp_path / "a", tmp_path / "b") == 1
    out = capsys.readouterr().out
    assert "mpr_results: values differ in rows 0..131072" in out and "1 file(s) differ" in out
