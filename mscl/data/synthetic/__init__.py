"""The synthetic multi-center MS lesion dataset (``mscl prepare --synthetic``).

``profiles`` holds the settings (importable without numpy or torch); ``generator`` builds the dataset.
"""
