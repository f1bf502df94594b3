"""Data: dataset manifest, sources, preprocessing, volume stores, the synthetic generator (prepare time)."""
