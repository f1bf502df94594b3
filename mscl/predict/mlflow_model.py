"""The code MLflow runs to load a stage model ("models from code"): nothing but the pyfunc class."""

from mlflow.models import set_model

from mscl.predict.pyfunc import SegmenterModel

set_model(SegmenterModel())
