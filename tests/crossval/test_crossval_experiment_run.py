"""The input experiment end to end (tiny): three inputs on the same folds, the table written and printed."""

from __future__ import annotations

import json
from pathlib import Path

from crossval_cases import build_tiny_cohort, tiny_cv_config
from scipy import stats
from typer.testing import CliRunner

from npcseg.config import load_config, save_config
from npcseg.training.crossval import CrossValidationConfig


def test_crossval_experiment_inputs_cli(tmp_path: Path) -> None:
    from npcseg.cli.main import app

    tiny = build_tiny_cohort(tmp_path, num_cases=4)
    config_path = tmp_path / "settings.yaml"
    save_config(tiny_cv_config(num_folds=2), config_path)
    out = tmp_path / "experiment"
    arguments = ["experiment", "inputs", "--cohort", str(tiny.cohort), "--cache", str(tiny.cache), "--out", str(out)]
    result = CliRunner().invoke(app, [*arguments, "--config", str(config_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "| T1+T2 | 4 |" in result.output and "Mann-Whitney" in result.output

    shared = (out / "splits.json").read_text()
    for folder, model, sequences in (
        ("t1", "deu-single", ["t1"]),
        ("t2", "deu-single", ["t2"]),
        ("t1_t2", "deu", ["t1", "t2"]),
    ):
        assert (out / folder / "splits.json").read_text() == shared  # the same folds for every input
        config = load_config(CrossValidationConfig, out / folder / "cv.yaml")
        assert config.training.model == model and list(config.training.sequences) == sequences
        assert len(list((out / folder).glob("fold_*/predictions/*.nii.gz"))) == 4

    table = json.loads((out / "table.json").read_text())
    assert [row["input"] for row in table["rows"]] == ["T1", "T2", "T1+T2"]

    def dice_of(folder: str) -> list[float]:
        lines = (out / folder / "metrics.csv").read_text().splitlines()
        column = lines[0].split(",").index("dice")
        return [float(line.split(",")[column]) for line in lines[1:]]

    expected = stats.mannwhitneyu(dice_of("t1"), dice_of("t1_t2"), alternative="two-sided").pvalue
    assert table["rows"][0]["dice_p"] == float(expected)
    assert (out / "table.md").read_text().startswith("| Input | n | DSC |")
