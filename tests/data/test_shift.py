"""The domain-shift check: the lookup-table proxy, and its matrix on hand-built domains."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from mscl.data.build import CaseJob, build_dataset
from mscl.data.manifest import DatasetManifest, PreprocessingRecord, SourceRecord
from mscl.data.shift import BINS, CaseCounts, case_dice, fit_classifier, shift_matrix
from mscl.data.writer import PreparedCase
from mscl.errors import DataError

SHAPE = (16, 16, 16)
BACKGROUND = -5.0
SUBJECTS = 5


def make_case(subject: str, center: str, contrast: str, seed: int) -> PreparedCase:
    """A noisy box of brain in a constant background with a 3-voxel cube lesion: bright for FLAIR; for
    T2w dark, with a bright cube of fluid (not lesion) elsewhere."""
    rng = np.random.default_rng(seed)
    image = np.full(SHAPE, BACKGROUND, np.float32)
    image[2:14, 2:14, 2:14] = rng.normal(0.0, 0.3, (12, 12, 12))
    label = np.zeros(SHAPE, np.float32)
    x, y, z = rng.integers(3, 7, size=3)
    label[x : x + 3, y : y + 3, z : z + 3] = 1.0
    if contrast == "FLAIR":
        image[label > 0] += 3.0
    else:
        image[label > 0] -= 2.5
        u, v, w = rng.integers(9, 11, size=3)
        image[u : u + 3, v : v + 3, w : w + 3] += 3.0
    return PreparedCase(subject, center, contrast, image, label, (1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def domains_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Center Alpha (FLAIR: bright lesions; T2w: dark lesions and bright fluid) and center Beta (FLAIR,
    made like Alpha's); 5 subjects each, 2 of them in test."""
    jobs = []
    for center, contrasts in (("Alpha", ("FLAIR", "T2w")), ("Beta", ("FLAIR",))):
        for s in range(SUBJECTS):
            for contrast in contrasts:
                kwargs = {
                    "subject": f"{center}{s}",
                    "center": center,
                    "contrast": contrast,
                    "seed": len(jobs),
                }
                jobs.append(CaseJob(f"{center}{s}", center, contrast, make_case, kwargs))
    out = tmp_path_factory.mktemp("shift") / "dataset"
    build_dataset(
        jobs,
        out=out,
        name="domains",
        fmt="zarr",
        source=SourceRecord(kind="synthetic", generator="shift test"),
        preprocessing=PreprocessingRecord(
            spacing=(1.0, 1.0, 1.0), crop="none", intensity_normalization="none"
        ),
        test_fraction=0.4,
        split_seed=0,
        quiet=True,
    )
    return out


def test_a_model_of_each_contrast_works_at_home_and_fails_on_the_other(domains_dataset: Path) -> None:
    matrix = shift_matrix(domains_dataset)
    assert matrix.domains == ["Alpha FLAIR", "Alpha T2w", "Beta"]
    assert matrix.train_cases == [3, 3, 3] and matrix.test_cases == [2, 2, 2]
    flair, t2w, beta = range(3)
    for domain in (flair, t2w, beta):
        assert matrix.dice[domain, domain] > 0.8
    assert matrix.dice[flair, t2w] < 0.2 and matrix.dice[t2w, flair] < 0.2 and matrix.dice[t2w, beta] < 0.2
    assert matrix.gap()[t2w] > 0.6
    np.testing.assert_allclose(matrix.from_others()[t2w], matrix.dice[[flair, beta], t2w].mean())
    np.testing.assert_allclose(matrix.gap(), matrix.in_domain() - matrix.from_others())


def test_identical_domains_give_near_identical_rows(domains_dataset: Path) -> None:
    matrix = shift_matrix(domains_dataset)
    np.testing.assert_allclose(matrix.dice[0], matrix.dice[2], atol=0.1)


