"""The MLflow pyfunc flavour of a stage model: a column ``image`` of NIfTI paths or 3D arrays in, masks out.

``mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"image": [path_or_array, ...]}))`` (or
``{"image": path}``) returns one array per row on that row's own grid: the uint8 lesion mask, or with
``params={"output": "probseg"}`` the float32 probabilities; ``params={"threshold": t}`` sets the cut.
An array is taken to be at the model's spacing in RAS (see :meth:`Segmenter.segment`). The model is logged
"from code" (:mod:`mscl.predict.mlflow_model`), so loading it unpickles nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

if TYPE_CHECKING:
    from mscl.predict.segmenter import Segmenter

OUTPUTS = ("mask", "probseg")


class SegmenterModel(PythonModel):
    """Wraps a :class:`~mscl.predict.segmenter.Segmenter` read from the model's artifacts."""

    segmenter: Segmenter

    def load_context(self, context: PythonModelContext) -> None:
        """Build the segmenter from the ``weights`` and ``settings`` artifacts."""
        from mscl.predict.segmenter import Segmenter

        artifacts = context.artifacts
        self.segmenter = Segmenter.from_files(Path(artifacts["weights"]), Path(artifacts["settings"]))

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[np.ndarray]:
        """One mask (or probability map) per row of ``model_input["image"]``."""
        params = params or {}
        output = params.get("output", "mask")
        if output not in OUTPUTS:
            raise ValueError(f"params output={output!r}: use one of {', '.join(OUTPUTS)}")
        results = []
        for item in model_input["image"]:
            if isinstance(item, (str, Path)):
                probabilities = self.segmenter.segment_file(Path(item))
            else:
                probabilities = self.segmenter.segment(np.asarray(item, dtype=np.float32))
            keep = output == "probseg"
            results.append(
                probabilities if keep else self.segmenter.mask(probabilities, params.get("threshold"))
            )
        return results
