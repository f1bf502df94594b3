"""mscl: continual learning of multiple-sclerosis lesion segmentation across hospitals."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mscl")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
