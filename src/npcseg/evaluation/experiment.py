"""The DEU input experiment (Ye et al. 2020, Table 1): T1 only vs T2 only vs T1 + T2 on the same folds.

Three cross-validations share one ``splits.json``: ``deu-single`` on T1, ``deu-single`` on T2 and the dual-path
``deu`` on T1 + T2, every other setting (widths, epochs, augmentation, post-processing, seeds) equal. Each arm is
a complete cross-validation folder (:mod:`npcseg.training.crossval`) under ``OUT/<arm>/``. The table gives, per
input, mean ± sd over patients of Dice, sensitivity and precision (out-of-fold, on the original T2 grids), and the
two-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``, its default ``method='auto'``: exact for small samples
without ties) of each single-sequence model's per-patient values against the dual-sequence model's, per metric,
as the paper does. (The samples are paired by patient; the paper's unpaired test is kept for comparability.)

Layout of ``OUT``::

    splits.json                  the shared folds (also copied into every arm's folder)
    t1/  t2/  t1_t2/             one cross-validation folder per input
    table.csv  table.json  table.md
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from npcseg.io.atomic import atomic_write_text

if TYPE_CHECKING:
    from npcseg.training.crossval import CrossValidationConfig, CrossValidationResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputArm:
    """One arm of the input experiment.

    Attributes:
        name: the row label in the table (``T1``, ``T2``, ``T1+T2``).
        folder: the arm's sub-folder of the experiment folder.
        model: the registered network name.
        sequences: the input sequences, in channel order.
    """

    name: str
    folder: str
    model: str
    sequences: tuple[str, ...]


INPUT_ARMS: tuple[InputArm, ...] = (
    InputArm("T1", "t1", "deu-single", ("t1",)),
    InputArm("T2", "t2", "deu-single", ("t2",)),
    InputArm("T1+T2", "t1_t2", "deu", ("t1", "t2")),
)
"""The paper's three inputs; the last one is the reference the others are tested against."""
REFERENCE_ARM = "T1+T2"
TABLE_METRICS: tuple[str, ...] = ("dice", "sensitivity", "precision")
"""The metrics of the paper's Table 1 (names of :class:`npcseg.evaluation.metrics.SegmentationMetrics` fields)."""
METRIC_TITLES = {"dice": "DSC", "sensitivity": "Sensitivity", "precision": "Precision"}
TEST_NAME = "two-sided Mann-Whitney U (scipy.stats.mannwhitneyu, method='auto')"


