"""`npcseg preprocess`: options, files written, and clear errors with exit code 2."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from npcseg.cli.main import app

runner = CliRunner()


def write_config(path, **fields):
    settings = {"registration_source": "identity", "slice_size": 40, **fields}
    path.write_text(yaml.safe_dump(settings))
    return path


def test_preprocess_writes_the_cache(make_case, tmp_path):
    make_case("case001")
    out = tmp_path / "out"
    config = write_config(tmp_path / "pre.yaml")
    arguments = ["preprocess", str(tmp_path / "cohort"), str(out), "--config", str(config), "--no-progress"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "preprocessed 1 case(s) (0 already done)" in result.output
    assert (out / "cases" / "case001.npz").is_file()
    written = json.loads((out / "preprocessing.json").read_text())
    assert written["config"]["slice_size"] == 40 and written["config"]["sequences"] == ["t1", "t2"]
    again = runner.invoke(app, arguments)
    assert again.exit_code == 0 and "(1 already done)" in again.output


def test_missing_sequence_names_the_case(make_case, tmp_path):
    built = make_case("case007")  # t1 and t2 only; the seqseg preset needs t1c
    config = write_config(tmp_path / "pre.yaml")
    result = runner.invoke(
        app,
        [
            "preprocess",
            str(tmp_path / "cohort"),
            str(tmp_path / "out"),
            "--preset",
            "seqseg",
            "--config",
            str(config),
        ],
    )
    assert result.exit_code == 2
    assert "error:" in result.output and "case007" in result.output and "t1c" in result.output
    assert str(built.case.folder.name) in result.output


def test_bad_preset_unknown_key_and_config_mismatch(make_case, tmp_path):
    make_case("case001")
    cohort, out = str(tmp_path / "cohort"), str(tmp_path / "out")
    result = runner.invoke(app, ["preprocess", cohort, out, "--preset", "unet"])
    assert result.exit_code == 2 and "unknown preprocessing preset 'unet'" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("slice_sise: 48\n")
    result = runner.invoke(app, ["preprocess", cohort, out, "--config", str(bad)])
    assert result.exit_code == 2 and "slice_sise" in result.output
    first = write_config(tmp_path / "first.yaml")
    assert runner.invoke(app, ["preprocess", cohort, out, "--config", str(first), "--no-progress"]).exit_code == 0
    second = write_config(tmp_path / "second.yaml", slice_size=48)
    result = runner.invoke(app, ["preprocess", cohort, out, "--config", str(second), "--no-progress"])
    assert result.exit_code == 2 and "different preprocessing config" in result.output


def test_missing_cohort(tmp_path):
    result = runner.invoke(app, ["preprocess", str(tmp_path / "nowhere"), str(tmp_path / "out")])
    assert result.exit_code == 2 and "not found" in result.output
