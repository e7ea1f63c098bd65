"""Stratum: STDF test data into a queryable Parquet lake."""

__version__ = "0.1.0"
PARSER_VERSION = "stratum-stdf/1"