@dataclass(frozen=True)
class TableRow:
    """One input's line of the table.

    Attributes:
        input: the arm's name.
        num_cases: number of patients.
        mean: metric -> mean over patients (finite values only).
        sd: metric -> sample standard deviation (ddof = 1).
        p_value: metric -> two-sided Mann-Whitney U p-value against the reference arm; ``None`` on the reference.
    """

    input: str
    num_cases: int
    mean: dict[str, float] = field(default_factory=dict)
    sd: dict[str, float] = field(default_factory=dict)
    p_value: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class InputTable:
    """The input-experiment table (paper Table 1).

    Attributes:
        rows: one row per input, in the order given.
        metrics: the metric columns.
        reference: the arm every other one is tested against.
    """

    rows: tuple[TableRow, ...]
    metrics: tuple[str, ...]
    reference: str

    def records(self) -> list[dict[str, Any]]:
        """Flat records (one per input): ``input, num_cases, <metric>_mean, <metric>_sd, <metric>_p``."""
        records = []
        for row in self.rows:
            record: dict[str, Any] = {"input": row.input, "num_cases": row.num_cases}
            for metric in self.metrics:
                record[f"{metric}_mean"] = row.mean[metric]
                record[f"{metric}_sd"] = row.sd[metric]
                record[f"{metric}_p"] = row.p_value[metric]
            records.append(record)
        return records

    def to_json(self) -> dict[str, Any]:
        """JSON-able description: test, reference, metrics and the records."""
        return {
            "test": TEST_NAME,
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
        header = ["Input", "n"]
        for metric in self.metrics:
            header += [METRIC_TITLES.get(metric, metric), f"p ({METRIC_TITLES.get(metric, metric)})"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            cells = [row.input, str(row.num_cases)]
            for metric in self.metrics:
                cells += [format_mean_sd(row.mean[metric], row.sd[metric]), format_p_value(row.p_value[metric])]
            lines.append("| " + " | ".join(cells) + " |")
        note = f"\np: {TEST_NAME} of each input's per-patient values against {self.reference}'s.\n"
        return "\n".join(lines) + "\n" + note


def format_mean_sd(mean: float, sd: float, digits: int = 3) -> str:
    """``0.721 ± 0.036`` (``nan`` shown as ``n/a``)."""
    return f"{_number(mean, digits)} ± {_number(sd, digits)}"


def format_p_value(p_value: float | None) -> str:
    """``0.047``, ``< 0.001`` for tiny values, ``ref`` for the reference arm, ``n/a`` for nan."""
    if p_value is None:
        return "ref"
    if math.isnan(p_value):
        return "n/a"
    return "< 0.001" if p_value < 0.001 else f"{p_value:.3f}"


def _number(value: float, digits: int) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _json_safe(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in record.items()}


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    return array[np.isfinite(array)]


def mann_whitney_p(sample: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value of two samples (non-finite values dropped); nan if either is empty."""
    first, second = _finite(sample), _finite(reference)
    if first.size == 0 or second.size == 0:
        return math.nan
    return float(stats.mannwhitneyu(first, second, alternative="two-sided").pvalue)


def build_input_table(
    values: Mapping[str, Mapping[str, Sequence[float]]],
    reference: str = REFERENCE_ARM,
    metrics: Sequence[str] = TABLE_METRICS,
) -> InputTable:
    """Build the table from per-patient metric values.

    Args:
        values: arm name -> metric -> one value per patient (non-finite values are left out of every statistic).
        reference: the arm the others are tested against (must be in ``values``).
        metrics: the metric columns.

    Returns:
        Rows in the order of ``values``: mean, sample sd (ddof = 1; nan with fewer than 2 values) and, except on
        the reference row, the two-sided Mann-Whitney U p-value against the reference.

    Raises:
        ValueError: when ``reference`` or a metric is missing.
    """
    if reference not in values:
        raise ValueError(f"reference input {reference!r} is not among the inputs {list(values)}")
    rows = []
    for name, by_metric in values.items():
        missing = [metric for metric in metrics if metric not in by_metric]
        if missing:
            raise ValueError(f"input {name!r} has no values for metric(s) {missing}")
        mean, sd, p_values = {}, {}, {}
        for metric in metrics:
            finite = _finite(by_metric[metric])
            mean[metric] = float(finite.mean()) if finite.size else math.nan
            sd[metric] = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
            p_values[metric] = None if name == reference else mann_whitney_p(finite, values[reference][metric])
        num_cases = len(next(iter(by_metric.values()))) if by_metric else 0
        rows.append(TableRow(input=name, num_cases=num_cases, mean=mean, sd=sd, p_value=p_values))
    return InputTable(rows=tuple(rows), metrics=tuple(metrics), reference=reference)


def write_table(table: InputTable, out: Path) -> None:
    """Write ``table.csv``, ``table.json`` and ``table.md`` into ``out`` (atomically)."""
    out = Path(out)
    atomic_write_text(out / "table.csv", table.to_csv())
    atomic_write_text(out / "table.json", json.dumps(table.to_json(), indent=1) + "\n")
    atomic_write_text(out / "table.md", table.to_markdown())


@dataclass(frozen=True)
class InputExperimentResult:
    """What :func:`run_input_experiment` produced.

    Attributes:
        out: the experiment folder.
        table: the comparison table.
        arms: arm name -> its cross-validation result.
    """

    out: Path
    table: InputTable
    arms: dict[str, CrossValidationResult]


def arm_config(base: CrossValidationConfig, arm: InputArm) -> CrossValidationConfig:
    """``base`` with the arm's network and input sequences; everything else unchanged."""
    import dataclasses

    training = dataclasses.replace(base.training, model=arm.model, sequences=arm.sequences)
    return dataclasses.replace(base, training=training)


def run_input_experiment(
    cohort: Path,
    cache: Path,
    out: Path,
    config: CrossValidationConfig,
    *,
    arms: Sequence[InputArm] = INPUT_ARMS,
    progress: bool = True,
) -> InputExperimentResult:
    """Cross-validate every input arm on the same folds and build the comparison table.

    Args:
        cohort: the labelled cohort (labels read from its original files).
        cache: its preprocessed cache holding every sequence of every arm (for the paper: T1 and T2).
        out: the experiment folder (created; a rerun resumes every arm and reuses the splits).
        config: the shared cross-validation settings; each arm replaces ``training.model`` and
            ``training.sequences``.
        arms: the inputs to compare; the last one is the reference of the tests.
        progress: show progress bars.

    Returns:
        The table and every arm's result; ``table.csv`` / ``table.json`` / ``table.md`` are written into ``out``.
    """
    from npcseg.data.splits import SPLITS_FILENAME, splits_for
    from npcseg.training.crossval import cohort_cases, run_crossvalidation, tumour_volumes_ml

    out = Path(out)
    if not arms:
        raise ValueError("the input experiment needs at least one input arm")
    cases = cohort_cases(cohort)
    case_ids = [case.case_id for case in cases]
    folds = splits_for(
        out / SPLITS_FILENAME, case_ids, tumour_volumes_ml(cache, case_ids), config.num_folds, config.seed
    )
    results: dict[str, CrossValidationResult] = {}
    for arm in arms:
        logger.info("input experiment: %s (%s on %s)", arm.name, arm.model, "+".join(arm.sequences))
        results[arm.name] = run_crossvalidation(
            cohort, cache, out / arm.folder, arm_config(config, arm), splits=folds, progress=progress
        )
    values = {
        name: {metric: [row[metric] for row in result.metrics] for metric in TABLE_METRICS}
        for name, result in results.items()
    }
    table = build_input_table(values, reference=arms[-1].name)
    write_table(table, out)
    return InputExperimentResult(out=out, table=table, arms=results)
