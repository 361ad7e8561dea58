"""The predictor: run folders -> networks -> probabilities -> masks on the original T2 grid."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from inference_builders import IDENTITY, build_case, make_run, oblique_lps_direction, tiny_preprocessing
from torch import nn

from npcseg.inference.postprocessing import PostprocessingConfig, postprocess
from npcseg.inference.predictor import Predictor, load_predictor
from npcseg.inference.runs import TrainedRun, read_run
from npcseg.preprocessing.cache import load_preprocessed, preprocess_cohort
from npcseg.preprocessing.pipeline import PreprocessedCase, preprocess_case, to_original_grid

NO_POSTPROCESSING = PostprocessingConfig(mode="none")


def _random_case(num_slices: int = 5, sequences: tuple[str, ...] = ("t1", "t2"), seed: int = 0) -> PreprocessedCase:
    image = np.random.default_rng(seed).random((len(sequences), num_slices, 64, 64), dtype=np.float32)
    return PreprocessedCase("case001", image, None, {"sequences": list(sequences)})


@pytest.mark.parametrize("direction", [IDENTITY, oblique_lps_direction()], ids=["axial", "oblique-lps"])
def test_mask_lies_exactly_on_the_original_t2_grid(tmp_path: Path, direction: tuple[float, ...]) -> None:
    case = build_case(tmp_path / "cohort" / "cases" / "case001", direction=direction, size_xyz=(64, 48, 5))
    make_run(tmp_path / "run")
    prediction = load_predictor([tmp_path / "run"]).predict_case(case)
    t2 = sitk.ReadImage(str(case.images["t2"]))
    for image in (prediction.mask, prediction.probability):
        assert image.GetSize() == t2.GetSize()
        assert image.GetSpacing() == t2.GetSpacing()
        assert image.GetOrigin() == t2.GetOrigin()
        assert image.GetDirection() == t2.GetDirection()
    assert prediction.mask.GetPixelID() == sitk.sitkUInt8
    assert prediction.probability.GetPixelID() == sitk.sitkFloat32
    assert set(np.unique(sitk.GetArrayViewFromImage(prediction.mask))) <= {0, 1}
    assert {"register", "preprocess", "network", "to_original", "postprocess", "total"} <= set(prediction.seconds)


@pytest.mark.parametrize("threshold", [0.45, 0.6])
def test_the_runs_threshold_is_applied(tmp_path: Path, threshold: float) -> None:
    case = build_case(tmp_path / "case001")
    make_run(tmp_path / "run", threshold=threshold)
    predictor = load_predictor([tmp_path / "run"], postprocessing=NO_POSTPROCESSING)
    assert predictor.threshold == threshold
    prediction = predictor.predict_case(case)
    probability = sitk.GetArrayFromImage(prediction.probability)
    mask = sitk.GetArrayFromImage(prediction.mask)
    assert 0 < np.count_nonzero(mask) < mask.size  # the threshold splits this untrained network's output
    np.testing.assert_array_equal(mask, (probability >= threshold).astype(np.uint8))


def test_post_processing_runs_on_the_thresholded_original_grid_mask(tmp_path: Path) -> None:
    case = build_case(tmp_path / "case001")
    make_run(tmp_path / "run", threshold=0.6)
    config = PostprocessingConfig(mode="largest_component", connectivity=6)
    prediction = load_predictor([tmp_path / "run"], postprocessing=config).predict_case(case)
    foreground = (sitk.GetArrayFromImage(prediction.probability) >= 0.6).astype(np.uint8)
    expected = postprocess(foreground, config)
    assert np.count_nonzero(expected) < np.count_nonzero(foreground)  # something was removed
    np.testing.assert_array_equal(sitk.GetArrayFromImage(prediction.mask), expected)


def test_predictor_preprocessing_matches_the_cache(tmp_path: Path) -> None:
    """A raw case through the predictor (registration included) gives what the cached copy gives, exactly."""
    config = tiny_preprocessing(registration_source="register")
    case = build_case(tmp_path / "cohort" / "cases" / "case001", direction=oblique_lps_direction())
    preprocess_cohort(tmp_path / "cohort", tmp_path / "cache", config, progress=False)
    cached = load_preprocessed(tmp_path / "cache", "case001")
    make_run(tmp_path / "run", preprocessing=config)
    predictor = load_predictor([tmp_path / "run"])

    fresh = preprocess_case(case, predictor.prediction_preprocessing)
    np.testing.assert_array_equal(fresh.image, cached.image)
    assert fresh.record["normalization"] == cached.record["normalization"]
    assert fresh.record["crop_pad"] == cached.record["crop_pad"]
    assert fresh.record["registration"]["t1"]["source"] == "registered"

    prediction = predictor.predict_case(case)
    from_cache = to_original_grid(predictor.predict_preprocessed(cached), cached.record, is_mask=False)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(prediction.probability), sitk.GetArrayFromImage(from_cache))
    np.testing.assert_array_equal(
        sitk.GetArrayFromImage(prediction.mask), sitk.GetArrayFromImage(predictor.segment(from_cache))
    )


def test_ensemble_of_two_runs_is_the_mean_of_their_probabilities(tmp_path: Path) -> None:
    make_run(tmp_path / "a", seed=1)
    make_run(tmp_path / "b", seed=2)
    case = _random_case()
    first = load_predictor([tmp_path / "a"]).predict_preprocessed(case)
    second = load_predictor([tmp_path / "b"]).predict_preprocessed(case)
    ensemble = load_predictor([tmp_path / "a", tmp_path / "b"]).predict_preprocessed(case)
    assert np.abs(first - second).max() > 0.01  # two different networks
    np.testing.assert_allclose(ensemble, (first + second) / 2, atol=1e-6)
    assert ensemble.shape == (5, 64, 64) and ensemble.dtype == np.float32


def test_probabilities_are_the_sigmoid_of_the_network_in_any_batch_size(tmp_path: Path) -> None:
    network = make_run(tmp_path / "run", seed=3)
    case = _random_case(num_slices=5)
    with torch.inference_mode():
        expected = torch.sigmoid(network(torch.from_numpy(case.image.transpose(1, 0, 2, 3))))[:, 0].numpy()
    for batch_size in (1, 2, 8):
        result = load_predictor([tmp_path / "run"], batch_size=batch_size).predict_preprocessed(case)
        np.testing.assert_allclose(result, expected, atol=1e-5)


def test_flip_tta_averages_with_the_mirrored_prediction_and_is_flip_equivariant(tmp_path: Path) -> None:
    make_run(tmp_path / "run", seed=4)
    plain = load_predictor([tmp_path / "run"])
    tta = load_predictor([tmp_path / "run"], tta_flip=True)
    case = _random_case()
    mirrored = PreprocessedCase(case.case_id, np.ascontiguousarray(case.image[..., ::-1]), None, case.record)
    expected = (plain.predict_preprocessed(case) + plain.predict_preprocessed(mirrored)[..., ::-1]) / 2
    result = tta.predict_preprocessed(case)
    np.testing.assert_allclose(result, expected, atol=1e-6)
    np.testing.assert_allclose(tta.predict_preprocessed(mirrored), result[..., ::-1], atol=1e-6)
    assert np.abs(plain.predict_preprocessed(mirrored) - plain.predict_preprocessed(case)[..., ::-1]).max() > 1e-3


class _MirrorSymmetricNetwork(nn.Module):
    """A convolution whose kernel is symmetric left-right: its output of a mirrored slice is the mirrored output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=5, padding=2)
        with torch.no_grad():
            self.conv.weight.copy_((self.conv.weight + torch.flip(self.conv.weight, dims=(-1,))) / 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images)


