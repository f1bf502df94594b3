"""Data: dataset manifest, sources, preprocessing, volume stores, synthetic generator, patch sampling."""
