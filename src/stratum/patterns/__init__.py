"""Wafer-map spatial pattern classification: taxonomy, features, deterministic classifier, calibration."""
