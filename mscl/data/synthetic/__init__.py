"""The synthetic multi-center MS lesion dataset (``mscl prepare --synthetic``)."""

from mscl.data.synthetic.generator import generate_dataset, plan_jobs

__all__ = ["generate_dataset", "plan_jobs"]
