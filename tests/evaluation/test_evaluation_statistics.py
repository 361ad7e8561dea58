"""`npcseg stats`: tests agree with scipy.stats exactly, hand-computed cases, degenerate inputs, tables, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from npcseg.cli.main import app
from npcseg.evaluation.statistics import (
    CHI_SQUARE,
    FISHER,
    KRUSKAL,
    MANN_WHITNEY,
    BootstrapConfig,
    bootstrap_mean_ci,
    contingency_test,
    groups_test,
    kruskal_wallis,
    mann_whitney,
    summarize_sample,
    wilcoxon_signed_rank,
)
from npcseg.evaluation.stats_tables import compare_metric_files, read_metric_values, write_table
from npcseg.evaluation.subgroups import Outcome, assign_groups, subgroup_table

# ---------------------------------------------------------------- tests against scipy and by hand


def test_wilcoxon_agrees_with_scipy_and_drops_non_finite_pairs() -> None:
    rng = np.random.default_rng(1)
    first, second = rng.normal(0.7, 0.1, 30), rng.normal(0.75, 0.1, 30)
    expected = stats.wilcoxon(first, second)
    result = wilcoxon_signed_rank(first, second)
    assert (result.statistic, result.p_value, result.num_values) == (expected.statistic, expected.pvalue, 30)
    with_nan = np.append(first, [np.nan, 0.5]), np.append(second, [0.4, -np.inf])
    assert wilcoxon_signed_rank(*with_nan) == result


def test_wilcoxon_hand_case_exact_distribution() -> None:
    # 5 positive differences with distinct magnitudes: W- = 0, exact two-sided p = 2 / 2^5
    result = wilcoxon_signed_rank([1.1, 2.2, 3.3, 4.4, 5.5], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert result.statistic == 0.0 and result.p_value == pytest.approx(2 / 32, abs=1e-15)


def test_wilcoxon_of_identical_samples_is_p_one_by_rule() -> None:
    values = [0.7, 0.8, 0.9]
    result = wilcoxon_signed_rank(values, values)
    assert (result.statistic, result.p_value, result.num_values) == (0.0, 1.0, 3)
    assert "all paired differences are zero" in result.note
    assert math.isnan(wilcoxon_signed_rank([np.nan], [1.0]).p_value)
    with pytest.raises(ValueError, match="differ in length"):
        wilcoxon_signed_rank([1.0, 2.0], [1.0])


def test_mann_whitney_agrees_with_scipy_and_hand_case() -> None:
    rng = np.random.default_rng(2)
    first, second = rng.normal(0.7, 0.1, 12), rng.normal(0.8, 0.1, 9)
    expected = stats.mannwhitneyu(first, second, alternative="two-sided")
    result = mann_whitney(np.append(first, np.nan), second)
    assert (result.statistic, result.p_value) == (expected.statistic, expected.pvalue)
    assert result.test == MANN_WHITNEY and result.num_values == 21
    # complete separation of 3 vs 3: U = 0, exact two-sided p = 2 / C(6, 3) = 0.1
    separated = mann_whitney([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert separated.statistic == 0.0 and separated.p_value == pytest.approx(0.1, abs=1e-15)
    assert math.isnan(mann_whitney([], [1.0]).p_value)


def test_kruskal_agrees_with_scipy_and_degenerate_rules() -> None:
    rng = np.random.default_rng(3)
    groups = [rng.normal(mean, 0.1, size) for mean, size in ((0.7, 8), (0.75, 11), (0.8, 6))]
    expected = stats.kruskal(*groups)
    result = kruskal_wallis([*groups, [np.nan]])  # an all-nan group is dropped
    assert (result.statistic, result.p_value, result.num_values) == (expected.statistic, expected.pvalue, 25)
    assert groups_test(groups).test == KRUSKAL
    assert groups_test(groups[:2]) == mann_whitney(groups[0], groups[1])
    identical = kruskal_wallis([[0.5, 0.5], [0.5], [0.5, 0.5]])
    assert (identical.statistic, identical.p_value) == (0.0, 1.0)
    assert math.isnan(kruskal_wallis([[0.1, 0.2], []]).p_value)


def test_fisher_for_small_2x2_tables_hand_computed() -> None:
    # [[3, 0], [0, 3]]: each extreme table has probability 1 / C(6, 3) = 1 / 20; two-sided p = 0.1
    result = contingency_test([[3, 0], [0, 3]])
    assert result.test == FISHER and result.p_value == pytest.approx(0.1, abs=1e-15)
    table = [[1, 7], [5, 2]]
    assert contingency_test(table).p_value == stats.fisher_exact(table).pvalue


def test_chi_square_for_large_tables_with_yates_correction_by_hand() -> None:
    # [[20, 10], [10, 20]]: expected 15 everywhere; Yates: 4 * (|±5| - 0.5)^2 / 15 = 5.4 on 1 degree of freedom
    result = contingency_test([[20, 10], [10, 20]])
    assert result.test == CHI_SQUARE and result.note == ""
    assert result.statistic == pytest.approx(5.4, abs=1e-12)
    assert result.p_value == pytest.approx(stats.chi2.sf(5.4, 1), rel=1e-12)
    table = [[6, 1], [3, 4], [1, 5]]
    expected = stats.chi2_contingency(table)
    larger = contingency_test(table)
    assert (larger.statistic, larger.p_value) == (expected.statistic, expected.pvalue)
    assert "expected count < 5" in larger.note


def test_contingency_degenerate_tables() -> None:
    assert math.isnan(contingency_test([[4, 0], [6, 0]]).p_value)  # nobody fails the outcome: nothing varies
    assert contingency_test([[3, 0, 0], [0, 3, 0]]).p_value == pytest.approx(0.1)  # zero column dropped
    with pytest.raises(ValueError, match="non-negative integer"):
        contingency_test([[1.5, 2], [1, 1]])


def test_bootstrap_ci_constant_sample_is_a_point_and_short_samples_nan() -> None:
    assert bootstrap_mean_ci([0.7] * 5) == (0.7, 0.7)
    assert all(math.isnan(value) for value in bootstrap_mean_ci([0.7]))
    assert all(math.isnan(value) for value in bootstrap_mean_ci([np.nan, np.inf]))


def test_bootstrap_ci_agrees_with_scipy_and_is_seeded() -> None:
    values = np.random.default_rng(4).normal(0.7, 0.1, 25)
    config = BootstrapConfig(n_resamples=2000, confidence_level=0.9, seed=7)
    expected = stats.bootstrap(
        (values,), np.mean, n_resamples=2000, confidence_level=0.9, method="percentile", rng=np.random.default_rng(7)
    ).confidence_interval
    low, high = bootstrap_mean_ci(values, config)
    assert (low, high) == (expected.low, expected.high)
    assert low < values.mean() < high
    assert bootstrap_mean_ci(values, config) == (low, high)
    assert bootstrap_mean_ci(values, BootstrapConfig(n_resamples=2000, confidence_level=0.9, seed=8)) != (low, high)
    with pytest.raises(ValueError, match="confidence_level"):
        BootstrapConfig(confidence_level=1.0)


def test_summarize_sample_counts_excluded_values() -> None:
    summary = summarize_sample([1.0, 2.0, 3.0, np.nan, -np.inf], BootstrapConfig(n_resamples=100))
    assert (summary.num_values, summary.num_excluded, summary.mean, summary.sd) == (3, 2, 2.0, 1.0)


# ---------------------------------------------------------------- comparison of per-case tables


def _metrics_csv(path: Path, values: dict[str, float], column: str = "dice") -> Path:
    lines = [f"case_id,fold,{column},hd95_mm"] + [f"{case},0,{value},{2 * value}" for case, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def three_tables(tmp_path: Path) -> list[Path]:
    rng = np.random.default_rng(5)
    cases = [f"c{index:02d}" for index in range(12)]
    base = dict(zip(cases, rng.uniform(0.6, 0.9, 12), strict=True))
    better = {case: value + 0.02 + 0.01 * rng.standard_normal() for case, value in base.items()}
    partial = {case: base[case] - 0.05 for case in cases[4:]}
    partial["extra"] = 0.5
    return [
        _metrics_csv(tmp_path / "a.csv", base),
        _metrics_csv(tmp_path / "b.csv", better),
        _metrics_csv(tmp_path / "c.csv", partial),
    ]


def test_compare_pairs_common_cases_and_agrees_with_scipy(three_tables: list[Path]) -> None:
    first, second, third = three_tables
    comparison = compare_metric_files(three_tables, "dsc", bootstrap=BootstrapConfig(n_resamples=500))
    assert comparison.metric == "dice" and comparison.reference == str(first)
    reference_row, second_row, third_row = comparison.rows
    assert reference_row.paired is None and reference_row.num_matched == 12
    _, a = read_metric_values(first, "dice")
    _, b = read_metric_values(second, "dice")
    _, c = read_metric_values(third, "dice")
    assert second_row.paired is not None and second_row.unpaired is not None
    assert second_row.paired.p_value == stats.wilcoxon(list(b.values()), list(a.values())).pvalue
    assert third_row.num_matched == 8 and third_row.summary.num_values == 9
    common = [case for case in c if case in a]
    assert third_row.paired is not None and third_row.unpaired is not None
    assert third_row.paired.p_value == stats.wilcoxon([c[k] for k in common], [a[k] for k in common]).pvalue
    expected = stats.mannwhitneyu(list(c.values()), list(a.values()), alternative="two-sided")
    assert third_row.unpaired.p_value == expected.pvalue


def test_compare_reference_choice_and_errors(three_tables: list[Path], tmp_path: Path) -> None:
    comparison = compare_metric_files(three_tables, "hd95", reference=three_tables[1])
    assert comparison.metric == "hd95_mm" and comparison.rows[1].paired is None
    with pytest.raises(ValueError, match="is not among the tables"):
        compare_metric_files(three_tables, reference=tmp_path / "other.csv")
    disjoint = _metrics_csv(tmp_path / "d.csv", {"zz": 0.5})
    with pytest.raises(ValueError, match="shares no case_id with the reference"):
        compare_metric_files([three_tables[0], disjoint])
    with pytest.raises(ValueError, match="no metric column 'hd'"):
        compare_metric_files(three_tables, "hd")
    with pytest.raises(ValueError, match="at least 2"):
        compare_metric_files(three_tables[:1])


def test_read_metric_values_nan_cells_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("case_id,dice\na,0.5\nb,nan\nc,\n")
    _, values = read_metric_values(path, "dice")
    assert values["a"] == 0.5 and math.isnan(values["b"]) and math.isnan(values["c"])
    path.write_text("case_id,dice\na,0.5\na,0.6\n")
    with pytest.raises(ValueError, match="line 3: duplicate case_id 'a'"):
        read_metric_values(path, "dice")
    path.write_text("case_id,dice\na,good\n")
    with pytest.raises(ValueError, match="dice 'good' is not a number"):
        read_metric_values(path, "dice")
    path.write_text("id,dice\na,0.5\n")
    with pytest.raises(ValueError, match="no 'case_id' column"):
        read_metric_values(path, "dice")


def test_write_table_formats(three_tables: list[Path], tmp_path: Path) -> None:
    comparison = compare_metric_files(three_tables[:2], bootstrap=BootstrapConfig(n_resamples=200))
    write_table(comparison, tmp_path / "t.csv")
    write_table(comparison, tmp_path / "t.json")
    write_table(comparison, tmp_path / "t.md")
    assert (tmp_path / "t.csv").read_text().splitlines()[0].startswith("file,num_values,num_excluded,mean,sd,ci_low")
    assert json.loads((tmp_path / "t.json").read_text())["rows"][0]["wilcoxon_p"] is None
    assert "| ref |" in (tmp_path / "t.md").read_text()
    with pytest.raises(ValueError, match=r"use \.csv, \.json or \.md"):
        write_table(comparison, tmp_path / "t.xlsx")


# ---------------------------------------------------------------- subgroups (SeqSeg Tables 7-8)


@pytest.fixture()
def cohort_tables(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(6)
    categories = ["T1", "T2", "T3", "T4"] * 5
    clinical = ["case_id,t_category,chemotherapy,age"]
    values = {}
    for index, category in enumerate(categories):
        case_id = f"p{index:02d}"
        age = "" if index == 19 else str(40.0 + index + 0.5)
        clinical.append(f"{case_id},{category},{index % 2},{age}")
        values[case_id] = 0.6 + 0.05 * int(category[1]) + 0.02 * rng.standard_normal()
    values["no_clinical"] = 0.5
    (tmp_path / "clinical.csv").write_text("\n".join(clinical) + "\n")
    return _metrics_csv(tmp_path / "metrics.csv", values), tmp_path / "clinical.csv"


def test_subgroups_merged_t_categories_use_mann_whitney(cohort_tables: tuple[Path, Path]) -> None:
    metrics, clinical = cohort_tables
    groups = {"T1+T2": ["T1", "T2"], "T3+T4": ["T3", "T4"]}
    table = subgroup_table(metrics, clinical, "t_category", metrics=("dice", "hd95"), groups=groups)
    assert [row.group for row in table.rows] == ["T1+T2", "T3+T4"]
    assert [row.num_cases for row in table.rows] == [10, 10] and table.num_without_clinical == 1
    _, values = read_metric_values(metrics, "dice")
    early = [values[f"p{i:02d}"] for i in range(20) if i % 4 < 2]
    late = [values[f"p{i:02d}"] for i in range(20) if i % 4 >= 2]
    assert table.rows[0].mean["dice"] == pytest.approx(np.mean(early), abs=1e-15)
    assert table.rows[0].sd["dice"] == pytest.approx(np.std(early, ddof=1), abs=1e-15)
    assert table.tests["dice"].p_value == stats.mannwhitneyu(early, late, alternative="two-sided").pvalue
    assert table.metrics == ("dice", "hd95_mm")
    markdown = table.to_markdown()
    assert "| t_category | dice | hd95_mm | n |" in markdown and "| T1+T2 |" in markdown
    assert "1 case(s) without a clinical row" in markdown


def test_subgroups_four_categories_use_kruskal(cohort_tables: tuple[Path, Path]) -> None:
    metrics, clinical = cohort_tables
    table = subgroup_table(metrics, clinical, "t_category")
    assert [row.group for row in table.rows] == ["T1", "T2", "T3", "T4"]
    _, values = read_metric_values(metrics, "dice")
    samples = [[values[f"p{i:02d}"] for i in range(20) if i % 4 == k] for k in range(4)]
    assert table.tests["dice"].test == KRUSKAL and table.tests["dice"].p_value == stats.kruskal(*samples).pvalue


def test_subgroups_median_split_and_missing_covariate(cohort_tables: tuple[Path, Path]) -> None:
    metrics, clinical = cohort_tables
    table = subgroup_table(metrics, clinical, "age", bins="median")
    ages = [40.0 + i + 0.5 for i in range(19)]  # p19's age is missing
    median = float(np.median(ages))
    assert table.binning == f"median split at {median:g}" and table.num_missing_covariate == 1
    assert [row.group for row in table.rows] == [f"<= {median:g}", f"> {median:g}"]
    assert [row.num_cases for row in table.rows] == [10, 9]
    with pytest.raises(ValueError, match="non-integer numbers; group it with bins"):
        subgroup_table(metrics, clinical, "age")
    cut = subgroup_table(metrics, clinical, "age", bins="45,50")
    assert [row.group for row in cut.rows] == ["<= 45", "(45, 50]", "> 50"]
    assert [row.num_cases for row in cut.rows] == [5, 5, 9]


def test_subgroups_outcome_contingency_agrees_with_scipy(cohort_tables: tuple[Path, Path]) -> None:
    metrics, clinical = cohort_tables
    table = subgroup_table(metrics, clinical, "chemotherapy", outcome=Outcome.parse("dsc>=0.75"))
    assert table.outcome == Outcome("dice", ">=", 0.75)
    _, values = read_metric_values(metrics, "dice")
    counts = []
    for chemo in (0, 1):
        members = [values[f"p{i:02d}"] for i in range(20) if i % 2 == chemo]
        counts.append([sum(value >= 0.75 for value in members), sum(value < 0.75 for value in members)])
    assert [[row.num_outcome, row.num_outcome_known - row.num_outcome] for row in table.rows] == counts
    assert table.outcome_test == contingency_test(counts)
    record = table.records()[0]
    assert record["chemotherapy"] == "0" and "num_dice>=0.75" in record and "outcome_p" in record


def test_assign_groups_rules() -> None:
    labels, order, _ = assign_groups({"a": 2, "b": 10, "c": 1}, "n", int)
    assert order == ["1", "2", "10"] and labels == {"a": "2", "b": "10", "c": "1"}
    with pytest.raises(ValueError, match="is in two groups"):
        assign_groups({"a": "T1"}, "t", str, groups={"x": ["T1"], "y": ["T1"]})
    with pytest.raises(ValueError, match="not numeric"):
        assign_groups({"a": "T1"}, "t", str, bins="median")
    with pytest.raises(ValueError, match="ascending"):
        assign_groups({"a": 1.5}, "age", float, bins="60,50")
    with pytest.raises(ValueError, match="not of the form"):
        Outcome.parse("dice=0.7")


# ---------------------------------------------------------------- CLI


def test_cli_stats_compare_prints_and_writes(three_tables: list[Path], tmp_path: Path) -> None:
    arguments = ["stats", "compare", *map(str, three_tables), "--metric", "dice", "--resamples", "300"]
    out = [str(tmp_path / "cmp.md"), str(tmp_path / "cmp.json")]
    options = ["--reference", str(three_tables[0]), "--out", out[0], "--out", out[1]]
    result = CliRunner().invoke(app, [*arguments, *options])
    assert result.exit_code == 0, result.output
    assert "p Wilcoxon" in result.output and "matched" in result.output
    assert (tmp_path / "cmp.md").is_file() and json.loads((tmp_path / "cmp.json").read_text())["metric"] == "dice"


def test_cli_stats_compare_no_overlap_exits_2(three_tables: list[Path], tmp_path: Path) -> None:
    disjoint = _metrics_csv(tmp_path / "d.csv", {"zz": 0.5})
    result = CliRunner().invoke(app, ["stats", "compare", str(three_tables[0]), str(disjoint)])
    assert result.exit_code == 2 and "shares no case_id" in result.output


def test_cli_stats_subgroups(cohort_tables: tuple[Path, Path], tmp_path: Path) -> None:
    metrics, clinical = cohort_tables
    arguments = ["stats", "subgroups", str(metrics), "--clinical", str(clinical), "--by", "t_category"]
    options = ["--group", "T1+T2=T1,T2", "--group", "T3+T4=T3,T4", "--metric", "dice", "--metric", "hd95"]
    out = tmp_path / "sub.csv"
    result = CliRunner().invoke(app, [*arguments, *options, "--outcome", "dice>=0.75", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "T1+T2" in result.output and "Mann-Whitney" in result.output
    assert out.read_text().splitlines()[0].startswith("t_category,num_cases,dice_mean,dice_sd,dice_p")
    bad = CliRunner().invoke(app, [*arguments, "--group", "T1+T2"])
    assert bad.exit_code == 2 and "LABEL=VALUE" in bad.output
    missing = CliRunner().invoke(app, ["stats", "subgroups", str(metrics), "--clinical", str(clinical), "--by", "x"])
    assert missing.exit_code == 2 and "no column 'x'" in missing.output
