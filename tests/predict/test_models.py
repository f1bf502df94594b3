"""Stage models in MLflow: one pyfunc model per stage run, the final one registered under an alias."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mscl.errors import TrackingError
from mscl.tracking import tree
from mscl.tracking.checkpoints import get_run, stage_runs
from mscl.tracking.models import resolve_model
from tests.predict.conftest import Study
from tests.predict.scans import write_scan


def test_every_stage_run_has_its_model_with_signature_and_settings(study: Study) -> None:
    client = MlflowClient(study.uri)
    stages = stage_runs(client, get_run(client, study.parent_run_id))
    assert [r.info.run_name for r in stages] == ["stage1-Big", "stage2-Mid", "stage3-Small"]
    for number, run in enumerate(stages, start=1):
        model = client.get_logged_model(run.data.tags[tree.MODEL_ID_TAG])
        assert model.source_run_id == run.info.run_id
        assert model.tags[tree.STAGE_TAG] == str(number)
        assert run.data.metrics[tree.time_key(tree.MODEL_TIME_PART)] > 0
        info = mlflow.models.get_model_info(f"models:/{model.model_id}")
        assert info.signature.inputs.input_names() == ["image"]
        assert {p.name for p in info.signature.params.params} == {"threshold", "output"}
    last = mlflow.artifacts.download_artifacts(f"models:/{stages[-1].data.tags[tree.MODEL_ID_TAG]}")
    settings = (Path(last) / "artifacts" / "settings.json").read_text()
    assert '"centers": [\n    "Big",\n    "Mid",\n    "Small"\n  ]' in settings  # the carried weights saw all


def test_the_alias_resolves_to_the_final_stage_model(study: Study) -> None:
    client = MlflowClient(study.uri)
    final = stage_runs(client, get_run(client, study.parent_run_id))[-1]
    ref = resolve_model(client, "models:/blobs@champion")
    assert ref.model_id == final.data.tags[tree.MODEL_ID_TAG] and ref.run_id == final.info.run_id
    assert resolve_model(client, "models:/blobs/1") == ref
    assert resolve_model(client, study.parent_run_id) == ref
    assert resolve_model(client, study.parent_run_id, stage=1).run_id != final.info.run_id


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("models:/nope@champion", "models:/nope@champion not found"),
        ("models:/blobs@nope", "models:/blobs@nope not found"),
        ("models:/m-00000000000000000000000000000000", "not found"),
        ("0123456789abcdef0123456789abcdef", "not found"),
    ],
)
def test_unknown_models_are_one_line_errors(study: Study, ref: str, message: str) -> None:
    with pytest.raises(TrackingError, match=message):
        resolve_model(MlflowClient(study.uri), ref)


def test_the_pyfunc_model_segments_paths_and_arrays(study: Study, tmp_path: Path) -> None:
    mlflow.set_tracking_uri(study.uri)
    model = mlflow.pyfunc.load_model("models:/blobs@champion")
    scan = write_scan(tmp_path / "scan.nii.gz", "lps")
    [mask] = model.predict({"image": str(tmp_path / "scan.nii.gz")})
    assert mask.shape == scan.shape and mask.dtype == np.uint8
    array = np.asarray(scan.get_fdata(), dtype=np.float32)[:30, :30, :20]
    [probseg] = model.predict(pd.DataFrame({"image": [array]}), params={"output": "probseg"})
    assert probseg.shape == array.shape and probseg.dtype == np.float32
    assert probseg.min() >= 0.0 and probseg.max() <= 1.0
