"""Object keys of the lake. The same keys are used on S3 and in the local directory.

    workspaces/<ws>/lake/<table>/lot=<lot>/job=<job_id>/part-00000.parquet
    workspaces/<ws>/lake/wafer_patterns_final/lot=<lot>/job=<snapshot job_id>/wpat-<hash>.parquet
                                        (a lake wafer's stored classification, ``stratum.lake.final_patterns``)
    workspaces/<ws>/lake/_manifests/lot=<lot>/job=<job_id>.json
    workspaces/<ws>/lake/_stats/lot=<lot>/job=<snapshot job_id>/policy=<policy>/stats-v<N>.parquet
                                                    (a snapshot's sufficient statistics, ``stratum.lake.snapstats``)
    workspaces/<ws>/exports/<export_id>/<file>      (outside the lake: SQL cannot read exports)

``<lot>`` is the lot id percent-encoded (everything but letters, digits, ``-``, ``_`` and inner ``.``),
so any lot id maps to one safe path segment and back.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

WORKSPACE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class InvalidWorkspace(ValueError):
    pass


def check_workspace(ws: str) -> str:
    if not isinstance(ws, str) or not WORKSPACE_RE.match(ws):
        raise InvalidWorkspace(
            f"invalid workspace name {ws!r}: use 1-63 lower-case letters, digits, '-' or '_', starting with a "
            "letter or digit"
        )
    return ws


def encode_lot(lot_id: str) -> str:
    enc = quote(lot_id, safe="-_.")
    if enc.startswith("."):
        enc = "%2E" + enc[1:]
    return enc or "%00"


def workspace_root(ws: str) -> str:
    return f"workspaces/{check_workspace(ws)}/"


def lake_root(ws: str) -> str:
    return f"{workspace_root(ws)}lake/"


def table_root(ws: str, table: str) -> str:
    return f"{lake_root(ws)}{table}/"


def job_dir(ws: str, table: str, lot_id: str, job_id: str) -> str:
    return f"{table_root(ws, table)}lot={encode_lot(lot_id)}/job={job_id}/"


def data_key(ws: str, table: str, lot_id: str, job_id: str, n: int = 0) -> str:
    return f"{job_dir(ws, table, lot_id, job_id)}part-{n:05d}.parquet"


def final_patterns_key(ws: str, lot_id: str, job_id: str, wafer_id: str, classifier_version: str) -> str:
    """One object per (lot, wafer, snapshot job, classifier version); wafer and version hashed into a safe name."""
    h = hashlib.sha256(f"{wafer_id}\x00{classifier_version}".encode()).hexdigest()[:32]
    return f"{job_dir(ws, 'wafer_patterns_final', lot_id, job_id)}wpat-{h}.parquet"


def manifest_key(ws: str, lot_id: str, job_id: str) -> str:
    return f"{lake_root(ws)}_manifests/lot={encode_lot(lot_id)}/job={job_id}.json"


def stats_key(ws: str, lot_id: str, snapshot_job_id: str, policy: str, version: int) -> str:
    return (
        f"{lake_root(ws)}_stats/lot={encode_lot(lot_id)}/job={snapshot_job_id}/policy={policy}/stats-v{version}.parquet"
    )


def exports_prefix(ws: str) -> str:
    return f"{workspace_root(ws)}exports/"


def export_key(ws: str, export_id: str, filename: str) -> str:
    return f"{exports_prefix(ws)}{export_id}/{filename}"
