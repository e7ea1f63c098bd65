"""Storage ports (object store, metadata store) and their adapters."""
