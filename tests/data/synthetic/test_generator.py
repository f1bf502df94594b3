"""The generated dataset directory: contents, pairing of contrasts, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mscl.config import ExperimentConfig, load_config
from mscl.data.dataset import PreparedDataset
from mscl.data.manifest import DatasetManifest
from mscl.data.shift import shift_matrix
from mscl.data.synthetic.generator import GENERATOR, generate_dataset, plan_jobs, subject_count
from mscl.errors import ConfigError

PAPER = {"BWH": 80, "Karo": 51, "Milan": 47, "Rennes": 51, "NIH": 28, "Montp": 13, "UCSF": 12, "AMU": 8}


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("tiny", dict.fromkeys(PAPER, 3)),
        (
            "quick",
            {"BWH": 20, "Karo": 13, "Milan": 12, "Rennes": 13, "NIH": 7, "Montp": 3, "UCSF": 3, "AMU": 3},
        ),
        ("paper", PAPER),
    ],
)
def test_subject_counts_per_preset(preset: str, expected: dict[str, int]) -> None:
    synthetic = load_config(preset).synthetic
    assert {center: subject_count(n, synthetic) for center, n in PAPER.items()} == expected


def test_plan_has_two_cases_per_karo_subject_and_t2w_only_for_milan(tiny_config: ExperimentConfig) -> None:
    jobs = plan_jobs(tiny_config)
    assert len(jobs) == 8 * 3 + 3
    karo = [j for j in jobs if j.center == "Karo"]
    assert sorted({j.contrast for j in karo}) == ["FLAIR", "T2w"] and len({j.subject for j in karo}) == 3
    assert {j.contrast for j in jobs if j.center == "Milan"} == {"T2w"}


def test_unknown_center_is_refused(tiny_config: ExperimentConfig) -> None:
    with pytest.raises(ConfigError, match="centers: unknown center"):
        plan_jobs(tiny_config, ["BWH", "Oz"])


def test_manifest_records_the_generator(
    tiny_manifest: DatasetManifest, tiny_config: ExperimentConfig
) -> None:
    source = tiny_manifest.source
    assert (source.kind, source.generator, source.seed) == (
        "synthetic",
        GENERATOR,
        tiny_config.synthetic.seed,
    )
    assert source.generator_version
    assert set(source.profiles["centers"]) == set(PAPER)
    assert source.profiles["centers"]["Milan"]["contrasts"]["T2w"]["csf"] > 2
    assert tiny_manifest.center_names() == list(PAPER)
    assert tiny_manifest.preprocessing.spacing == (6.0, 6.0, 6.0)


def test_every_case_has_lesions_soft_labels_and_zscored_brain(tiny_dataset: Path) -> None:
    with PreparedDataset(tiny_dataset) as dataset:
        for case in dataset.manifest.cases:
            image, label = dataset.load(case.id)
            assert image.dtype == label.dtype == np.float16
            assert case.lesion_voxels >= 1, case.id
            assert label.min() >= 0.0 and label.max() <= 1.0
            assert np.isfinite(image).all()
            brain = image != image.flat[0]  # background is constant after the linear normalisation
            assert abs(float(image[brain].astype(np.float32).mean())) < 0.1, case.id


def test_contrasts_of_a_subject_share_lesions_and_split(tiny_dataset: Path) -> None:
    with PreparedDataset(tiny_dataset) as dataset:
        flair, t2w = dataset.case("sub-karo001_FLAIR"), dataset.case("sub-karo001_T2w")
        assert flair.label_sha256 == t2w.label_sha256 and flair.split == t2w.split
        assert flair.image_sha256 != t2w.image_sha256


def test_same_seed_same_bytes_with_two_workers_other_seed_differs(
    tmp_path: Path, tiny_config: ExperimentConfig, tiny_manifest: DatasetManifest
) -> None:
    centers = ["Karo", "AMU"]
    parallel = tiny_config.model_copy(deep=True)
    parallel.data.workers = 2
    again = generate_dataset(tmp_path / "again", parallel, quiet=True, centers=centers)
    reference = {
        c.id: (c.image_sha256, c.label_sha256, c.split) for c in tiny_manifest.cases if c.center in centers
    }
    assert {c.id: (c.image_sha256, c.label_sha256, c.split) for c in again.cases} == reference

    other = tiny_config.model_copy(deep=True)
    other.synthetic.seed = 1
    changed = generate_dataset(tmp_path / "other", other, quiet=True, centers=["AMU"])
    assert all(c.image_sha256 != reference[c.id][0] for c in changed.cases)
    assert all(c.label_sha256 != reference[c.id][1] for c in changed.cases)


def test_a_profile_change_moves_only_its_center_and_a_new_center_comes_from_the_config(
    tmp_path: Path, tiny_manifest: DatasetManifest
) -> None:
    oslo = (
        "{paper_subjects: 3, contrasts: {FLAIR: {csf: 0.3, gm: 1.2, lesion: 2.0}},"
        " lesion_count: 4, lesion_median_ml: 0.3}"
    )
    cfg = load_config(
        "tiny", overrides=["synthetic.centers.Karo.noise=0.09", f"synthetic.centers.Oslo={oslo}"]
    )
    manifest = generate_dataset(tmp_path / "changed", cfg, quiet=True, centers=["Karo", "AMU", "Oslo"])
    reference = {c.id: c.image_sha256 for c in tiny_manifest.cases}
    changed = {c.id: c.image_sha256 for c in manifest.cases}
    assert all(changed[i] == reference[i] for i in changed if i.startswith("sub-amu"))
    assert all(changed[i] != reference[i] for i in changed if i.startswith("sub-karo"))
    assert manifest.center_names() == ["Karo", "AMU", "Oslo"]
    assert manifest.source.profiles["centers"]["Oslo"]["lesion_count"] == 4
    assert manifest.source.profiles["centers"]["Karo"]["noise"] == 0.09


def test_an_annotation_style_moves_its_centers_labels_and_not_its_images(
    tmp_path: Path, tiny_manifest: DatasetManifest
) -> None:
    cfg = load_config("tiny", overrides=["synthetic.centers.AMU.annotation.border_mm=1.5"])
    manifest = generate_dataset(tmp_path / "wider", cfg, quiet=True, centers=["AMU"])
    reference = {c.id: c for c in tiny_manifest.cases}
    for case in manifest.cases:
        assert case.image_sha256 == reference[case.id].image_sha256
        assert case.label_sha256 != reference[case.id].label_sha256
        assert case.lesion_ml > reference[case.id].lesion_ml
    assert manifest.source.profiles["centers"]["AMU"]["annotation"]["border_mm"] == 1.5


def test_the_centers_differ_as_their_profiles_say(tiny_dataset: Path) -> None:
    matrix = shift_matrix(tiny_dataset)
    assert float(np.nanmean(matrix.gap())) >= 0.15  # a model from elsewhere loses on every center
    rennes, amu = matrix.domains.index("Rennes"), matrix.domains.index("AMU")
    assert matrix.dice[rennes, amu] <= 0.2  # a bright-lesion rule misses AMU's faint lesions
    assert matrix.dice[amu, amu] >= 0.5
