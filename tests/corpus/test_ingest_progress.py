"""Progress on gzip input follows the parser through the compressed file and counts uncompressed STDF bytes."""

from __future__ import annotations

import pytest

from stratum.cli.data import _Progress
from tests.conftest import CORPUS
from tests.fixtures.runtime import make_runtime

pytestmark = pytest.mark.corpus

D10 = "ltx_diamond_d10_ws_4site_95mb.std.gz"  # 13,325,380 bytes of gzip, 94,919,158 bytes of STDF


def test_gzip_progress_tracks_compressed_position_and_stdf_bytes(tmp_path):
    if not (CORPUS / D10).is_file():
        pytest.skip(f"{D10} not found in {CORPUS}")
    rt = make_runtime(tmp_path / "data")
    frames: list[tuple[int, int | None]] = []
    bar = _Progress(D10, (CORPUS / D10).stat().st_size)
    lines: list[str] = []

    def progress(job) -> None:
        frames.append((job.bytes_read, job.stdf_bytes))
        lines.append(bar.line(job, 2.0))

    try:
        job = rt.ingest.ingest_path("default", CORPUS / D10, progress=progress)
    finally:
        rt.close()
    assert (job.size, job.bytes_read, job.stdf_bytes) == (13_325_380, 13_325_380, 94_919_158)
    assert frames[0][0] < 0.2 * job.size  # was 40 % at the first frame: the decompressor's read-ahead
    assert [f[0] for f in frames] == sorted(f[0] for f in frames)
    assert frames[0][1] is not None and frames[0][1] > 4 * frames[0][0]  # STDF bytes, not compressed ones
    assert lines[-1].endswith("100.0%   47.5 MB/s STDF   2.0s")  # 94.9 MB of STDF in 2 s
