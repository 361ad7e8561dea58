"""``npcseg compare``: rows on the same folds, one table with paired Wilcoxon p-values against a reference row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from crossval_cases import build_tiny_cohort, tiny_cv_config
from scipy import stats
from typer.testing import CliRunner

from npcseg.config import config_to_dict
from npcseg.evaluation.comparison import load_comparison, slug


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _base() -> dict:
    return config_to_dict(tiny_cv_config(num_folds=2))


def test_rows_merge_over_the_base_key_by_key(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "table.yaml",
        {
            "title": "losses",
            "base": _base(),
            "rows": [
                {"name": "A + fast", "training": {"learning_rate": 0.01}},
                {"name": "B", "postprocessing": {"mode": "largest_component"}},
            ],
        },
    )
    comparison = load_comparison([path], epochs=3)
    first, second = comparison.rows
    assert comparison.reference == "B" and comparison.test == "wilcoxon" and comparison.title == "losses"
    assert first.folder == "a-fast" and first.config.training.learning_rate == 0.01
    assert first.config.training.max_slices_per_epoch == 6  # kept from the base
    assert second.config.postprocessing.mode == "largest_component"
    assert {row.config.training.epochs for row in comparison.rows} == {3}
    assert slug("U-Net + cRAM + rRAM") == "u-net-cram-rram"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rows": []}, "non-empty 'rows'"),
        ({"colour": 1}, "unknown key"),
        ({"reference": "Z"}, "reference 'Z' is not a row"),
        ({"metrics": ["dice", "beauty"]}, "unknown metric"),
        ({"test": "t-test"}, "unknown test"),
        ({"rows": [{"name": "A"}, {"name": "A"}]}, "unique"),
        ({"rows": [{"name": "A"}, {"name": "B", "num_folds": 3}]}, "same folds"),
        ({"rows": [{"name": "A", "training": {"epochz": 3}}]}, "epochz"),
    ],
)
def test_bad_comparison_files_are_refused_naming_the_problem(tmp_path: Path, change: dict, message: str) -> None:
    data = {"base": _base(), "rows": [{"name": "A"}, {"name": "B"}], **change}
    with pytest.raises(ValueError, match=message):
        load_comparison([_write(tmp_path / "bad.yaml", data)])


def test_crossval_compare_cli_end_to_end(tmp_path: Path) -> None:
    from npcseg.cli.main import app

    tiny = build_tiny_cohort(tmp_path, num_cases=4)
    rows = [{"name": "DEU"}, {"name": "DEU largest", "postprocessing": {"mode": "largest_component"}}]
    path = _write(tmp_path / "table.yaml", {"title": "tiny", "reference": "DEU", "base": _base(), "rows": rows})
    out = tmp_path / "compare"
    arguments = ["compare", str(path), "--cohort", str(tiny.cohort), "--cache", str(tiny.cache), "--out", str(out)]
    result = CliRunner().invoke(app, [*arguments, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "| DEU | 4 |" in result.output and "Wilcoxon" in result.output
    assert (out / "deu" / "splits.json").read_text() == (out / "deu-largest" / "splits.json").read_text()

    def column(folder: str, name: str) -> list[float]:
        lines = (out / folder / "metrics.csv").read_text().splitlines()
        index = lines[0].split(",").index(name)
        return [float(line.split(",")[index]) for line in sorted(lines[1:])]

    table = json.loads((out / "table.json").read_text())
    assert [row["method"] for row in table["rows"]] == ["DEU", "DEU largest"]
    first, second = column("deu-largest", "dice"), column("deu", "dice")
    expected = 1.0 if first == second else stats.wilcoxon(first, second).pvalue
    assert table["rows"][1]["dice_p"] == pytest.approx(expected, rel=0, abs=0)
    assert table["rows"][0]["dice_p"] is None

    # a rerun with a changed row is refused, naming the row and the change
    rows[1]["postprocessing"] = {"mode": "none"}
    _write(path, {"title": "tiny", "reference": "DEU", "base": _base(), "rows": rows})
    result = CliRunner().invoke(app, [*arguments, "--no-progress"])
    assert result.exit_code == 2
    assert "DEU largest" in result.output and "'largest_component' -> 'none'" in result.output

    # a second table in the same OUT reuses equal rows by folder (nothing retrained) and writes its own files
    checkpoint = out / "deu" / "fold_0" / "checkpoint_best.pt"
    stamp = checkpoint.stat().st_mtime_ns
    second = _write(
        tmp_path / "second.yaml", {"title": "again", "base": _base(), "rows": [{"name": "Plain", "folder": "deu"}]}
    )
    arguments[1] = str(second)
    result = CliRunner().invoke(app, [*arguments, "--name", "second", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert checkpoint.stat().st_mtime_ns == stamp
    assert "| Plain | 4 |" in (out / "second.md").read_text() and "| DEU | 4 |" in (out / "table.md").read_text()
    # ... but a row claiming that folder with other settings is refused, naming the folder
    changed = {"name": "Other", "folder": "deu", "postprocessing": {"mode": "none"}}
    _write(second, {"title": "again", "base": _base(), "rows": [changed]})
    result = CliRunner().invoke(app, [*arguments, "--name", "second", "--no-progress"])
    assert result.exit_code == 2 and "folder 'deu'" in result.output
    result = CliRunner().invoke(app, [*arguments, "--name", "../escape", "--no-progress"])
    assert result.exit_code == 2 and "plain file name" in result.output


@pytest.mark.parametrize("table", ["seqseg-table3.yaml", "seqseg-table4.yaml", "seqseg-table5.yaml"])
def test_shipped_seqseg_tables_resolve_and_every_row_builds(table: str) -> None:
    from npcseg.losses import build_loss
    from npcseg.models import build_model

    comparison = load_comparison([Path(__file__).parents[2] / "configs" / table])
    assert comparison.reference in {row.name for row in comparison.rows}
    budgets = {
        (row.config.training.epochs, row.config.training.max_slices_per_epoch, row.config.num_folds)
        for row in comparison.rows
    }
    assert len(budgets) == 1  # the same budget for every row
    for row in comparison.rows:
        training = row.config.training
        assert training.sequences == ("t1", "t1c", "t2")
        build_model(training.model, training.model_config())
        build_loss(training.loss, **training.loss_options)


def test_shipped_tables_agree_on_every_shared_row_folder() -> None:
    """Tables 3-5 share one OUT in benchmarks/seqseg_synthetic_compare.sh: a folder in two tables is one run."""

    by_folder: dict[str, dict] = {}
    configs = sorted((Path(__file__).parents[2] / "configs").glob("seqseg-table*.yaml"))
    for path in configs:
        for row in load_comparison([path]).rows:
            settings = config_to_dict(row.config)
            assert by_folder.setdefault(row.folder, settings) == settings, f"{path.name}: {row.name}"
    assert len(configs) >= 3 and "u-net" in by_folder
