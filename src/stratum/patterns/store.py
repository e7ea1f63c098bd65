"""Stored classifications of lake wafers (metadata store): one item per (workspace, lot, wafer, snapshot
job, classifier version), written on publish and by ``POST /v1/classify``/``/v1/batch`` on a lake wafer.

    pk  WS#<ws>#WPAT
    sk  <lot>/<wafer>/<job_id>/<classifier_version>     (lot and wafer percent-encoded)

The item keeps the rows the SQL relation ``wafer_pattern_history`` shows (public_schema); the view
``wafer_patterns`` picks, per wafer, the newest snapshot job that classified it and that job's most recently
classified version. A second classification with the same key writes nothing (first write wins).
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from stratum.storage.metadata import ABSENT, ConditionFailed, MetadataStore

ROW_COLUMNS = (
    "lot_id",
    "wafer_id",
    "job_id",
    "class_id",
    "family",
    "location",
    "severity",
    "confidence",
    "classifier_version",
    "refinement",
    "rank",
    "die_count",
    "summary",
    "publish_seq",
    "classified_at",
)


def _enc(s: str) -> str:
    return quote(s, safe="-_.") or "%00"


def pattern_rows(result: dict, wafer_dies: int) -> list[tuple]:
    """(class_id, family, location, severity, refinement, confidence, die_count, summary) per detected
    pattern of a classify answer, by rank; one 'none' row when there is none (as the ingest rows)."""
    found = [
        (
            p["class_id"],
            p["family"],
            p["location"],
            p["severity"],
            p["refinement"],
            p["confidence"],
            p["explanation"]["region"]["die_count"],
            p["explanation"]["summary"],
        )
        for p in result["pattern_classes"]
    ]
    return found or [("none/global/low", "none", "global", "low", None, None, wafer_dies, "no spatial pattern")]


class PatternStore:
    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta

    @staticmethod
    def _pk(ws: str) -> str:
        return f"WS#{ws}#WPAT"

    @staticmethod
    def _sk(lot_id: str, wafer_id: str, job_id: str, version: str) -> str:
        return f"{_enc(lot_id)}/{_enc(wafer_id)}/{job_id}/{_enc(version)}"

    def get(self, ws: str, lot_id: str, wafer_id: str, job_id: str, version: str) -> dict | None:
        """The stored item (lot_id, wafer_id, job_id, publish_seq, classifier_version, classified_at, rows)."""
        it = self.meta.get(self._pk(ws), self._sk(lot_id, wafer_id, job_id, version))
        return None if it is None else dict(it.data)

    def save(self, ws: str, lot_id: str, wafer_id: str, job_id: str, publish_seq: int, result: dict, dies: int) -> bool:
        """Store a classify answer for a lake wafer; False when this (lot, wafer, job, version) is stored already."""
        version = result["classifier_version"]
        sk = self._sk(lot_id, wafer_id, job_id, version)
        data = {
            "lot_id": lot_id,
            "wafer_id": wafer_id,
            "job_id": job_id,
            "publish_seq": int(publish_seq),
            "classifier_version": version,
            "classified_at": datetime.now(UTC).isoformat(),
            "rows": [list(r) for r in pattern_rows(result, dies)],
        }
        try:
            self.meta.put(self._pk(ws), sk, data, expect=ABSENT)
        except ConditionFailed:
            return False
        return True

    def rows(self, ws: str, lot_ids: set[str] | None = None) -> list[tuple]:
        """Rows of the SQL relation ``wafer_pattern_history`` (ROW_COLUMNS), of some lots or all."""
        prefixes = [""] if lot_ids is None else [f"{_enc(lot)}/" for lot in sorted(lot_ids)]
        out: list[tuple] = []
        for prefix in prefixes:
            cursor = None
            while True:
                page = self.meta.query(self._pk(ws), prefix=prefix, limit=500, cursor=cursor)
                for it in page.items:
                    d = it.data
                    at = datetime.fromisoformat(d["classified_at"])
                    for rank, (cid, fam, loc, sev, ref, conf, n, summ) in enumerate(d["rows"], 1):
                        out.append(
                            (
                                d["lot_id"],
                                d["wafer_id"],
                                d["job_id"],
                                cid,
                                fam,
                                loc,
                                sev,
                                conf,
                                d["classifier_version"],
                                ref,
                                rank,
                                n,
                                summ,
                                d["publish_seq"],
                                at,
                            )
                        )
                cursor = page.cursor
                if cursor is None:
                    break
        return out
