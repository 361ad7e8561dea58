"""Method-comparison tables: ``mean ± sd`` per metric over patients and a p-value of each row against a reference.

Used by the DEU input experiment (paper Table 1: two-sided Mann-Whitney U, unpaired, as the paper does) and by
``npcseg compare`` (SeqSeg Tables 3-5: two-sided Wilcoxon signed-rank on the patients both rows scored, since
every row is evaluated on the same cases). Non-finite values (e.g. a distance when a mask is empty, the
conformity coefficient ``-inf`` of a miss) are left out of every statistic; the Wilcoxon test drops a patient
when either of its two values is non-finite.

Tests: ``scipy.stats.mannwhitneyu(x, y, alternative="two-sided")`` (method ``auto``: exact for small samples
without ties) and ``scipy.stats.wilcoxon(x, y)`` (two-sided; method ``auto``; ``zero_method="wilcox"`` drops
zero differences; p = 1 when every difference is zero, where scipy's statistic is undefined).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from npcseg.evaluation.statistics import mann_whitney, wilcoxon_signed_rank
from npcseg.io.atomic import atomic_write_text

TestName = Literal["mann-whitney", "wilcoxon"]
TEST_DESCRIPTIONS: dict[str, str] = {
    "mann-whitney": "two-sided Mann-Whitney U (scipy.stats.mannwhitneyu, method='auto')",
    "wilcoxon": "two-sided Wilcoxon signed-rank on paired patients (scipy.stats.wilcoxon, method='auto')",
}
METRIC_TITLES = {
    "dice": "DSC",
    "sensitivity": "Sensitivity",
    "precision": "Precision",
    "conformity": "CC",
    "hd95_mm": "HD95 (mm)",
    "assd_mm": "ASSD (mm)",
    "hausdorff_mm": "HD (mm)",
    "surface_dice": "Surface DSC",
}


@dataclass(frozen=True)
class TableRow:
    """One method's line of the table.

    Attributes:
        name: the row label.
        num_cases: number of patients.
        mean: metric -> mean over patients (finite values only).
        sd: metric -> sample standard deviation (ddof = 1; nan with fewer than 2 values).
        p_value: metric -> two-sided p-value against the reference row; ``None`` on the reference.
    """

    name: str
    num_cases: int
    mean: dict[str, float] = field(default_factory=dict)
    sd: dict[str, float] = field(default_factory=dict)
    p_value: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricTable:
    """A comparison table.

    Attributes:
        rows: one row per method, in the order given.
        metrics: the metric columns.
        reference: the row every other one is tested against.
        test: ``mann-whitney`` or ``wilcoxon``.
        label: the heading of the name column (``Input``, ``Method``).
    """

    rows: tuple[TableRow, ...]
    metrics: tuple[str, ...]
    reference: str
    test: TestName = "mann-whitney"
    label: str = "Method"

    def records(self) -> list[dict[str, Any]]:
        """Flat records: ``<label>, num_cases, <metric>_mean, <metric>_sd, <metric>_p``."""
        records = []
        for row in self.rows:
            record: dict[str, Any] = {self.label.lower(): row.name, "num_cases": row.num_cases}
            for metric in self.metrics:
                record[f"{metric}_mean"] = row.mean[metric]
                record[f"{metric}_sd"] = row.sd[metric]
                record[f"{metric}_p"] = row.p_value[metric]
            records.append(record)
        return records

    def to_json(self) -> dict[str, Any]:
        """JSON-able description: test, reference, metrics and the records."""
        return {
            "test": TEST_DESCRIPTIONS[self.test],
            "reference": self.reference,
            "metrics": list(self.metrics),
            "rows": [_json_safe(record) for record in self.records()],
        }

    def to_csv(self) -> str:
        """The records as CSV text (empty p-value on the reference row)."""
        buffer = io.StringIO()
        records = self.records()
        writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow({key: "" if value is None else value for key, value in record.items()})
        return buffer.getvalue()

    def to_markdown(self) -> str:
        """A Markdown table: ``mean ± sd`` per metric and the p-value against the reference."""
        header = [self.label, "n"]
        for metric in self.metrics:
            title = METRIC_TITLES.get(metric, metric)
            header += [title, f"p ({title})"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            cells = [row.name, str(row.num_cases)]
            for metric in self.metrics:
                digits = 2 if metric.endswith("_mm") else 3
                cells += [format_mean_sd(row.mean[metric], row.sd[metric], digits), format_p_value(row.p_value[metric])]
            lines.append("| " + " | ".join(cells) + " |")
        note = f"\np: {TEST_DESCRIPTIONS[self.test]} of each row's per-patient values against {self.reference}'s.\n"
        return "\n".join(lines) + "\n" + note


def format_mean_sd(mean: float, sd: float, digits: int = 3) -> str:
    """``0.721 ± 0.036`` (``nan`` shown as ``n/a``)."""
    return f"{_number(mean, digits)} ± {_number(sd, digits)}"


def format_p_value(p_value: float | None) -> str:
    """``0.047``, ``< 0.001`` for tiny values, ``ref`` for the reference row, ``n/a`` for nan."""
    if p_value is None:
        return "ref"
    if math.isnan(p_value):
        return "n/a"
    return "< 0.001" if p_value < 0.001 else f"{p_value:.3f}"


def _number(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _json_safe(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in record.items()}


def finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The finite values as a float array."""
    array = np.asarray(list(values), dtype=float)
    return array[np.isfinite(array)]


