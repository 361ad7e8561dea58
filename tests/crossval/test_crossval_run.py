"""End-to-end cross-validation on a tiny cohort: out-of-fold predictions, metrics, resumption, refusals, CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from crossval_cases import TinyCohort, build_tiny_cohort, tiny_cv_config
from typer.testing import CliRunner

from npcseg.config import save_config
from npcseg.data.splits import load_splits
from npcseg.evaluation.metrics import aggregate, dice
from npcseg.io.volume import Grid
from npcseg.training import crossval
from npcseg.training.crossval import CrossValidationResult, inner_validation_ids, run_crossvalidation

NUM_FOLDS = 2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyCohort:
    return build_tiny_cohort(tmp_path_factory.mktemp("tiny"), num_cases=5)


@pytest.fixture(scope="module")
def finished(tiny: TinyCohort) -> CrossValidationResult:
    out = tiny.cohort.parent / "cv"
    config = tiny_cv_config(num_folds=NUM_FOLDS)
    return run_crossvalidation(
        tiny.cohort, tiny.cache, out, config, external_cohort=tiny.cohort, external_cache=tiny.cache, progress=False
    )


def _grid(path: Path) -> Grid:
    return Grid.from_image(sitk.ReadImage(str(path)))


def test_crossval_out_of_fold_predictions(tiny: TinyCohort, finished: CrossValidationResult) -> None:
    out = finished.out
    found = sorted(out.glob("fold_*/predictions/*.nii.gz"))
    names = [path.name.removesuffix(".nii.gz") for path in found]
    assert sorted(names) == list(tiny.case_ids)  # every case predicted exactly once
    folds = load_splits(out / "splits.json")
    for fold in folds:
        for case_id in fold.val:  # in the fold that held it out
            prediction = out / f"fold_{fold.fold}" / "predictions" / f"{case_id}.nii.gz"
            t2 = tiny.cohort / "cases" / case_id / "t2.nii.gz"
            assert _grid(prediction).mismatch(_grid(t2)) is None  # on the case's original T2 grid
            mask = sitk.GetArrayFromImage(sitk.ReadImage(str(prediction)))
            assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        record = json.loads((out / f"fold_{fold.fold}" / "fold.json").read_text())
        inner = set(record["inner_validation"])
        assert inner and inner <= set(fold.train) and inner.isdisjoint(fold.val)  # no leak of held-out cases
        assert set(record["train"]) == set(fold.train) - inner
        assert record["inner_validation"] == inner_validation_ids(fold, 0.15, seed=3)


def test_crossval_metrics_table(tiny: TinyCohort, finished: CrossValidationResult) -> None:
    out = finished.out
    with (out / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["case_id"] for row in rows] == list(tiny.case_ids)  # one row per case
    held_out_in = {case_id: fold.fold for fold in finished.folds for case_id in fold.val}
    for row in rows:
        assert int(row["fold"]) == held_out_in[row["case_id"]]
        prediction = out / f"fold_{row['fold']}" / "predictions" / f"{row['case_id']}.nii.gz"
        label = tiny.cohort / "cases" / row["case_id"] / "label.nii.gz"
        expected = dice(
            sitk.GetArrayFromImage(sitk.ReadImage(str(prediction))), sitk.GetArrayFromImage(sitk.ReadImage(str(label)))
        )
        assert float(row["dice"]) == pytest.approx(expected, abs=1e-12)
        volume = float(row["volume_reference_ml"])
        assert volume == pytest.approx(
            np.count_nonzero(sitk.GetArrayFromImage(sitk.ReadImage(str(label)))) * 0.5 * 0.5 * 4 / 1000
        )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_cases"] == 5 and summary["num_folds"] == NUM_FOLDS
    expected_summary = aggregate(float(row["dice"]) for row in rows)
    for key in ("mean", "sd", "median", "min", "max", "num_excluded"):
        assert summary["metrics"]["dice"][key] == pytest.approx(expected_summary[key])
    assert "tolerance_mm" not in summary["metrics"]


def test_crossval_external_cohort(tiny: TinyCohort, finished: CrossValidationResult) -> None:
    assert finished.external is not None
    external = finished.out / "external"
    assert sorted(path.name for path in (external / "predictions").iterdir()) == [f"{c}.nii.gz" for c in tiny.case_ids]
    with (external / "metrics.csv").open() as handle:
        assert [row["case_id"] for row in csv.DictReader(handle)] == list(tiny.case_ids)
    summary = json.loads((external / "summary.json").read_text())
    assert summary["run_dirs"] == [str(finished.out / f"fold_{k}") for k in range(NUM_FOLDS)]
    assert math.isfinite(summary["metrics"]["dice"]["mean"])


def test_crossval_rerun_skips_finished_folds(
    tiny: TinyCohort, finished: CrossValidationResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = finished.out
    splits_text = (out / "splits.json").read_text()
    predictions = {path: path.stat().st_mtime_ns for path in out.glob("fold_*/predictions/*.nii.gz")}

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr("npcseg.training.trainer.train", refuse)
    again = run_crossvalidation(tiny.cohort, tiny.cache, out, tiny_cv_config(num_folds=NUM_FOLDS), progress=False)
    assert (out / "splits.json").read_text() == splits_text  # splits reused
    assert {path: path.stat().st_mtime_ns for path in predictions} == predictions  # predictions kept
    assert again.metrics == finished.metrics


def test_crossval_refuses_other_settings_or_cases(tiny: TinyCohort, finished: CrossValidationResult) -> None:
    with pytest.raises(ValueError, match=r"training\.epochs: 1 -> 2"):
        run_crossvalidation(tiny.cohort, tiny.cache, finished.out, tiny_cv_config(NUM_FOLDS, epochs=2), progress=False)
    # a splits file whose cases differ from the cohort's
    other = finished.out.parent / "cv_other"
    other.mkdir()
    splits = json.loads((finished.out / "splits.json").read_text())
    splits[0]["val"].append("case999")
    for fold in splits[1:]:
        fold["train"].append("case999")
    (other / "splits.json").write_text(json.dumps(splits))
    with pytest.raises(ValueError, match=r"only in the splits: \['case999'\]"):
        run_crossvalidation(tiny.cohort, tiny.cache, other, tiny_cv_config(NUM_FOLDS), progress=False)
    with pytest.raises(ValueError, match="larger than the number of cases"):
        run_crossvalidation(tiny.cohort, tiny.cache, other / "many", tiny_cv_config(6), progress=False)
    assert not (other / "many" / "cv.yaml").exists()  # nothing written: a corrected rerun is not refused


def test_crossval_cli(tiny: TinyCohort, finished: CrossValidationResult, tmp_path: Path) -> None:
    from npcseg.cli.main import app

    config_path = tmp_path / "cv.yaml"
    save_config(tiny_cv_config(num_folds=NUM_FOLDS), config_path)
    arguments = ["cv", "--cohort", str(tiny.cohort), "--cache", str(tiny.cache), "--out", str(finished.out)]
    result = CliRunner().invoke(app, [*arguments, "--config", str(config_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "dice" in result.output and "mean ± sd" in result.output
    result = CliRunner().invoke(app, [*arguments, "--config", str(config_path), "--epochs", "3", "--no-progress"])
    assert result.exit_code == 2 and "error:" in result.output and "training.epochs" in result.output
    missing = CliRunner().invoke(
        app, ["cv", "--cohort", str(tmp_path / "none"), "--cache", str(tiny.cache), "--out", str(tmp_path / "o")]
    )
    assert missing.exit_code == 2 and "not found" in missing.output


def test_crossval_inner_validation_ids() -> None:
    from npcseg.data.splits import Fold

    fold = Fold(0, tuple(f"c{i:02d}" for i in range(40)), ("x",))
    chosen = inner_validation_ids(fold, 0.15, seed=0)
    assert len(chosen) == 6 and set(chosen) <= set(fold.train)
    assert chosen == inner_validation_ids(fold, 0.15, seed=0)
    assert inner_validation_ids(Fold(0, ("a", "b"), ("x",)), 0.15, seed=0) in (["a"], ["b"])
    with pytest.raises(ValueError, match="inner validation needs 2"):
        inner_validation_ids(Fold(0, ("a",), ("x",)), 0.15, seed=0)
    assert crossval.CrossValidationConfig().num_folds == 10
