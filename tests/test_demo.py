"""The demo job end to end on a tiny synthetic cohort (the smoke run of the default suite)."""

from __future__ import annotations

import json
from pathlib import Path

import SimpleITK as sitk

from npcseg.demo import DemoConfig, run_demo
from npcseg.io.volume import Grid


def test_demo_runs_every_stage_and_writes_a_mask_on_the_new_patients_grid(tmp_path: Path) -> None:
    config = DemoConfig(num_cases=4, synth_size="small", num_workers=1, num_folds=2, epochs=1, max_slices_per_epoch=8)
    result = run_demo(tmp_path / "demo", config, progress=False)

    record = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert set(record["seconds"]) == {
        "synth",
        "validate",
        "register",
        "preprocess",
        "cross-validation",
        "predict new patient",
    }
    assert [row["sequence"] for row in record["target_registration_error"]] == ["t1"] * 4
    assert record["crossvalidation_summary"]["num_cases"] == 4
    assert 0.0 <= record["new_patient_metrics"]["dice"] <= 1.0

    new_case = next((result.new_patient / "cases").iterdir())
    mask = sitk.ReadImage(str(result.prediction / f"{new_case.name}.nii.gz"))
    t2 = sitk.ReadImage(str(new_case / "t2.nii.gz"))
    assert Grid.from_image(mask).matches(Grid.from_image(t2), tolerance_direction=1e-6)
    assert len(list((result.crossvalidation).glob("fold_*/predictions/*.nii.gz"))) == 4