def test_flip_tta_changes_nothing_for_a_flip_equivariant_network(tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    run, _ = read_run(tmp_path / "run")
    torch.manual_seed(0)
    network = _MirrorSymmetricNetwork()
    case = _random_case()
    plain = Predictor([run], [network]).predict_preprocessed(case)
    tta = Predictor([run], [network], tta_flip=True).predict_preprocessed(case)
    np.testing.assert_allclose(tta, plain, atol=1e-6)


def test_channels_are_picked_by_name(tmp_path: Path) -> None:
    make_run(tmp_path / "dual", seed=5, preprocessing=tiny_preprocessing(sequences=("t1", "t2", "t1c")))
    make_run(tmp_path / "t2only", seed=6, sequences=("t2",), model="deu-single", preprocessing=tiny_preprocessing())
    case = _random_case(sequences=("t1", "t2", "t1c"))
    reordered = PreprocessedCase(case.case_id, case.image[[2, 1, 0]], None, {"sequences": ["t1c", "t2", "t1"]})
    dual = load_predictor([tmp_path / "dual"])
    np.testing.assert_array_equal(dual.predict_preprocessed(case), dual.predict_preprocessed(reordered))
    only_t2 = PreprocessedCase("case001", case.image[1:2], None, {"sequences": ["t2"]})
    single = load_predictor([tmp_path / "t2only"])
    np.testing.assert_array_equal(single.predict_preprocessed(case), single.predict_preprocessed(only_t2))


def test_a_t2_model_does_not_need_the_other_channels_of_its_cache(tmp_path: Path) -> None:
    preprocessing = tiny_preprocessing(sequences=("t1", "t2", "t1c"), spacing_from="t2")
    make_run(tmp_path / "run", sequences=("t2",), model="deu-single", preprocessing=preprocessing)
    predictor = load_predictor([tmp_path / "run"])
    assert predictor.required_sequences == ("t2",)
    case = build_case(tmp_path / "case001", sequences=("t2",), with_label=False)
    assert predictor.predict_case(case).mask.GetSize() == (64, 64, 6)


def test_wrong_shapes_and_channel_mismatches_are_clear_errors(tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    predictor = load_predictor([tmp_path / "run"])
    with pytest.raises(ValueError, match=r"needs sequence\(s\) \['t1'\]"):
        predictor.predict_preprocessed(_random_case(sequences=("t2", "t1c")))
    with pytest.raises(ValueError, match="one channel per sequence"):
        predictor.predict_preprocessed(
            PreprocessedCase("c", np.zeros((3, 2, 64, 64), np.float32), None, {"sequences": ["t1", "t2"]})
        )
    with pytest.raises(ValueError, match="one channel per sequence"):
        predictor.predict_preprocessed(
            PreprocessedCase("c", np.zeros((2, 64, 64), np.float32), None, {"sequences": ["t1", "t2"]})
        )
    with pytest.raises(ValueError, match="trained on 64 x 64"):
        predictor.predict_preprocessed(
            PreprocessedCase("c", np.zeros((2, 3, 96, 96), np.float32), None, {"sequences": ["t1", "t2"]})
        )


def test_a_2d_image_is_refused_naming_the_file(tmp_path: Path) -> None:
    case = build_case(tmp_path / "case001")
    sitk.WriteImage(sitk.Image([64, 64], sitk.sitkInt16), str(case.images["t2"]))
    make_run(tmp_path / "run")
    with pytest.raises(ValueError, match=r"case001: .*t2\.nii\.gz: sequence 't2' must be a 3D image, got 2D"):
        load_predictor([tmp_path / "run"]).predict_case(case)


def test_a_missing_sequence_is_named_before_any_work(tmp_path: Path) -> None:
    case = build_case(tmp_path / "case007", sequences=("t2",))
    make_run(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match=r"case case007 .*missing sequence\(s\) \['t1'\]"):
        load_predictor([tmp_path / "run"]).predict_case(case)


def test_runs_that_disagree_are_not_ensembled(tmp_path: Path) -> None:
    make_run(tmp_path / "dual")
    make_run(tmp_path / "t2", sequences=("t2",), model="deu-single")
    make_run(tmp_path / "other", preprocessing=tiny_preprocessing(normalization="percentile"))
    make_run(tmp_path / "strict", threshold=0.7)
    with pytest.raises(ValueError, match="must take the same sequences"):
        load_predictor([tmp_path / "dual", tmp_path / "t2"])
    with pytest.raises(ValueError, match=r"preprocessing.yaml differ \(normalization: 'minmax' vs 'percentile'\)"):
        load_predictor([tmp_path / "dual", tmp_path / "other"])
    with pytest.raises(ValueError, match="different thresholds"):
        load_predictor([tmp_path / "dual", tmp_path / "strict"])
    assert load_predictor([tmp_path / "dual", tmp_path / "strict"], threshold=0.6).threshold == 0.6


def test_a_cross_validation_folder_is_the_ensemble_of_its_folds(tmp_path: Path) -> None:
    for fold in (0, 1, 2):
        make_run(tmp_path / "cv" / f"fold_{fold}", seed=10 + fold)
    (tmp_path / "cv" / "splits.json").write_text("[]")
    case = _random_case()
    folds = load_predictor([tmp_path / "cv" / f"fold_{fold}" for fold in (0, 1, 2)]).predict_preprocessed(case)
    cross_validation = load_predictor([tmp_path / "cv"])
    assert [run.run_dir.name for run in cross_validation.runs] == ["fold_0", "fold_1", "fold_2"]
    np.testing.assert_array_equal(cross_validation.predict_preprocessed(case), folds)


def test_last_checkpoint_is_used_with_a_warning_when_there_is_no_best(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    network = make_run(tmp_path / "run", seed=7, best=False)
    with caplog.at_level(logging.WARNING):
        predictor = load_predictor([tmp_path / "run"])
    assert "no checkpoint_best.pt; using checkpoint_last.pt" in caplog.text
    case = _random_case(num_slices=2)
    with torch.inference_mode():
        expected = torch.sigmoid(network(torch.from_numpy(case.image.transpose(1, 0, 2, 3))))[:, 0].numpy()
    np.testing.assert_allclose(predictor.predict_preprocessed(case), expected, atol=1e-5)


def test_bad_model_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        load_predictor([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither a training run"):
        load_predictor([tmp_path / "empty"])
    make_run(tmp_path / "run")
    (tmp_path / "run" / "checkpoint_best.pt").unlink()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_predictor([tmp_path / "run"])
    make_run(tmp_path / "wide")
    state = torch.load(tmp_path / "wide" / "checkpoint_best.pt", weights_only=True)
    state["model_config"]["widths"] = [16, 16, 16, 16, 16, 16]
    torch.save(state, tmp_path / "wide" / "checkpoint_best.pt")
    with pytest.raises(ValueError, match="the weights do not fit"):
        load_predictor([tmp_path / "wide"])


def test_trained_run_describes_itself(tmp_path: Path) -> None:
    make_run(tmp_path / "run", threshold=0.4)
    run: TrainedRun = read_run(tmp_path / "run")[0]
    description = run.describe()
    assert description["model"] == "deu" and description["threshold"] == 0.4
    assert description["epoch"] == 3 and description["val_dice"] == 0.5
    assert description["checkpoint"].endswith("checkpoint_best.pt")
