"""The input-experiment table (paper Table 1): mean ± sd per input and Mann-Whitney U p-values against T1+T2."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from npcseg.evaluation.experiment import build_input_table
from npcseg.evaluation.table import build_table, format_mean_sd, format_p_value, wilcoxon_p, write_table

T1 = {"dice": [0.61, 0.55, 0.70, 0.58, 0.66], "sensitivity": [0.6, 0.5, 0.7, 0.6, 0.7], "precision": [0.7] * 5}
T2 = {"dice": [0.64, 0.80, 0.52, 0.71, 0.59], "sensitivity": [0.7, 0.8, 0.5, 0.7, 0.6], "precision": [0.6] * 5}
DUAL = {
    "dice": [0.72, 0.75, 0.69, 0.74, 0.70],
    "sensitivity": [0.70, 0.72, 0.71, 0.69, 0.73],
    "precision": [0.77, 0.76, 0.78, 0.75, 0.80],
}


def test_crossval_table_values_match_numpy_and_scipy() -> None:
    table = build_input_table({"T1": T1, "T2": T2, "T1+T2": DUAL})
    assert [row.name for row in table.rows] == ["T1", "T2", "T1+T2"]
    for row, values in zip(table.rows, (T1, T2, DUAL), strict=True):
        assert row.num_cases == 5
        for metric in ("dice", "sensitivity", "precision"):
            assert row.mean[metric] == pytest.approx(np.mean(values[metric]), abs=1e-15)
            assert row.sd[metric] == pytest.approx(np.std(values[metric], ddof=1), abs=1e-15)
            if row.name == "T1+T2":
                assert row.p_value[metric] is None
            else:
                expected = stats.mannwhitneyu(values[metric], DUAL[metric], alternative="two-sided").pvalue
                assert row.p_value[metric] == float(expected)  # exactly scipy's number


def test_crossval_table_formatting(tmp_path: Path) -> None:
    assert format_mean_sd(0.7214, 0.0356) == "0.721 ± 0.036"
    assert format_mean_sd(0.5, math.nan) == "0.500 ± n/a"
    assert format_p_value(0.0468) == "0.047"
    assert format_p_value(0.0004) == "< 0.001"
    assert format_p_value(None) == "ref"
    table = build_input_table({"T1": T1, "T2": T2, "T1+T2": DUAL})
    write_table(table, tmp_path)
    markdown = (tmp_path / "table.md").read_text()
    assert f"| T1+T2 | 5 | {format_mean_sd(np.mean(DUAL['dice']), np.std(DUAL['dice'], ddof=1))} | ref |" in markdown
    t1_dice_p = stats.mannwhitneyu(T1["dice"], DUAL["dice"], alternative="two-sided").pvalue
    assert f"| {format_p_value(float(t1_dice_p))} |" in markdown.splitlines()[2]
    data = json.loads((tmp_path / "table.json").read_text())
    assert data["reference"] == "T1+T2"
    assert data["rows"][0]["dice_p"] == float(t1_dice_p)
    assert data["rows"][2]["dice_p"] is None
    lines = (tmp_path / "table.csv").read_text().splitlines()
    assert lines[0].startswith("input,num_cases,dice_mean,dice_sd,dice_p")
    assert len(lines) == 4


def test_crossval_table_drops_non_finite_and_checks_input() -> None:
    table = build_input_table({"A": {"dice": [0.5, math.nan, 0.7]}, "B": {"dice": [0.9, 0.8]}}, "B", ("dice",))
    assert table.rows[0].mean["dice"] == pytest.approx(0.6)
    assert table.rows[0].p_value["dice"] == float(stats.mannwhitneyu([0.5, 0.7], [0.9, 0.8]).pvalue)
    with pytest.raises(ValueError, match="reference 'C'"):
        build_input_table({"A": {"dice": [0.5]}}, "C", ("dice",))
    with pytest.raises(ValueError, match="no values for metric"):
        build_input_table({"A": {"dice": [0.5]}}, "A", ("dice", "precision"))


def test_wilcoxon_table_pairs_patients_and_matches_scipy() -> None:
    reference = [0.80, 0.82, 0.85, 0.79, 0.90, 0.88]
    other = [0.70, 0.84, 0.75, 0.71, math.nan, 0.80]
    table = build_table({"A": {"dice": other}, "B": {"dice": reference}}, "B", ("dice",), test="wilcoxon")
    keep = [index for index, value in enumerate(other) if math.isfinite(value)]
    expected = stats.wilcoxon([other[i] for i in keep], [reference[i] for i in keep]).pvalue
    assert table.rows[0].p_value["dice"] == expected
    assert "Wilcoxon" in table.to_markdown()
    assert wilcoxon_p([0.5, 0.6], [0.5, 0.6]) == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        wilcoxon_p([0.5], [0.5, 0.6])
