"""mscl: continual learning of multiple-sclerosis lesion segmentation across hospitals."""

__version__ = "0.1.0"  # the package version (pyproject.toml reads it from here)

__all__ = ["__version__"]
