"""Where vectors go: the on-disk format, the writer, the per-model locks, consolidation."""
