"""`npcseg register`: exit codes, tables and messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import SimpleITK as sitk
from registration_phantoms import write_cohort
from typer.testing import CliRunner

from npcseg.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("cli_cohort"), {"case-1": {"t1": ((2.0, -3.0, 4.0), (3.0, 4.0, -2.0))}})


def test_register_prints_qa_and_tre_tables(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["register", str(cohort), str(out), "--sequences", "t1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "case-1" in result.output
    assert "target registration error" in result.output
    assert (out / "case-1" / "t1.tfm").is_file()
    again = runner.invoke(app, ["register", str(cohort), str(out), "--sequences", "t1", "--no-progress"])
    assert again.exit_code == 0, again.output
    assert "skipped" in again.output


def test_config_file_overrides_the_preset(cohort: Path, tmp_path: Path) -> None:
    config = tmp_path / "fast.yaml"
    config.write_text("name: fast\nmax_iterations: 20\nrefine: none\n")
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["register", str(cohort), str(out), "--config", str(config), "--sequences", "t1", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "max_iterations: 20" in (out / "registration.yaml").read_text()
    assert '"config": "fast"' in (out / "case-1" / "t1.json").read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--preset", "fast"], "unknown registration preset"),
        (["--sequences", "t2"], "cannot register"),
        (["--tre-region", "brain"], "--tre-region"),
        (["--workers", "0"], "num_workers"),
    ],
)
def test_bad_options_exit_2(cohort: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    result = runner.invoke(app, ["register", str(cohort), str(tmp_path / "out"), *extra])
    assert result.exit_code == 2
    assert "error" in result.output
    assert message in result.output


def test_missing_t2_names_the_case(tmp_path: Path) -> None:
    folder = tmp_path / "cohort" / "cases" / "patient-7"
    folder.mkdir(parents=True)
    sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkFloat32), str(folder / "t1.nii.gz"))
    result = runner.invoke(app, ["register", str(tmp_path / "cohort"), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "patient-7" in result.output
    assert "t2" in result.output


def test_bad_config_file_exit_2(cohort: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("histogram_bin: 32\n")
    result = runner.invoke(app, ["register", str(cohort), str(tmp_path / "out"), "--config", str(config)])
    assert result.exit_code == 2
    assert "histogram_bin" in result.output
