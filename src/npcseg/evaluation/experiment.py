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

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from npcseg.evaluation.table import MetricTable, build_table, write_table

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


def build_input_table(
    values: Mapping[str, Mapping[str, Sequence[float]]],
    reference: str = REFERENCE_ARM,
    metrics: Sequence[str] = TABLE_METRICS,
) -> MetricTable:
    """The paper's table from per-patient values (arm -> metric -> values): mean, sd and the two-sided
    Mann-Whitney U p-value of each arm against ``reference`` (see :func:`npcseg.evaluation.table.build_table`)."""
    return build_table(values, reference, metrics, test="mann-whitney", label="Input")


@dataclass(frozen=True)
class InputExperimentResult:
    """What :func:`run_input_experiment` produced.

    Attributes:
        out: the experiment folder.
        table: the comparison table.
        arms: arm name -> its cross-validation result.
    """

    out: Path
    table: MetricTable
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
    from npcseg.training.crossval import run_crossvalidation, tumour_volumes_ml
    from npcseg.training.crossval_checks import cohort_cases

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
