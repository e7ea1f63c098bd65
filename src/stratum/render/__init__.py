"""Rendering of lake data to images (wafer maps) without plotting libraries."""
