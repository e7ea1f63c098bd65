"""Synthetic STDF: the record writer, the realistic lot generator and the benchmark-file writer."""
