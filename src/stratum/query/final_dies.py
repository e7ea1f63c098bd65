"""The final die maps of the wafers one job's file tested, read from the snapshot's Parquet files with pyarrow and
numpy, without DuckDB: what ``AnalyticsService.job_final_dies`` answers through the ``parts`` view, for the
classification every publish runs (an ingest process carries pyarrow and has not opened DuckDB; the view costs
it a DuckDB import, a database and its views).

The rules are the view's (``stratum.query.views``): a wafer die is (sublot, test code, wafer, X, Y); its final
execution is the one the snapshot's retest policy keeps (``last``: the newest by file order then part_seq;
``highest_bin``: the highest hard bin, then the same order); ``passed`` falls back to the file's HBR pass/fail
(HEAD_NUM 255 first, then a row that has one). Where the view's answer is not unique or the files break what the
rules assume (two wafer runs with one wafer_seq, two lot_files rows, HBR rows that disagree, two final dies at
one (wafer, X, Y)), ``final_dies`` returns None and the caller asks the view.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stratum.catalog import Catalog
from stratum.errors import NotFound
from stratum.lake import layout
from stratum.models import PUBLISHED
from stratum.storage.objectstore import ObjectNotFound, ObjectStore

from .views import Member, ordered_members

_PARTS = ["lot_id", "job_id", "file_num", "part_seq", "wafer_seq", "site_num", "x", "y", "hard_bin", "passed"]
Dies = dict[str, dict[str, np.ndarray]]


def _read(lake: ObjectStore, key: str, columns: list[str]) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with lake.open_read(key) as f:
        src = f if f.seekable() else pa.BufferReader(f.read())
        return pq.read_table(src, columns=columns, use_threads=False, read_dictionary=["lot_id", "job_id"])


def _only(col: Any) -> tuple[bool, Any]:
    """(True, the value) when every row of a dictionary column holds the same value (null included)."""
    import pyarrow.compute as pc

    values: set = set()
    for ch in col.chunks:
        idx = pc.unique(ch.indices)
        values.update(ch.dictionary.take(idx.drop_null()).to_pylist())
        if idx.null_count:
            values.add(None)
    return len(values) == 1, next(iter(values), None)


def _np(col: Any, fill: int | bool) -> tuple[np.ndarray, np.ndarray]:
    """(values with nulls as ``fill``, validity) of an Arrow integer (as int64) or bool column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    valid = col.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_integer(col.type):
        col = col.cast(pa.int64())
    return pc.fill_null(col, fill).to_numpy(zero_copy_only=False), valid


def _hbr_pass(lake: ObjectStore, key: str) -> dict[int, bool | None] | None:
    """Hard bin -> pass (True/False; None for neither 'P' nor 'F') as ``_bin_names`` picks it: the pass_fail of the
    highest-ranked row (HEAD_NUM 255 over a site's row) that has one; None when two such rows disagree."""
    t = _read(lake, key, ["bin_type", "head_num", "bin_num", "pass_fail"]).to_pylist()
    best: dict[int, tuple[int, str]] = {}
    tied: set[int] = set()
    for r in t:
        if r["bin_type"] != "H" or r["pass_fail"] is None or r["head_num"] is None or r["bin_num"] is None:
            continue
        rank = (r["head_num"] == 255) * 2 + 1
        b = r["bin_num"]
        old = best.get(b)
        if old is None or rank > old[0]:
            best[b] = (rank, r["pass_fail"])
            tied.discard(b)
        elif rank == old[0] and r["pass_fail"] != old[1]:
            tied.add(b)
    if tied:
        return None
    return {b: (pf == "P") for b, (_, pf) in best.items()}


def final_dies(catalog: Catalog, lake: ObjectStore, ws: str, lot_id: str, job_id: str) -> tuple[str, Dies] | None:
    """``AnalyticsService.job_final_dies(ws, lot_id, job_id)`` from the files: (snapshot job id, {wafer_id: x, y,
    hard_bin, site_num (NULL: -1), passed (NULL: False)}), wafers by id, dies by (y, x). None: ask the view (also
    for a job that did not publish a snapshot of the lot, whose error the view reports)."""
    try:
        import pyarrow.parquet  # noqa: F401 - the functions that carry DuckDB only (API, monitors) ask the view
    except ImportError:
        return None
    try:
        job = catalog.get_job(ws, job_id)
    except NotFound:
        return None
    if job.status not in PUBLISHED or not job.snapshot or job.lot_id != lot_id:
        return None
    policy = job.options.retest_policy
    if policy not in ("last", "highest_bin"):
        return None
    members = ordered_members(lot_id, job_id, job.snapshot)
    try:
        cols = [c for m in members if (c := _member_rows(lake, ws, m)) is not None]
    except ObjectNotFound:
        return None
    if any(c is False for c in cols) or len({c["lot"] for c in cols if isinstance(c, dict)}) > 1:
        return None
    out = _finals([c for c in cols if isinstance(c, dict)], job_id, policy)
    return None if out is None else (job_id, out)


