"""Exports of any size (Parquet, CSV, Arrow) from guarded queries."""
