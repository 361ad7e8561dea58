"""`npcseg detect cascade-train` then `npcseg predict --method seqseg` on a tiny raw cohort with CliRunner: the
three pieces trained and resumed, settings claimed, masks exactly on each case's T2 grid, unfit options refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import yaml
from cascade_cases import crossval_cases, tiny_pieces
from typer.testing import CliRunner

from npcseg.cascade.crossval import CASCADE_FILENAME, CascadeExperimentConfig
from npcseg.cascade.training import (
    CONFIG_FILENAME,
    CascadeTrainingConfig,
    cascade_settings,
    load_cascade_training_config,
    load_trained_cascade,
)
from npcseg.cli.main import app
from npcseg.config import config_to_dict, save_config
from npcseg.io.cohort import cases_of
from npcseg.io.images import read_image
from npcseg.models.registry import tiny_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _tiny_settings() -> dict[str, object]:
    """A cascade of seconds: 1-epoch detector and presence classifier, a tiny DEU on 32 x 32 crops."""
    model_options = {key: value for key, value in vars(tiny_config("deu")).items() if key != "sequences"}
    detector, presence = tiny_pieces()
    return {
        "cascade": {  # a presence threshold so low that the 1-epoch classifier passes every slice on
            "crop_size": 32,
            "presence_threshold": 0.001,
            "presence_min_run": 1,
            "detector": detector,
            "presence": presence,
        },
        "training": {
            "model": "deu",
            "model_options": model_options,
            "epochs": 2,
            "learning_rate_drop_epoch": 1,  # the joint schedule, shortened
            "max_slices_per_epoch": 6,
            "num_threads": 1,
            "checkpoint_every_steps": 0,
        },
        "crop_seed": 2,
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A tiny cohort (raw cases + cache) and a cascade trained on it by the CLI: ``(cohort, cache, cascade)``."""
    root = tmp_path_factory.mktemp("cascade_cli")
    tiny = crossval_cases().build_tiny_cohort(root, num_cases=3)
    (root / "cascade.yaml").write_text(yaml.safe_dump(_tiny_settings()))
    arguments = ["detect", "cascade-train", "--cache", str(tiny.cache), "--out", str(root / "cascade")]
    options = ["--cases", "case000,case001", "--val-cases", "case002", "--config", str(root / "cascade.yaml")]
    result = CliRunner().invoke(app, [*arguments, *options, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "crop segmenter: 2 training case(s)" in result.output and "presence classifier" in result.output
    return tiny.cohort, tiny.cache, root / "cascade"


def test_cascade_train_writes_the_three_pieces_and_resumes(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, cache, out = trained
    for piece in ("detector/detector.pt", "crops/crops.yaml", "segmenter/checkpoint_best.pt", "presence/run.json"):
        assert (out / piece).is_file(), piece
    saved = load_cascade_training_config(out / CONFIG_FILENAME)
    assert saved.crop_seed == 2 and saved.cascade.crop_size == 32 and saved.training.learning_rate_drop_epoch == 1
    record = json.loads((out / "cascade_training.json").read_text())
    assert record["status"] == "complete" and record["train_ids"] == ["case000", "case001"]
    assert record["val_ids"] == ["case002"] and record["segmenter"]["val_ids"] == ["case002"]
    segmenter_log = (out / "segmenter" / "log.csv").read_text().splitlines()
    rates = [float(line.split(",")[segmenter_log[0].split(",").index("learning_rate")]) for line in segmenter_log[1:]]
    assert rates == pytest.approx([1e-4, 1e-5], rel=1e-12)  # the drop after one epoch
    # the detector's frozen backbone is the presence classifier's encoder, stored in the detector file
    detector_config = yaml.safe_load((out / "detector" / "config.yaml").read_text())
    assert Path(detector_config["backbone_weights"]) == (out / "presence").resolve()
    backbone = torch.load(out / "detector" / "detector.pt", weights_only=True)["backbone"]
    presence = torch.load(out / "presence" / "checkpoint_best.pt", weights_only=True)["model"]
    assert backbone.keys() == {key.removeprefix("encoder.") for key in presence if key.startswith("encoder.")}
    assert all(torch.equal(backbone[key], presence[f"encoder.{key}"]) for key in backbone)

    settings = out.parent / "cascade.yaml"
    base = ["detect", "cascade-train", "--cache", str(cache), "--out", str(out), "--config", str(settings)]
    again = CliRunner().invoke(app, [*base, "--cases", "case000,case001", "--val-cases", "case002", "--no-progress"])
    assert again.exit_code == 0, again.output  # every piece complete: kept, not retrained
    assert json.loads((out / "cascade_training.json").read_text())["segmenter"] == record["segmenter"]
    other_cases = CliRunner().invoke(app, [*base, "--cases", "case000", "--val-cases", "case002", "--no-progress"])
    assert other_cases.exit_code == 2 and "other cases" in other_cases.output
    changed = _tiny_settings()
    changed["crop_seed"] = 3
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
    base[-1] = str(tmp_path / "changed.yaml")
    refused = CliRunner().invoke(app, [*base, "--cases", "case000,case001", "--val-cases", "case002", "--no-progress"])
    assert refused.exit_code == 2 and "crop_seed: 2 -> 3" in refused.output


def test_predict_seqseg_writes_masks_exactly_on_each_t2_grid(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    cohort, _, cascade = trained
    output = tmp_path / "predictions"
    arguments = ["predict", "--method", "seqseg", "--cascade", str(cascade), "-i", str(cohort), "-o", str(output)]
    arguments += ["--threshold", "0.02"]  # the 2-epoch segmenter's probabilities stay low: a mask that is not empty
    result = CliRunner().invoke(app, [*arguments, "--probability", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "with the SeqSeg cascade" in result.output
    summary = json.loads((output / "predict.json").read_text())
    assert summary["settings"]["method"] == "seqseg" and summary["status"] == "complete"
    assert summary["fingerprint"]["cascade"]["crop_size"] == 32 and len(summary["settings"]["runs"]) == 3
    assert summary["settings"]["cascade"]["presence_min_run"] == 1  # the trained cascade's own z rule
    direct = load_trained_cascade(cascade, threshold=0.02)
    num_foreground = 0
    for case in cases_of(cohort):
        mask = read_image(output / f"{case.case_id}.nii.gz")
        t2 = read_image(case.images["t2"])
        assert mask.GetSize() == t2.GetSize() and mask.GetSpacing() == t2.GetSpacing()
        assert mask.GetOrigin() == t2.GetOrigin() and mask.GetDirection() == t2.GetDirection()
        probability = read_image(output / f"{case.case_id}_probability.nii.gz")
        assert probability.GetSize() == t2.GetSize() and probability.GetOrigin() == t2.GetOrigin()
        values, probabilities = sitk.GetArrayFromImage(mask), sitk.GetArrayFromImage(probability)
        assert probabilities.max() > 0  # crops segmented and pasted back
        assert set(np.unique(values)) <= {0, 1}
        assert not values[probabilities < direct.threshold].any()
        np.testing.assert_array_equal(values, sitk.GetArrayFromImage(direct.predict_case(case).mask))
        num_foreground += int(values.sum())
    assert num_foreground > 0
    rerun = CliRunner().invoke(app, [*arguments, "--probability", "--no-progress"])
    assert rerun.exit_code == 0 and "3 already done" in rerun.output
    other = CliRunner().invoke(app, [*arguments[:-1], "0.7", "--probability", "--no-progress"])
    assert other.exit_code == 2 and "threshold" in other.output  # a folder of other settings is refused


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--method", "seqseg", "--tta"], "--tta do(es) not apply to --method seqseg"),
        (["--method", "seqseg", "--batch-size", "4", "--workers", "2"], "--batch-size, --workers > 1 do(es) not"),
        (["--method", "seqseg", "--model", "run"], "--model do(es) not apply"),
        (["--method", "seqseg", "--cascade", "missing"], "not a trained cascade"),
        (["--method", "network"], "needs at least one --model"),
        (["--model", "run", "--cascade", "missing"], "--cascade is for --method seqseg"),
        (["--method", "other"], "--method must be one of network, seqseg"),
    ],
)
def test_options_that_do_not_fit_the_method_are_refused(
    trained: tuple[Path, Path, Path], tmp_path: Path, options: list[str], message: str
) -> None:
    cohort, _, cascade = trained
    extra = [] if "--cascade" in options or options[1] != "seqseg" else ["--cascade", str(cascade)]
    output = tmp_path / "out"
    arguments = ["predict", "-i", str(cohort), "-o", str(output), *options, *extra]
    result = CliRunner().invoke(app, [str(tmp_path / a) if a in ("run", "missing") else a for a in arguments])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert not output.exists()


def test_a_cascade_cross_validation_fold_is_found_by_its_parent(tmp_path: Path) -> None:
    settings = CascadeExperimentConfig(scale=1.25, presence_min_run=3)
    save_config(settings, tmp_path / "cv" / CASCADE_FILENAME)
    (tmp_path / "cv" / "fold_0" / "detector").mkdir(parents=True)
    assert cascade_settings(tmp_path / "cv" / "fold_0") == settings  # a fold written before cascade_training.yaml
    with pytest.raises(ValueError, match="give one of its fold folders \\(fold_0\\)"):
        cascade_settings(tmp_path / "cv")
    with pytest.raises(FileNotFoundError, match="not a trained cascade"):
        cascade_settings(tmp_path)


def test_the_shipped_cascade_config_trains_as_the_table_6_cascade_row() -> None:
    from npcseg.evaluation.comparison import load_comparison

    shipped = load_cascade_training_config(CONFIGS / "seqseg-cascade.yaml")
    row = next(row for row in load_comparison([CONFIGS / "seqseg-table6.yaml"]).rows if row.cascade is not None)
    assert row.cascade is not None and config_to_dict(shipped.cascade) == config_to_dict(row.cascade)
    assert config_to_dict(shipped.training) == config_to_dict(row.config.training)
    assert shipped.crop_seed == row.config.seed
    assert isinstance(shipped, CascadeTrainingConfig)
    # the detector of benchmarks/seqseg_detection.sh's ablation is the Table 6 cascade's detector
    from npcseg.config import load_config
    from npcseg.detection.config import DetectorConfig

    assert load_config(DetectorConfig, CONFIGS / "detector-synthetic.yaml") == row.cascade.detector


@pytest.mark.parametrize("presence_classifier", [True, False])
def test_a_heatmap_cascade_boxes_its_own_whole_slice_segmenter(tmp_path: Path, presence_classifier: bool) -> None:
    from npcseg.cascade.predict import predict_cascade
    from npcseg.detection.heatmap import HeatmapDetector
    from npcseg.preprocessing.cache import load_preprocessed

    tiny = crossval_cases().build_tiny_cohort(tmp_path, num_cases=3)
    settings = _tiny_settings()
    cascade = dict(settings["cascade"])  # type: ignore[call-overload]
    del cascade["detector"]
    settings["cascade"] = {
        **cascade,
        "detector_kind": "heatmap",
        "heatmap_threshold": 0.02,
        "presence_classifier": presence_classifier,
    }
    (tmp_path / "heatmap.yaml").write_text(yaml.safe_dump(settings))
    out = tmp_path / "cascade"
    arguments = ["detect", "cascade-train", "--cache", str(tiny.cache), "--out", str(out), "--cases", "case000,case001"]
    result = CliRunner().invoke(app, [*arguments, "--config", str(tmp_path / "heatmap.yaml"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "heat-map detector: whole-slice segmenter" in result.output
    assert (out / "detector" / "checkpoint_best.pt").is_file() and not (out / "detector" / "detector.pt").exists()
    assert yaml.safe_load((out / "detector" / "config.yaml").read_text())["model"] == "deu"  # the row's network
    record = json.loads((out / "cascade_training.json").read_text())
    assert record["detector"]["kind"] == "heatmap"
    assert (out / "presence").is_dir() == presence_classifier and (record["presence"] is None) != presence_classifier

    predictor = load_trained_cascade(out, threshold=0.02)
    assert isinstance(predictor.detector, HeatmapDetector) and predictor.detector.threshold == 0.02
    assert (predictor.presence is None) != presence_classifier
    case = load_preprocessed(tiny.cache, "case002")
    sequences = list(case.record["sequences"])
    image = case.image
    found = predict_cascade(
        image, predictor.detector, predictor.segmenter, predictor.presence, predictor.config, image_sequences=sequences
    )
    channels = [sequences.index(name) for name in predictor.detector.sequences]
    for z, window in enumerate(found.boxes):
        detection = predictor.detector.detect(image[channels, z]) if found.presence[z] else None
        assert window == (None if detection is None else detection.box.scaled(1.5))  # the map's box, 1.5 x
    assert any(window is not None for window in found.boxes)
    if not presence_classifier:  # the detector decides: a slice holds tumour where it found a box
        assert list(found.presence) == [window is not None for window in found.boxes]

    output = tmp_path / "predictions"
    command = ["predict", "--method", "seqseg", "--cascade", str(out), "-i", str(tiny.cohort), "-o", str(output)]
    predicted = CliRunner().invoke(app, [*command, "--no-progress"])
    assert predicted.exit_code == 0, predicted.output
    for raw in cases_of(tiny.cohort):
        mask, t2 = read_image(output / f"{raw.case_id}.nii.gz"), read_image(raw.images["t2"])
        assert mask.GetSize() == t2.GetSize() and mask.GetOrigin() == t2.GetOrigin()
    described = json.loads((output / "predict.json").read_text())["settings"]
    assert described["cascade"]["detector_kind"] == "heatmap"
    assert len(described["runs"]) == (3 if presence_classifier else 2)