def test_the_check_is_deterministic(domains_dataset: Path) -> None:
    first, second = shift_matrix(domains_dataset), shift_matrix(domains_dataset)
    np.testing.assert_array_equal(first.dice, second.dice)
    assert first.to_dict() == second.to_dict()


def test_domains_without_cases_show_nan_and_dashes(domains_dataset: Path, tmp_path: Path) -> None:
    """Beta lists a contrast with no cases (no row, no column); Alpha T2w has no test cases (no column)."""
    copy = tmp_path / "dataset"
    shutil.copytree(domains_dataset, copy)
    manifest = DatasetManifest.read(copy)
    centers = [
        c.model_copy(update={"contrasts": [*c.contrasts, "PD"]}) if c.name == "Beta" else c
        for c in manifest.centers
    ]
    cases = [c.model_copy(update={"split": "train"}) if c.contrast == "T2w" else c for c in manifest.cases]
    manifest.model_copy(update={"centers": centers, "cases": cases}).write(copy)

    matrix = shift_matrix(copy)
    assert matrix.domains == ["Alpha FLAIR", "Alpha T2w", "Beta FLAIR", "Beta PD"]
    assert matrix.train_cases == [3, 5, 3, 0] and matrix.test_cases == [2, 0, 2, 0]
    assert np.isnan(matrix.dice[3]).all() and np.isnan(matrix.dice[:, 3]).all()
    assert np.isnan(matrix.dice[:, 1]).all() and not np.isnan(matrix.dice[1, [0, 2]]).any()
    assert math.isnan(matrix.thresholds[3]) and math.isnan(matrix.in_domain()[1])
    assert matrix.rows()[3] == ["Beta PD", "-", "-", "-", "-"]
    assert matrix.summary_rows()[3] == ["Beta PD", "0/0", "-", "-", "-"]
    payload = json.loads(json.dumps(matrix.to_dict(), allow_nan=False))
    assert payload["dice"][3] == [None] * 4 and payload["dice"][0][1] is None


def test_a_case_of_an_unlisted_domain_is_refused(domains_dataset: Path, tmp_path: Path) -> None:
    copy = tmp_path / "dataset"
    shutil.copytree(domains_dataset, copy)
    manifest = DatasetManifest.read(copy)
    centers = [c.model_copy(update={"contrasts": ["FLAIR"]}) for c in manifest.centers]
    manifest.model_copy(update={"centers": centers}).write(copy)
    with pytest.raises(DataError, match="T2w of center 'Alpha'"):
        shift_matrix(copy)


def test_a_missing_directory_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        shift_matrix(tmp_path / "absent")


def _counts(rng: np.random.Generator, lesion_scale: int) -> CaseCounts:
    return CaseCounts(
        lesion=rng.poisson(lesion_scale * rng.random(BINS * BINS) ** 8),
        other=rng.poisson(3 * rng.random(BINS * BINS)),
        missed=int(rng.integers(0, 3)),
    )


def test_the_fitted_threshold_is_the_best_of_every_candidate() -> None:
    rng = np.random.default_rng(0)
    cases = [_counts(rng, 20) for _ in range(3)]
    model = fit_classifier(cases)
    direct = [
        np.mean([case_dice(model.posterior >= t, case) for case in cases])
        for t in [*np.unique(model.posterior), 1.0]
    ]
    assert model.train_dice == pytest.approx(max(direct))
    assert model.mean_dice(cases) == pytest.approx(model.train_dice)
    assert 0.0 < model.threshold < 1.0


def test_dice_is_one_when_mask_and_label_are_empty() -> None:
    empty = CaseCounts(np.zeros(BINS * BINS, np.int64), np.ones(BINS * BINS, np.int64), 0)
    assert case_dice(np.zeros(BINS * BINS, bool), empty) == 1.0
    assert case_dice(np.ones(BINS * BINS, bool), empty) == 0.0
    model = fit_classifier([empty])
    assert model.threshold == 1.0 and model.train_dice == 1.0
