"""Analytics on the Parquet lake: statistics computed from SQL aggregates."""
