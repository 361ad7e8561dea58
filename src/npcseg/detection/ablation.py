"""The exploration ablation of the paper's Table 2: prior-knowledge exploration (eps_priori 0.8, 0.4) against plain
eps-greedy (eps_priori 0), same training cases, same held-out cases, same seed and every other setting equal.

Beside the three agents the table holds supervised baselines scored on the same held-out slices (the box regressor;
the heat-map detector when a segmentation run is given) and two reference rows that need no training
(:mod:`npcseg.detection.references`): the start box with no search, and the ground-truth prior-knowledge policy.
They say what the numbers mean on the cohort at hand: where the start box already covers the tumour, recall alone
does not show that a detector works; its IoU must rise above the start box's while recall stays.

Output folder ``OUT``::

    <setting>/run/            the detector run of each setting (resumable; see :mod:`npcseg.detection.run_folder`)
    <setting>/test/           its scores on the held-out tumour slices (:mod:`npcseg.detection.evaluate`)
    box_regressor/            the supervised baseline (:mod:`npcseg.detection.regressor`), when one is asked for
    heatmap/                  the heat-map detector's scores (:mod:`npcseg.detection.heatmap`), when a run is given
                              (``heatmap_t<threshold>/`` per threshold when thresholds are given)
    start_box/, prior_policy/ the reference rows' scores
    ablation.csv / .md        one row per setting: recall and IoU min / max / mean on the held-out slices
    convergence.png           loss per epoch (and held-out recall per epoch) of the three runs

With ``monitor_test`` (the default) the held-out cases are also the runs' validation cases, so the convergence
figure shows their greedy recall per epoch; nothing is selected on it (every setting's result is its final weights).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from npcseg.detection.config import DetectorConfig
from npcseg.detection.evaluate import evaluate_detector
from npcseg.detection.figures import plot_convergence
from npcseg.detection.heatmap import run_heatmap_baseline
from npcseg.detection.references import REFERENCES, score_reference
from npcseg.detection.regressor import RegressorConfig, run_regressor_baseline
from npcseg.detection.run_folder import LOG_FILENAME
from npcseg.detection.scores import DetectionSummary, write_detection_table
from npcseg.detection.training import train_detector

logger = logging.getLogger(__name__)

ABLATION_SETTINGS: tuple[tuple[str, float], ...] = (
    ("eps_priori_0.8", 0.8),
    ("eps_priori_0.4", 0.4),
    ("eps_greedy", 0.0),
)
"""(name, start eps_priori) of the ablation's settings (the paper's Table 2)."""
BASELINE_SETTING = "box_regressor"
"""Row and folder name of the supervised baseline (a CNN regressing the box; Faster R-CNN needs torchvision)."""
HEATMAP_SETTING = "heatmap"
"""Row and folder name of the heat-map detector (the box of a segmentation run's thresholded probability map) at
the run's own threshold; :func:`heatmap_setting` names the rows of given thresholds."""
TABLE_STEM = "ablation"
CONVERGENCE_FILENAME = "convergence.png"


def heatmap_setting(threshold: float | None) -> str:
    """Row and folder name of the heat-map detector at ``threshold`` (``None``: the run's own): ``heatmap`` or
    ``heatmap_t0.1``."""
    return HEATMAP_SETTING if threshold is None else f"{HEATMAP_SETTING}_t{threshold:g}"


@dataclass(frozen=True)
class AblationRow:
    """One setting of the ablation: its name, start eps_priori, run folder and held-out summary."""

    setting: str
    eps_priori: float
    run_dir: Path
    summary: DetectionSummary


def run_exploration_ablation(
    cache: Path,
    out: Path,
    train_ids: Sequence[str],
    test_ids: Sequence[str],
    config: DetectorConfig,
    *,
    settings: Sequence[tuple[str, float]] = ABLATION_SETTINGS,
    monitor_test: bool = True,
    num_figures: int = 0,
    baseline: RegressorConfig | None = None,
    heatmap_run: Path | None = None,
    heatmap_thresholds: Sequence[float | None] = (None,),
    progress: bool = True,
) -> tuple[list[AblationRow], dict[str, DetectionSummary]]:
    """Train one detector per exploration setting and score each on the held-out cases' tumour slices.

    Args:
        cache: the preprocessed cache.
        out: the ablation folder (see the module docstring); a rerun resumes unfinished runs and reuses finished ones.
        train_ids: training cases (shared by every setting).
        test_ids: held-out cases (disjoint from ``train_ids``).
        config: every other setting; its ``exploration.eps_priori`` is replaced by each setting's value.
        settings: (name, eps_priori) pairs.
        monitor_test: validate on the held-out cases after every epoch (for the convergence figure only).
        num_figures: episode figures per setting (of held-out slices).
        baseline: settings of the supervised box regressor trained and scored on the same split (``None``: no
            regressor row).
        heatmap_run: a segmentation training run (trained on ``train_ids`` only, on this cache) whose probability
            maps give the heat-map detector's row (``None``: no such row).
        heatmap_thresholds: the heat-map detector's thresholds, one row each (``None``: the run's own); lower
            thresholds trade IoU for recall, so several show the trade-off on the same slices.
        progress: progress bars.

    Returns:
        One row per setting, in ``settings`` order, and the summaries of the other rows by name (baselines, then
        the references), in table order.

    Raises:
        ValueError: no training or test ids, overlapping ids, repeated setting names, repeated heat-map thresholds
            or thresholds without a heat-map run.
    """
    if not train_ids or not test_ids:
        raise ValueError("the exploration ablation needs training and test case ids")
    overlap = sorted(set(train_ids) & set(test_ids))
    if overlap:
        raise ValueError(f"case(s) {overlap} are in both the training and the test ids")
    names = [name for name, _ in settings]
    if len(set(names)) != len(names):
        raise ValueError(f"setting names repeat: {names}")
    if heatmap_run is None and any(threshold is not None for threshold in heatmap_thresholds):
        raise ValueError("heat-map thresholds were given without a heat-map run (a segmentation run to box)")
    if heatmap_run is not None and (not heatmap_thresholds or len(set(heatmap_thresholds)) != len(heatmap_thresholds)):
        raise ValueError(f"the heat-map thresholds must be given and distinct, got {list(heatmap_thresholds)}")
    out = Path(out)
    rows = []
    for name, eps_priori in settings:
        setting_config = replace(config, exploration=replace(config.exploration, eps_priori=eps_priori))
        run_dir = out / name / "run"
        logger.info("ablation %s: eps_priori %.2f -> %s", name, eps_priori, run_dir)
        train_detector(
            cache,
            train_ids,
            run_dir,
            setting_config,
            val_ids=test_ids if monitor_test else (),
            progress=progress,
        )
        summary = evaluate_detector(run_dir, cache, test_ids, out / name / "test", num_figures=num_figures)
        rows.append(AblationRow(name, eps_priori, run_dir, summary))
    caption = (
        f"Exploration ablation: {len(train_ids)} training case(s), {len(test_ids)} held-out case(s) "
        f"({rows[0].summary.num_slices} tumour slices), {config.epochs} epoch(s), seed {config.seed}."
    )
    others: dict[str, DetectionSummary] = {}
    if baseline is not None:
        logger.info("ablation baseline: supervised box regressor -> %s", out / BASELINE_SETTING)
        others[BASELINE_SETTING] = run_regressor_baseline(cache, train_ids, test_ids, out / BASELINE_SETTING, baseline)
    if heatmap_run is not None:
        for threshold in heatmap_thresholds:
            name = heatmap_setting(threshold)
            logger.info("ablation baseline: heat-map detector of %s -> %s", heatmap_run, out / name)
            others[name] = run_heatmap_baseline(cache, heatmap_run, test_ids, out / name, threshold=threshold)
    for name in REFERENCES:
        others[name] = score_reference(name, cache, test_ids, config, out / name)
    table = {row.setting: row.summary for row in rows} | others
    write_detection_table(out / TABLE_STEM, table, caption=caption)
    plot_convergence({row.setting: row.run_dir / LOG_FILENAME for row in rows}, out / CONVERGENCE_FILENAME)
    return rows, others
