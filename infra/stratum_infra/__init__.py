"""Stratum CDK constructs: one per capability (storage, ingest, api, catalog, monitors)."""

from .api import ApiConstruct
from .catalog import CatalogConstruct
from .ingest import IngestConstruct
from .monitors import MonitorsConstruct
from .stack import StratumConfig, StratumStack
from .storage import StorageConstruct

__all__ = [
    "ApiConstruct",
    "CatalogConstruct",
    "IngestConstruct",
    "MonitorsConstruct",
    "StorageConstruct",
    "StratumConfig",
    "StratumStack",
]
