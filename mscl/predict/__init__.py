"""Segmenting new scans with a study's stage model (``mscl predict`` and the MLflow pyfunc model)."""