def _member_rows(lake: ObjectStore, ws: str, m: Member) -> dict | bool | None:
    """The member's parts on a wafer with both coordinates, with wafer_id and (sublot, test code); None when it
    has none; False when its files break the view's assumptions."""
    if "parts" not in m.tables or "wafer_runs" not in m.tables:
        return None  # no wafer run: no part of it has a wafer_id
    t = _read(lake, layout.data_key(ws, "parts", m.lot_id, m.job_id), _PARTS)
    if t.num_rows == 0:
        return None
    fnum, _ = _np(t.column("file_num"), -1)
    one_lot, lot = _only(t.column("lot_id"))
    one_job, job = _only(t.column("job_id"))
    # the view joins on the rows' file_num, partitions by their lot_id and picks the job's wafers by their job_id
    if not bool((fnum == m.file_num).all()) or not one_lot or not one_job or job != m.job_id:
        return False
    wseq, wok = _np(t.column("wafer_seq"), 0)
    x, xok = _np(t.column("x"), 0)
    y, yok = _np(t.column("y"), 0)
    keep = wok & xok & yok
    wr = _read(lake, layout.data_key(ws, "wafer_runs", m.lot_id, m.job_id), ["wafer_seq", "wafer_id"]).to_pydict()
    ids: dict[int, str] = {}
    for s, w in zip(wr["wafer_seq"], wr["wafer_id"], strict=True):
        if s is None:
            continue
        if s in ids or w == "":
            return False  # a part would join two runs; '' would share die keys with parts of no run
        if w is not None:
            ids[s] = w
    if not ids or not keep.any():
        return None
    seqs = np.fromiter(ids, np.int64, len(ids))
    keep &= np.isin(wseq, seqs)
    if not keep.any():
        return None
    idx = np.flatnonzero(keep)
    order = np.argsort(seqs)
    wafer_of = np.asarray([ids[int(s)] for s in seqs[order]], dtype=object)
    wafer = wafer_of[np.searchsorted(seqs[order], wseq[idx])]
    sublot = test_code = None
    if "lot_files" in m.tables:
        lf = _read(lake, layout.data_key(ws, "lot_files", m.lot_id, m.job_id), ["sublot_id", "test_code"]).to_pylist()
        if len(lf) > 1:
            return False
        if lf:
            sublot, test_code = lf[0]["sublot_id"], lf[0]["test_code"]
    hb, hbok = _np(t.column("hard_bin"), -1)
    site, _ = _np(t.column("site_num"), -1)
    passed, pok = _np(t.column("passed"), False)
    hb, hbok, passed, pok = hb[idx], hbok[idx], passed[idx].astype(bool), pok[idx]
    if not pok.all():
        table = (
            _hbr_pass(lake, layout.data_key(ws, "bin_records", m.lot_id, m.job_id)) if "bin_records" in m.tables else {}
        )
        if table is None:
            return False
        for i in np.flatnonzero(~pok):
            passed[i] = bool(hbok[i]) and bool(table.get(int(hb[i])))
    seq, _ = _np(t.column("part_seq"), -1)
    return {
        "job_id": m.job_id,
        "order": m.order,
        "lot": lot,
        "die": f"{sublot or ''}\x00{test_code or ''}",
        "wafer": wafer,
        "x": x[idx],
        "y": y[idx],
        "hard_bin": hb,
        "hard_bin_valid": hbok,
        "site_num": site[idx],
        "passed": passed,
        "part_seq": seq[idx],
    }


def _finals(cols: list[dict], job_id: str, policy: str) -> Dies | None:
    """The final dies of the wafers ``job_id`` tested among every member's rows; None when two are at one place."""
    if not cols:
        return {}
    tested = {w for c in cols if c["job_id"] == job_id for w in c["wafer"].tolist()}
    cat = {k: np.concatenate([c[k] for c in cols]) for k in cols[0] if k not in ("job_id", "order", "die", "lot")}
    order = np.concatenate([np.full(len(c["x"]), c["order"], np.int64) for c in cols])
    dies = sorted({c["die"] for c in cols})
    die = np.concatenate([np.full(len(c["x"]), dies.index(c["die"]), np.int64) for c in cols])
    wafers = sorted(tested)
    code = {w: i for i, w in enumerate(wafers)}
    wcode = np.fromiter((code.get(w, -1) for w in cat["wafer"].tolist()), np.int64, len(cat["wafer"]))
    sel = wcode >= 0
    cat = {k: v[sel] for k, v in cat.items()}
    order, die, wcode = order[sel], die[sel], wcode[sel]
    # within a die (die, wafer, x, y), ascending by the policy's preference: the last row is the final one
    bin_key = np.where(cat["hard_bin_valid"], cat["hard_bin"], -1) if policy == "highest_bin" else np.zeros_like(order)
    srt = np.lexsort((cat["part_seq"], order, bin_key, cat["x"], cat["y"], wcode, die))
    keys = np.stack((die[srt], wcode[srt], cat["y"][srt], cat["x"][srt]))
    last = np.ones(len(srt), bool)
    last[:-1] = (keys[:, 1:] != keys[:, :-1]).any(axis=0)
    fin = srt[last]
    # the view orders by (wafer, y, x): two final dies at one place (different sublots) have no order
    out_order = fin[np.lexsort((cat["x"][fin], cat["y"][fin], wcode[fin]))]
    wo, yo, xo = wcode[out_order], cat["y"][out_order], cat["x"][out_order]
    if len(out_order) > 1 and bool(((wo[1:] == wo[:-1]) & (yo[1:] == yo[:-1]) & (xo[1:] == xo[:-1])).any()):
        return None
    cuts = np.flatnonzero(np.diff(wo)) + 1
    out: Dies = {}
    for part in np.split(out_order, cuts):
        if not len(part):
            continue
        out[wafers[int(wcode[part[0]])]] = {
            "x": cat["x"][part],
            "y": cat["y"][part],
            "hard_bin": cat["hard_bin"][part],
            "site_num": cat["site_num"][part],
            "passed": cat["passed"][part],
        }
    return out
