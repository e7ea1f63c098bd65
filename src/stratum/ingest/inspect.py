"""What an STDF file holds, without ingesting it (``stratum inspect``, ``POST /v1/uploads/inspect``)."""

from __future__ import annotations

from typing import IO, Any

from stratum.stdf.errors import StdfError
from stratum.stdf.reader import FileHeader, ReaderOptions, parse
from stratum.stdf.source import ByteSource, DecompressionLimits

from .service import lot_id_from_name


class _Summary:
    """Sink that counts rows and a few per-part facts instead of writing anything."""

    def __init__(self) -> None:
        self.header: FileHeader | None = None
        self.row_counts: dict[str, int] = {}
        self.sites: set[tuple[int, int]] = set()
        self.passed = 0
        self.failed = 0

    def begin(self, header: FileHeader) -> None:
        self.header = header

    def rows(self, table: str, cols: dict) -> None:
        self.row_counts[table] = self.row_counts.get(table, 0) + len(next(iter(cols.values())))
        if table == "parts":
            self.sites.update(zip(cols["head_num"].tolist(), cols["site_num"].tolist(), strict=False))
            p = cols["passed"]
            self.passed += int((p.values & p.valid).sum())
            self.failed += int((~p.values & p.valid).sum())


def inspect_input(
    src: bytes | IO[bytes] | str,
    file_name: str = "upload.stdf",
    *,
    size: int | None = None,
    limits: DecompressionLimits | None = None,
) -> dict[str, Any]:
    """Summary of an STDF input. Bad input is reported in ``problems``, never raised."""
    sink = _Summary()
    problems: list[dict[str, Any]] = []
    fmt = None
    try:
        with ByteSource(src, size=size, limits=limits) as source:
            fmt = source.format
            res = parse(source, sink, ReaderOptions(fallback_lot_id=lot_id_from_name(file_name), accept_truncated=True))
    except StdfError as exc:
        return {"valid": False, "file_name": file_name, "compression": fmt, "problems": [exc.to_dict()]}
    if res.truncated is not None:
        problems.append(res.truncated.to_dict())
    for w in res.warnings:
        problems.append({"code": w.code, "message": w.message, "count": w.count, "offset": w.offset})
    mir = res.mir or {}
    wafers = [
        {
            "wafer_id": w.get("wafer_id"),
            "head_num": w.get("head_num"),
            "part_count": w.get("part_cnt"),
            "good_count": w.get("good_cnt"),
            "start_time": w.get("start_t"),
            "finish_time": w.get("finish_t"),
        }
        for w in res.wafers
    ]
    h = res.header
    return {
        "valid": res.truncated is None,
        "file_name": file_name,
        "compression": fmt,
        "byte_order": h.byte_order if h else None,
        "stdf_bytes": res.bytes_decompressed,
        "lot_id": h.lot_id if h else None,
        "lot_id_source": h.lot_id_source if h else None,
        "sublot_id": (mir.get("SBLOT_ID") or "").strip() or None,
        "part_type": (mir.get("PART_TYP") or "").strip() or None,
        "program": (mir.get("JOB_NAM") or "").strip() or None,
        "tester_type": (mir.get("TSTR_TYP") or "").strip() or None,
        "node_name": (mir.get("NODE_NAM") or "").strip() or None,
        "test_code": (mir.get("TEST_COD") or "").strip() or None,
        "start_time": mir.get("START_T"),
        "records": res.records,
        "record_counts": res.record_counts,
        "unknown_record_counts": res.unknown_counts,
        "parts": res.parts,
        "parts_passed": sink.passed,
        "parts_failed": sink.failed,
        "sites": sorted({s for _, s in sink.sites}),
        "heads": sorted({h_ for h_, _ in sink.sites}),
        "tests": sum(1 for t in res.tests if t.exec_count or t.has_defaults),
        "wafers": wafers,
        "rows": sink.row_counts,
        "problems": problems,
    }