def mann_whitney_p(sample: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value (:func:`npcseg.evaluation.statistics.mann_whitney`)."""
    return mann_whitney(sample, reference).p_value


def wilcoxon_p(sample: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray) -> float:
    """Two-sided paired Wilcoxon signed-rank p-value (:func:`npcseg.evaluation.statistics.wilcoxon_signed_rank`):
    pairs with a non-finite value dropped, nan without pairs, 1.0 when every difference is zero."""
    return wilcoxon_signed_rank(sample, reference).p_value


def build_table(
    values: Mapping[str, Mapping[str, Sequence[float]]],
    reference: str,
    metrics: Sequence[str],
    *,
    test: TestName = "mann-whitney",
    label: str = "Method",
) -> MetricTable:
    """Build the table from per-patient metric values.

    Args:
        values: row name -> metric -> one value per patient; for ``wilcoxon`` every row lists the same patients
            in the same order.
        reference: the row the others are tested against (must be in ``values``).
        metrics: the metric columns.
        test: ``mann-whitney`` (unpaired) or ``wilcoxon`` (paired).
        label: the heading of the name column.

    Raises:
        ValueError: when ``reference`` or a metric is missing, or the test is unknown.
    """
    if test not in TEST_DESCRIPTIONS:
        raise ValueError(f"unknown test {test!r}; use one of {list(TEST_DESCRIPTIONS)}")
    if reference not in values:
        raise ValueError(f"reference {reference!r} is not among the rows {list(values)}")
    compare = mann_whitney_p if test == "mann-whitney" else wilcoxon_p
    rows = []
    for name, by_metric in values.items():
        missing = [metric for metric in metrics if metric not in by_metric]
        if missing:
            raise ValueError(f"row {name!r} has no values for metric(s) {missing}")
        mean, sd, p_values = {}, {}, {}
        for metric in metrics:
            kept = finite(by_metric[metric])
            mean[metric] = float(kept.mean()) if kept.size else math.nan
            sd[metric] = float(kept.std(ddof=1)) if kept.size > 1 else math.nan
            p_values[metric] = None if name == reference else compare(by_metric[metric], values[reference][metric])
        num_cases = len(next(iter(by_metric.values()))) if by_metric else 0
        rows.append(TableRow(name=name, num_cases=num_cases, mean=mean, sd=sd, p_value=p_values))
    return MetricTable(rows=tuple(rows), metrics=tuple(metrics), reference=reference, test=test, label=label)


def write_table(table: MetricTable, out: Path, name: str = "table") -> None:
    """Write ``NAME.csv``, ``NAME.json`` and ``NAME.md`` into ``out`` (atomically)."""
    out = Path(out)
    atomic_write_text(out / f"{name}.csv", table.to_csv())
    atomic_write_text(out / f"{name}.json", json.dumps(table.to_json(), indent=1) + "\n")
    atomic_write_text(out / f"{name}.md", table.to_markdown())
