"""The preprocessed cache: files, resuming, refusing a changed config, parallel workers, given transforms."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

import npcseg
import npcseg.preprocessing.cache as cache
from npcseg.preprocessing.cache import (
    list_preprocessed,
    load_cache_config,
    load_preprocessed,
    preprocess_cohort,
)
from npcseg.preprocessing.config import PreprocessingConfig
from npcseg.preprocessing.pipeline import preprocess_case

CONFIG = PreprocessingConfig(registration_source="identity", slice_size=40)


@pytest.fixture
def cohort(make_case, tmp_path):
    make_case("case001")
    make_case("case002", size_xyz=(60, 70, 5), with_label=False)
    return tmp_path / "cohort"


def test_writes_arrays_records_and_run_description(cohort, tmp_path):
    out = tmp_path / "out"
    summary = preprocess_cohort(cohort, out, CONFIG, progress=False)
    assert list_preprocessed(out) == ["case001", "case002"]
    assert sorted(path.name for path in (out / "cases").iterdir()) == [
        "case001.json",
        "case001.npz",
        "case002.json",
        "case002.npz",
    ]
    from npcseg.io.cohort import load_case

    for case_id in ("case001", "case002"):
        cached = load_preprocessed(out, case_id)
        fresh = preprocess_case(load_case(cohort / "cases" / case_id), CONFIG)
        np.testing.assert_array_equal(cached.image, fresh.image)
        assert cached.image.dtype == np.float32
        if fresh.label is None:
            assert cached.label is None
        else:
            np.testing.assert_array_equal(cached.label, fresh.label)
            assert cached.label.dtype == np.uint8
        assert cached.record == json.loads(json.dumps(fresh.record))
    assert load_cache_config(out) == CONFIG
    written = json.loads((out / "preprocessing.json").read_text())
    assert written == json.loads(json.dumps(summary))
    assert written["package_version"] == npcseg.__version__
    assert written["config"]["slice_size"] == 40 and written["num_cases"] == 2 and written["num_skipped"] == 0
    assert written["cases"]["case001"]["resampled_shape_yx"] == [32, 32]
    assert written["cases"]["case002"]["resampled_shape_yx"] == [35, 30]
    assert written["cases"]["case002"]["label_foreground_voxels"] is None
    assert "t2's slices, direction and field of view" in written["reference_grid"]["rule"]
    assert yaml.safe_load((out / "preprocessing.yaml").read_text())["slice_size"] == 40


def test_rerun_skips_finished_cases_and_resumes_unfinished_ones(cohort, tmp_path, monkeypatch):
    out = tmp_path / "out"
    preprocess_cohort(cohort, out, CONFIG, progress=False)
    (out / "cases" / "case002.json").unlink()  # as if interrupted between the two files
    processed = []
    original = cache.preprocess_case

    def counting(case, config, transforms=None):
        processed.append(case.case_id)
        return original(case, config, transforms)

    monkeypatch.setattr(cache, "preprocess_case", counting)
    before = (out / "cases" / "case001.npz").stat().st_mtime_ns
    summary = preprocess_cohort(cohort, out, CONFIG, progress=False)
    assert processed == ["case002"]
    assert summary["num_skipped"] == 1 and set(summary["cases"]) == {"case001", "case002"}
    assert (out / "cases" / "case001.npz").stat().st_mtime_ns == before
    processed.clear()
    assert preprocess_cohort(cohort, out, CONFIG, progress=False)["num_skipped"] == 2
    assert processed == []


def test_a_different_config_into_the_same_folder_is_refused(cohort, tmp_path):
    out = tmp_path / "out"
    preprocess_cohort(cohort, out, CONFIG, progress=False)
    with pytest.raises(ValueError, match=r"different preprocessing config \(slice_size: 40 -> 48\)"):
        preprocess_cohort(cohort, out, CONFIG.with_changes(slice_size=48), progress=False)
    changed = CONFIG.with_changes(registration=CONFIG.registration.with_changes(seed=7))
    with pytest.raises(ValueError, match=r"registration\.seed: 1 -> 7"):
        preprocess_cohort(cohort, out, changed, progress=False)


def test_cases_without_a_config_file_are_refused(cohort, tmp_path):
    out = tmp_path / "out"
    (out / "cases").mkdir(parents=True)
    (out / "cases" / "stray.json").write_text("{}")
    with pytest.raises(ValueError, match=r"no preprocessing\.yaml"):
        preprocess_cohort(cohort, out, CONFIG, progress=False)


def test_missing_sequence_fails_before_anything_is_written(make_case, tmp_path):
    make_case("case001")
    broken = make_case("case002", sequences=("t2",))
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError) as error:
        preprocess_cohort(tmp_path / "cohort", out, CONFIG, progress=False)
    assert str(broken.case.folder) in str(error.value) and "'t1'" in str(error.value)
    assert list_preprocessed(out) == []


def test_precomputed_needs_a_folder_and_identity_refuses_one(cohort, tmp_path):
    with pytest.raises(ValueError, match="no registrations folder"):
        preprocess_cohort(cohort, tmp_path / "a", CONFIG.with_changes(registration_source="precomputed"))
    with pytest.raises(ValueError, match="identity"):
        preprocess_cohort(cohort, tmp_path / "b", CONFIG, registrations=tmp_path)


def test_output_inside_the_input_is_refused(cohort):
    with pytest.raises(ValueError, match="outside the input"):
        preprocess_cohort(cohort, cohort / "preprocessed", CONFIG, progress=False)


def test_parallel_workers_give_the_serial_result(cohort, tmp_path):
    preprocess_cohort(cohort, tmp_path / "serial", CONFIG, progress=False)
    preprocess_cohort(cohort, tmp_path / "parallel", CONFIG, num_workers=2, progress=False)
    for case_id in ("case001", "case002"):
        serial = load_preprocessed(tmp_path / "serial", case_id)
        parallel = load_preprocessed(tmp_path / "parallel", case_id)
        np.testing.assert_array_equal(serial.image, parallel.image)
        assert serial.record == parallel.record


def test_precomputed_transforms_are_read_from_the_registrations_folder(make_case, tmp_path):
    pytest.importorskip("npcseg.registration.cohort")
    from preprocessing_cases import IDENTITY_DIRECTION

    from npcseg.io.volume import Grid

    t2_grid = Grid((64, 64, 6), (0.5, 0.5, 4.0), (-80.3, -95.7, 30.2), IDENTITY_DIRECTION)
    centre = tuple(t2_grid.index_to_physical([31.5, 31.5, 2.5])[0])
    movement = sitk.Euler3DTransform(centre, 0.0, 0.0, math.radians(5.0), (2.0, -1.0, 0.5))
    moved = make_case("case001", transform=movement)
    assert moved.t2_grid == t2_grid
    registrations = tmp_path / "registrations"
    (registrations / "case001").mkdir(parents=True)
    sitk.WriteTransform(movement, str(registrations / "case001" / "t1.tfm"))
    out = tmp_path / "out"
    config = CONFIG.with_changes(registration_source="register")
    preprocess_cohort(tmp_path / "cohort", out, config, registrations=registrations, progress=False)
    cached = load_preprocessed(out, "case001")
    direct = preprocess_case(moved.case, config, transforms={"t1": movement})
    np.testing.assert_allclose(cached.image, direct.image, atol=1e-5)
    assert cached.record["registration_folder"] == str(registrations)
    assert cached.record["registration"]["t1"]["source"] == "given"
    assert load_cache_config(out).registration_source == "precomputed"
    with pytest.raises(FileNotFoundError, match=r"t1\.tfm"):
        make_case("case002")
        preprocess_cohort(tmp_path / "cohort", tmp_path / "out2", config, registrations=registrations)
    assert list_preprocessed(tmp_path / "out2") == []
