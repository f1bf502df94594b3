"""What a stage model needs besides its weights: the network, preprocessing and inference settings.

Written as ``settings.json`` inside every stage's MLflow model; no torch import, so it is cheap to read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from mscl.config import DataConfig, EvalConfig, ExperimentConfig, IntTriple, ModelConfig
from mscl.data.manifest import DatasetManifest
from mscl.errors import TrackingError
from mscl.schema import StrictModel

SETTINGS_FORMAT = 1


class SegmenterSettings(StrictModel):
    """The network, how scans are preprocessed, how windows are inferred, and what the model was trained on.

    ``data`` holds the training configuration's preprocessing with the spacing of the dataset actually
    trained on; ``dataset_preprocessing`` is that dataset's own record (``dataset.json``).
    """

    format: int = SETTINGS_FORMAT
    model: ModelConfig
    data: DataConfig
    patch_size: IntTriple
    precision: Literal["auto", "bf16", "fp32"]
    eval: EvalConfig
    contrasts: list[str]
    centers: list[str]
    run_id: str
    stage: int
    dataset_preprocessing: dict[str, Any]

    @classmethod
    def of_stage(
        cls,
        cfg: ExperimentConfig,
        datasets: Mapping[str, DatasetManifest],
        centers: list[str],
        run_id: str,
        stage: int,
    ) -> SegmenterSettings:
        """The settings of a stage trained on ``centers``; ``datasets`` maps each to the dataset it came
        from (a study's one, or for ``mscl extend`` the study's and the extension's, preprocessed alike)."""
        record = datasets[centers[-1]].preprocessing
        contrasts = sorted(
            {
                c
                for name in centers
                for center in datasets[name].centers
                if center.name == name
                for c in center.contrasts
            }
        )
        return cls(
            model=cfg.model,
            data=cfg.data.model_copy(update={"spacing": record.spacing}),
            patch_size=cfg.train.patch_size,
            precision=cfg.train.precision,
            eval=cfg.eval,
            contrasts=contrasts,
            centers=list(centers),
            run_id=run_id,
            stage=stage,
            dataset_preprocessing=record.model_dump(mode="json"),
        )

    def write(self, path: Path) -> Path:
        """Save as JSON; returns ``path``."""
        path.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> SegmenterSettings:
        """Read ``settings.json`` of a model.

        Raises:
            TrackingError: the file is missing, not JSON, or not settings of this format.
        """
        try:
            return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrackingError(f"{path}: not the settings of an mscl model ({first})") from None
