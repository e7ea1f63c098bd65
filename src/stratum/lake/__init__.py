"""The Parquet lake: stored tables, path layout, writer."""
