"""Export formats: (file extension, media type), importable without duckdb or pyarrow (the API's import path
reads them; ``service`` writes them)."""

from __future__ import annotations

from typing import Literal

Format = Literal["parquet", "csv", "arrow"]
FORMATS: dict[str, tuple[str, str]] = {
    "parquet": ("parquet", "application/vnd.apache.parquet"),
    "csv": ("csv", "text/csv"),
    "arrow": ("arrow", "application/vnd.apache.arrow.file"),
}
