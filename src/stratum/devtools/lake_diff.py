"""Compare the lake two versions of the code write for the same STDF files (a check for writer changes that must
not change what is stored: schema, every value, row order, row groups).

    python -m stratum.devtools.lake_diff dump OUT FILE...   # ingest each file into a fresh lake, keep its Parquet
    python -m stratum.devtools.lake_diff compare A B        # exit 1 on any difference; prints the bytes per file

Run ``dump`` once with each version of the code, then ``compare``; for a version without this module, run this
file with the other checkout's package first on the path (``PYTHONPATH=<checkout>/src python lake_diff.py dump
...``). Columns that differ
between any two runs (``job_id``, ``ingested_at``, ``classified_at``) are compared as nulls; floats are compared
by their bits (NaN included); dictionary columns by their values. Tables are read in slices, so a 500 MB file's
lake is compared in bounded memory.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

VOLATILE = ("job_id", "ingested_at", "classified_at")
SLICE = 131_072


def dump(out: Path, files: list[str]) -> None:
    import pyarrow.parquet as pq

    from stratum.runtime import Runtime
    from stratum.settings import settings_for

    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        name = Path(f).name
        with tempfile.TemporaryDirectory() as d:
            rt = Runtime.from_settings(settings_for(d, backend="local"))
            job = rt.ingest.ingest_path("default", f)
            info: dict = {"status": job.status, "error": str(job.error) if job.error else None, "tables": {}}
            od = out / name
            shutil.rmtree(od, ignore_errors=True)
            od.mkdir()
            for p in sorted(Path(d).rglob("*.parquet")):
                rel = str(p.relative_to(d))
                if "/lake/" not in rel:
                    continue
                table = base = rel.split("/lake/")[1].split("/")[0]
                i = 0
                while table in info["tables"]:  # several files of one table (wafer_patterns_final)
                    i += 1
                    table = f"{base}#{i}"
                pf = pq.ParquetFile(p)
                md = pf.metadata
                info["tables"][table] = {
                    "rows": md.num_rows,
                    "arrow_schema": str(pf.schema_arrow),
                    "parquet_schema": str(pf.schema).split("\n", 1)[1],
                    "row_groups": [md.row_group(i).num_rows for i in range(md.num_row_groups)],
                    "size": p.stat().st_size,
                }
                shutil.copy(p, od / f"{table}.parquet")
            (od / "info.json").write_text(json.dumps(info, indent=1, sort_keys=True))
            print(name, info["status"], info["error"] or "", flush=True)


def _slices(path: Path) -> Iterator:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf: list = []
    n = 0
    for b in pq.ParquetFile(path).iter_batches(batch_size=SLICE):
        buf.append(b)
        n += b.num_rows
        while n >= SLICE:
            t = pa.Table.from_batches(buf).combine_chunks()
            yield t.slice(0, SLICE)
            rest = t.slice(SLICE)
            buf, n = rest.to_batches(), rest.num_rows
    if n:
        yield pa.Table.from_batches(buf).combine_chunks()


def _normal(t):
    import pyarrow as pa

    cols = []
    for name, c in zip(t.column_names, t.columns, strict=True):
        a = c.combine_chunks()
        if name in VOLATILE:
            a = pa.nulls(len(a))
        elif pa.types.is_dictionary(a.type):
            a = a.cast(a.type.value_type)
        ty = a.type
        bits = {pa.float32(): pa.int32(), pa.float64(): pa.int64()}
        if ty in bits:
            a = a.view(bits[ty])
        elif pa.types.is_list(ty) and ty.value_type in bits:
            a = a.view(pa.list_(bits[ty.value_type]))
        cols.append(a)
    return pa.table(cols, names=t.column_names)


def compare(a: Path, b: Path) -> int:
    bad = 0
    for da in sorted(p for p in a.iterdir() if p.is_dir()):
        db = b / da.name
        if not db.is_dir():
            print(f"{da.name}: missing in {b}")
            bad += 1
            continue
        ia, ib = (json.loads((d / "info.json").read_text()) for d in (da, db))
        msgs = [f"{k}: {ia[k]} != {ib[k]}" for k in ("status", "error") if ia[k] != ib[k]]
        ta, tb = ia["tables"], ib["tables"]
        msgs += [f"table {k} only on one side" for k in sorted(set(ta) ^ set(tb))]
        for k in sorted(set(ta) & set(tb)):
            msgs += [
                f"{k}: {f} differs"
                for f in ("rows", "arrow_schema", "parquet_schema", "row_groups")
                if ta[k][f] != tb[k][f]
            ]
            for i, (x, y) in enumerate(zip(_slices(da / f"{k}.parquet"), _slices(db / f"{k}.parquet"), strict=False)):
                if not _normal(x).equals(_normal(y)):
                    msgs.append(f"{k}: values differ in rows {i * SLICE}..{(i + 1) * SLICE}")
                    break
        size = [sum(t[k]["size"] for k in t) for t in (ta, tb)]
        changed = {
            k: (ta[k]["size"], tb[k]["size"]) for k in sorted(set(ta) & set(tb)) if ta[k]["size"] != tb[k]["size"]
        }
        print(f"{da.name}: {'DIFFERENT' if msgs else 'same'}; Parquet bytes {size[0]:,} -> {size[1]:,} {changed or ''}")
        for m in msgs:
            print("   ", m)
        bad += bool(msgs)
    print(f"{bad} file(s) differ")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stratum.devtools.lake_diff", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump", help="ingest each file into a fresh lake and keep its Parquet files")
    d.add_argument("out", type=Path)
    d.add_argument("files", nargs="+")
    c = sub.add_parser("compare", help="compare two dumps; exit 1 on any difference")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "dump":
        dump(args.out, args.files)
        return 0
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
