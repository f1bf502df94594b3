"""Per-case segmentation metrics: one contract (:mod:`mscl.metrics.base`), many registered metrics."""
