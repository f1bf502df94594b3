"""``mscl bench``: throughput of the training pipeline, model alone versus end to end, and what it implies.

:func:`run_bench` measures on any device; :mod:`mscl.bench.projection` turns a measured rate into the wall
time of a full paper-preset replay run.
"""

from mscl.bench.report import BenchReport
from mscl.bench.runner import run_bench

__all__ = ["BenchReport", "run_bench"]
