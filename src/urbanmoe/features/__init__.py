"""Per-region features derived from the raw modalities (text descriptions, embeddings)."""
