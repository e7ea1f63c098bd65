"""Peak RSS of the inspect path and the ingest path (upload, presigned PUT, drop folder, CLI) under each
decompression bomb, with the default limits. Each case runs in a fresh process (ru_maxrss is a peak).

    .venv/bin/python -m tests.measure_bombs
"""

from __future__ import annotations

import bz2
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

GiB, MiB = 1 << 30, 1 << 20

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
path, mode = Path(sys.argv[1]), sys.argv[2]
from stratum.settings import settings_for
from stratum.runtime import Runtime
from stratum.ingest.inspect import inspect_input
from stratum.stdf.source import decompression_limits
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
s = settings_for(Path(sys.argv[3]), backend="local")
t0 = time.perf_counter()
if mode == "inspect":
    info = inspect_input(str(path), path.name, size=path.stat().st_size, limits=decompression_limits(s.input_limits))
    outcome = info["problems"][0]["code"] if info["problems"] else "ok"
    outcome = ("refused: " if not info["valid"] else "accepted: ") + outcome
else:
    rt = Runtime.from_settings(s)
    job = rt.ingest.ingest_path("default", path)
    outcome = f"{job.status}: {job.error.code if job.error else job.records}"
    rt.close()
print(json.dumps({"s": round(time.perf_counter() - t0, 2), "base_mb": base // 1024,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, "outcome": outcome}))
"""


def main() -> None:
    from tests.bombs import FAR, bzip2_bomb, gzip_bomb, gzip_empty_records, zip_bomb

    cases = {
        "gzip 4 GiB": ("b.stdf.gz", lambda: gzip.compress(FAR) + gzip_bomb(4 * GiB)),
        "gzip 40 MiB empty records": ("e.stdf.gz", lambda: gzip_empty_records(40 * MiB)),
        "bzip2 8 GiB": ("b.stdf.bz2", lambda: bz2.compress(FAR) + bzip2_bomb(8 * GiB)),
        "zip 2 GiB": ("b.stdf.zip", lambda: zip_bomb(2 * GiB, prefix=FAR)),
    }
    with tempfile.TemporaryDirectory() as d:
        for name, (fname, make) in cases.items():
            path = Path(d) / fname
            path.write_bytes(make())
            for mode in ("inspect", "ingest"):
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(path), mode, str(Path(d) / "data")],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(
                    f"{name:28s} {path.stat().st_size / 1e6:8.3f} MB  {mode:7s}  peak RSS {r['peak_mb']:5d} MB "
                    f"(after imports {r['base_mb']} MB)  {r['s']:6.2f} s  {r['outcome']}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
