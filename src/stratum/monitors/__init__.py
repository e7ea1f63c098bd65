"""Monitors: rules over the lake that fire findings (``stratum.monitors.service``). This module stays light:
``any_ingest_monitor`` answers the question every local publish asks without importing the monitor models."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stratum.storage.metadata import MetadataStore


def ingest_index(ws: str) -> str:
    """The gsi2 partition holding a workspace's active on-ingest monitors (written by ``MonitorStore``)."""
    return f"WS#{ws}#MON#INGEST"


def any_ingest_monitor(meta: MetadataStore, ws: str) -> bool:
    """Whether the workspace has an active monitor that runs on ingest."""
    return bool(meta.query(ingest_index(ws), index="gsi2", limit=1).items)
