"""`npcseg synth` on the command line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from npcseg.cli.main import app


def test_synth_writes_a_cohort(tmp_path: Path) -> None:
    config = tmp_path / "synth.yaml"
    config.write_text("num_previews: 0\nnum_slices_range: [8, 8]\n")
    out = tmp_path / "cohort"
    result = CliRunner().invoke(
        app, ["synth", str(out), "--cases", "2", "--seed", "3", "--size", "small", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 2 cases" in result.output
    for case_id in ("synth-000", "synth-001"):
        for name in ("t1.nii.gz", "t2.nii.gz", "t1c.nii.gz", "label.nii.gz"):
            assert (out / "cases" / case_id / name).is_file()
    assert (out / "clinical.csv").is_file()
    assert (out / "synth.json").is_file()


def test_synth_reports_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["synth", str(tmp_path / "a"), "--size", "huge"])
    assert result.exit_code == 2
    assert "error" in result.output and "huge" in result.output
    config = tmp_path / "bad.yaml"
    config.write_text("t2_matrx: 100\n")
    result = runner.invoke(app, ["synth", str(tmp_path / "b"), "--size", "small", "--config", str(config)])
    assert result.exit_code == 2
    assert "t2_matrx" in result.output
    result = runner.invoke(app, ["synth", str(tmp_path / "c"), "--cases", "0", "--size", "small"])
    assert result.exit_code == 2
    assert "number of cases" in result.output
