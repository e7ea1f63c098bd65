"""Upload an STDF file, wait for its ingest, then look at the lot it published.

export STRATUM_API_KEY=stm_test_...          # stratum keys create --scope full --name laptop
export STRATUM_BASE_URL=http://127.0.0.1:8000  # stratum serve
python quickstart.py lot.stdf out/
"""

import sys
from pathlib import Path

from stratum_client import Client

path, out = sys.argv[1], Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)

with Client() as client:
    job = client.upload(path, wait=True, timeout=300)
    print(f"job {job.job_id}: {job.status}, lot {job.lot_id}, {job.parts} parts")

    for lot in client.lots():
        print(f"lot {lot.lot_id} ({lot.part_type}): {lot.file_count} file(s)")

    wafers = client.wafers(job.lot_id)
    for w in wafers:
        print(f"  wafer {w.wafer_id}: yield {w.yield_:.1%} of {w.part_count} dies")

    wafer_map = client.wafer_map(job.lot_id, wafers[0].wafer_id)
    (out / "map.png").write_bytes(wafer_map.png())
    print(f"map: {len(wafer_map.to_pandas())} dies, {out / 'map.png'}")

    cpk = client.capability(job.lot_id)
    worst = min((t for t in cpk.tests if t.cpk is not None), key=lambda t: t.cpk)
    print(f"lowest Cpk: test {worst.test_num} {worst.test_name}: {worst.cpk:.2f}")

    df = client.sql("SELECT wafer_id, count(*) AS dies FROM parts GROUP BY 1 ORDER BY 1").to_pandas()
    print(df.to_string(index=False))

    export = client.export("SELECT * FROM results", lot_id=job.lot_id, format="parquet")
    saved = export.download(out / "results.parquet")
    print(f"export {export.export_id}: {client.get_export(export.export_id).rows} rows in {saved}")
