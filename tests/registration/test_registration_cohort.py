"""register_cohort: outputs, resume, parallel workers, TRE evaluation and error messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import SimpleITK as sitk
from registration_phantoms import write_cohort

from npcseg.registration.cohort import evaluate_tre, load_transform, register_cohort, summarize_tre
from npcseg.registration.config import RegistrationConfig, load_registration_config

MOTIONS = {
    "case-a": {"t1": ((3.0, -2.0, 4.0), (4.0, -3.0, 2.0)), "t1c": ((3.5, -2.0, 3.0), (4.5, -2.0, 2.0))},
    "case-b": {"t1": ((-4.0, 1.0, -2.0), (-2.0, 4.0, -3.0))},  # no T1c
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("cohort"), MOTIONS)


@pytest.fixture(scope="module")
def registered(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("registrations")
    return out, register_cohort(cohort, out, RegistrationConfig(), progress=False)


def test_outputs(registered: tuple[Path, list[dict]]) -> None:
    out, records = registered
    assert [(r["case_id"], r["sequence"]) for r in records] == [("case-a", "t1"), ("case-a", "t1c"), ("case-b", "t1")]
    for record in records:
        folder = out / record["case_id"]
        qa = json.loads((folder / f"{record['sequence']}.json").read_text())
        assert qa["config"] == "default"
        assert {"final_metric", "num_iterations", "seconds", "stop_condition", "transform"} <= set(qa)
        transform = load_transform(out, record["case_id"], record["sequence"])
        assert transform.GetName() == "Euler3DTransform"
        assert list(transform.GetParameters()) == pytest.approx(qa["transform"]["parameters"])
    assert load_registration_config(out / "registration.yaml") == RegistrationConfig()
    summary = json.loads((out / "registration.json").read_text())
    assert summary["num_registered"] == 3
    assert summary["failures"] == []
    assert "SimpleITK" in summary["versions"]
    assert not list(out.rglob(".*tmp*"))  # no temporary files left behind


def test_tre_against_truth(cohort: Path, registered: tuple[Path, list[dict]]) -> None:
    out, _ = registered
    rows = evaluate_tre(cohort, out)
    assert len(rows) == 3
    for row in rows:
        assert row["region"] == "head"
        assert row["num_points"] > 1000
        assert row["initial_mean_mm"] > 3.0
        assert row["mean_mm"] < 1.5, row  # coarse test images (3 mm T1 voxels); full-size numbers: slow test
    summary = summarize_tre(rows)
    assert summary["all"]["num_pairs"] == 3
    assert summary["t1"]["num_pairs"] == 2
    assert summary["all"]["max_mm"] == max(row["max_mm"] for row in rows)


def test_resume_skips_complete_pairs(cohort: Path, registered: tuple[Path, list[dict]], tmp_path: Path) -> None:
    out = tmp_path / "registrations"
    shutil.copytree(registered[0], out)
    (out / "case-b" / "t1.json").unlink()  # an interrupted pair: the .tfm without its QA record
    before = (out / "case-a" / "t1.tfm").stat().st_mtime_ns
    records = register_cohort(cohort, out, RegistrationConfig(), progress=False)
    skipped = {(r["case_id"], r["sequence"]) for r in records if r.get("skipped")}
    assert skipped == {("case-a", "t1"), ("case-a", "t1c")}
    assert (out / "case-a" / "t1.tfm").stat().st_mtime_ns == before
    assert (out / "case-b" / "t1.json").is_file()


def test_parallel_workers_give_the_serial_result(
    cohort: Path, registered: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    out = tmp_path / "parallel"
    seen: list[str] = []
    register_cohort(
        cohort, out, RegistrationConfig(), sequences=["t1"], num_workers=2, progress=lambda r: seen.append(r["case_id"])
    )
    assert sorted(seen) == ["case-a", "case-b"]
    for case_id in ("case-a", "case-b"):
        parallel = load_transform(out, case_id, "t1").GetParameters()
        assert parallel == load_transform(registered[0], case_id, "t1").GetParameters()


def test_other_settings_into_the_same_folder_are_refused(cohort: Path, registered: tuple[Path, list[dict]]) -> None:
    with pytest.raises(ValueError, match="other settings"):
        register_cohort(cohort, registered[0], RegistrationConfig.paper(), progress=False)


def test_missing_t2_names_the_case(tmp_path: Path) -> None:
    folder = tmp_path / "cohort" / "cases" / "no-t2-case"
    folder.mkdir(parents=True)
    sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkFloat32), str(folder / "t1.nii.gz"))
    with pytest.raises(FileNotFoundError, match="no-t2-case"):
        register_cohort(tmp_path / "cohort", tmp_path / "out", RegistrationConfig(), progress=False)
    assert not (tmp_path / "out").exists()


def test_bad_inputs(cohort: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="t2"):
        register_cohort(cohort, tmp_path / "out", RegistrationConfig(), sequences=["t2"], progress=False)
    with pytest.raises(FileNotFoundError, match="not found"):
        register_cohort(tmp_path / "nowhere", tmp_path / "out", RegistrationConfig(), progress=False)
    with pytest.raises(FileNotFoundError, match=r"case-x.*t1\.tfm|t1\.tfm.*case-x"):
        load_transform(tmp_path, "case-x", "t1")
    with pytest.raises(FileNotFoundError, match="truth"):
        evaluate_tre(tmp_path, tmp_path)


def test_unreadable_image_fails_after_the_others(cohort: Path, tmp_path: Path) -> None:
    broken = tmp_path / "cohort"
    shutil.copytree(cohort, broken)
    (broken / "cases" / "case-b" / "t1.nii.gz").write_bytes(b"not an image")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="case-b/t1"):
        register_cohort(broken, out, RegistrationConfig(), sequences=["t1"], progress=False)
    assert (out / "case-a" / "t1.tfm").is_file()  # the good case was registered and kept
    assert json.loads((out / "registration.json").read_text())["failures"][0]["case_id"] == "case-b"
