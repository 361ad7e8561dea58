"""`npcseg detect`: train, run and compare the deep-Q-learning tumour box detector (SeqSeg instance level)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from npcseg.cli.options import comma_list

if TYPE_CHECKING:
    from npcseg.detection.config import DetectorConfig
    from npcseg.detection.scores import DetectionSummary

detect_app = typer.Typer(
    help="Deep-Q-learning tumour box detector (SeqSeg instance level): train, predict, exploration ablation; "
    "training of the whole detect-then-segment cascade.",
    no_args_is_help=True,
    add_completion=False,
)

CONFIG_HELP = "YAML file of DetectorConfig fields (nested 'reward' / 'exploration' sections too) over the defaults."


def _train_and_val_ids(cache: Path, cases: str | None, val_cases: str | None) -> tuple[list[str], list[str]]:
    """``--cases`` / ``--val-cases``; without ``--cases``, every labelled case of the cache not in ``--val-cases``."""
    from npcseg.data.dataset import labelled_cases

    val_ids = comma_list(val_cases) or []
    train_ids = comma_list(cases) or [case for case in labelled_cases(cache) if case not in set(val_ids)]
    return train_ids, val_ids


BACKBONE_HELP = (
    "Local weights of the frozen backbone (overrides the config's backbone_weights): torchvision-named ResNet "
    "weights, or a run folder / checkpoint whose network has an encoder (e.g. `npcseg detect presence`'s output)."
)


def _settings(
    config: Path | None, epochs: int | None, eps_priori: float | None, backbone: Path | None = None
) -> DetectorConfig:
    from npcseg.config import load_config_over, merge_over
    from npcseg.detection.config import DetectorConfig

    settings = load_config_over(DetectorConfig(), config) if config is not None else DetectorConfig()
    overrides: dict[str, object] = {}
    if epochs is not None:
        overrides["epochs"] = epochs
    if eps_priori is not None:
        overrides["exploration"] = {"eps_priori": eps_priori}
    if backbone is not None:
        overrides["backbone_weights"] = str(backbone.resolve())
    return merge_over(settings, overrides, where="command-line options") if overrides else settings


def _summary_line(summary: DetectionSummary) -> str:
    return (
        f"{summary.num_slices} tumour slice(s): recall mean {summary.recall_mean:.3f} (min {summary.recall_min:.3f}, "
        f"max {summary.recall_max:.3f}), IoU mean {summary.iou_mean:.3f} (min {summary.iou_min:.3f}, "
        f"max {summary.iou_max:.3f}), recall >= 0.95 on {100 * summary.fraction_recall_095:.1f} %"
    )


@detect_app.command("train")
def train_command(
    cache: Path = typer.Option(..., "--cache", help="Preprocessed cache folder (output of `npcseg preprocess`)."),
    out: Path = typer.Option(..., "--out", help="Run folder (created; a rerun resumes, a finished run is kept)."),
    cases: str | None = typer.Option(
        None, "--cases", help="Comma-separated training case ids (default: every labelled case of the cache)."
    ),
    val_cases: str | None = typer.Option(
        None, "--val-cases", help="Comma-separated validation case ids (greedy recall logged after every epoch)."
    ),
    splits: Path | None = typer.Option(
        None,
        "--splits",
        help="splits.json of a cross-validation: train on fold --fold's training cases, validate "
        "on its held-out cases (instead of --cases / --val-cases).",
    ),
    fold: int | None = typer.Option(None, "--fold", min=0, help="Fold of --splits."),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override the config's number of epochs."),
    eps_priori: float | None = typer.Option(
        None, "--eps-priori", min=0.0, max=1.0, help="Override the start probability of the prior-knowledge action."
    ),
    backbone: Path | None = typer.Option(None, "--backbone", help=BACKBONE_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train the detector on the tumour slices of the training cases (resumable)."""
    from rich.console import Console

    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.data.splits import load_splits
        from npcseg.detection.training import train_detector

        settings = _settings(config, epochs, eps_priori, backbone)
        if splits is not None or fold is not None:
            if splits is None or fold is None:
                raise ValueError("--splits and --fold go together")
            if cases is not None or val_cases is not None:
                raise ValueError("give either --splits/--fold or --cases/--val-cases, not both")
            folds = load_splits(splits)
            if fold >= len(folds):
                raise ValueError(f"{splits}: has folds 0..{len(folds) - 1}, not {fold}")
            train_ids, val_ids = list(folds[fold].train), list(folds[fold].val)
        else:
            train_ids, val_ids = _train_and_val_ids(cache, cases, val_cases)
        result = train_detector(cache, train_ids, out, settings, val_ids=val_ids, progress=progress)
    console = Console(soft_wrap=True, highlight=False)
    if result.already_complete:
        console.print(f"{out}: detector run already complete ({result.num_epochs} epochs); nothing to do")
    else:
        verb = "resumed and trained" if result.resumed else "trained"
        console.print(
            f"{verb} {result.epochs_trained} epoch(s) in {result.seconds:.1f} s on {result.num_train_slices} tumour "
            f"slice(s) of {len(train_ids)} case(s); feature cache hit rate {result.cache_hit_rate:.3f}"
        )
    last = result.log[-1]
    console.print(
        f"last epoch: loss {last['loss']:.4f}, training recall {last['train_recall']:.3f}, validation recall "
        f"{last['val_recall_mean']:.3f} (min {last['val_recall_min']:.3f}) -> {out}"
    )


@detect_app.command("predict")
def predict_command(
    run: Path = typer.Option(..., "--run", help="A finished detector run folder (`npcseg detect train`)."),
    cache: Path = typer.Option(..., "--cache", help="Preprocessed cache holding the cases."),
    out: Path = typer.Option(..., "--out", help="Output folder: detection_slices.csv, detection_summary.json."),
    cases: str | None = typer.Option(
        None, "--cases", help="Comma-separated case ids (default: the cache's labelled cases the run did not train on)."
    ),
    figures: int = typer.Option(0, "--figures", min=0, help="Episode figures to draw (slices spread evenly)."),
) -> None:
    """Detect the tumour box on every tumour slice of the cases and score recall and IoU."""
    from rich.console import Console

    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.data.dataset import labelled_cases
        from npcseg.detection.evaluate import evaluate_detector
        from npcseg.training.run_folder import read_run_record

        case_ids = comma_list(cases)
        if case_ids is None:
            trained = set(read_run_record(run).get("train_ids", []))
            case_ids = [case for case in labelled_cases(cache) if case not in trained]
            if not case_ids:
                raise ValueError(f"{cache}: every labelled case was trained on by {run}; name the cases with --cases")
        summary = evaluate_detector(run, cache, case_ids, out, num_figures=figures)
    console = Console(soft_wrap=True, highlight=False)
    console.print(f"{len(case_ids)} case(s), {_summary_line(summary)} -> {out}")


@detect_app.command("ablation")
def ablation_command(
    cache: Path = typer.Option(..., "--cache", help="Preprocessed cache folder."),
    out: Path = typer.Option(..., "--out", help="Ablation folder (created; a rerun resumes)."),
    train: str = typer.Option(..., "--train", help="Comma-separated training case ids."),
    test: str = typer.Option(..., "--test", help="Comma-separated held-out case ids."),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override the config's number of epochs."),
    figures: int = typer.Option(0, "--figures", min=0, help="Episode figures per setting."),
    backbone: Path | None = typer.Option(None, "--backbone", help=BACKBONE_HELP),
    baseline: bool = typer.Option(
        True, "--baseline/--no-baseline", help="Also train and score the supervised box regressor on the same split."
    ),
    baseline_config: Path | None = typer.Option(
        None, "--baseline-config", help="YAML file of RegressorConfig fields for the baseline (over the defaults)."
    ),
    heatmap: Path | None = typer.Option(
        None,
        "--heatmap",
        help="A segmentation training run (on --train cases only, this cache): add the heat-map detector's row.",
    ),
    heatmap_thresholds: list[float] | None = typer.Option(
        None,
        "--heatmap-threshold",
        min=0.0,
        max=1.0,
        help="Heat-map threshold; repeat for one row per threshold (default: one row at the run's own).",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Exploration ablation (Table 2): eps_priori 0.8 vs 0.4 vs plain eps-greedy on the same split; supervised
    baselines (box regressor, heat-map detector) and the start-box / ground-truth prior-policy references."""
    from rich.console import Console

    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.config import load_config_over
        from npcseg.detection.ablation import CONVERGENCE_FILENAME, TABLE_STEM, run_exploration_ablation
        from npcseg.detection.regressor import RegressorConfig

        settings = _settings(config, epochs, None, backbone)
        regressor = None
        if baseline:
            regressor = RegressorConfig(sequences=settings.sequences, seed=settings.seed)
            if baseline_config is not None:
                regressor = load_config_over(regressor, baseline_config)
        rows, others = run_exploration_ablation(
            cache,
            out,
            comma_list(train) or [],
            comma_list(test) or [],
            settings,
            num_figures=figures,
            baseline=regressor,
            heatmap_run=heatmap,
            heatmap_thresholds=tuple(heatmap_thresholds) if heatmap_thresholds else (None,),
            progress=progress,
        )
    console = Console(soft_wrap=True, highlight=False)
    for row in rows:
        console.print(f"{row.setting}: {_summary_line(row.summary)}")
    for name, summary in others.items():
        console.print(f"{name}: {_summary_line(summary)}")
    console.print(f"table -> {out / TABLE_STEM}.md / .csv; convergence figure -> {out / CONVERGENCE_FILENAME}")


@detect_app.command("presence")
def presence_command(
    cache: Path = typer.Option(..., "--cache", help="Preprocessed cache folder (output of `npcseg preprocess`)."),
    out: Path = typer.Option(..., "--out", help="Run folder (created; a rerun resumes, a finished run is kept)."),
    cases: str = typer.Option(..., "--cases", help="Comma-separated training case ids."),
    val_cases: str | None = typer.Option(
        None, "--val-cases", help="Comma-separated validation case ids (they pick the best epoch)."
    ),
    config: Path | None = typer.Option(None, "--config", help="YAML file of PresenceConfig fields over the defaults."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train the tumour-present slice classifier alone (the cascade's first piece; its encoder can serve as the
    detector's --backbone)."""
    from rich.console import Console

    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.cascade.presence import PresenceConfig, train_presence
        from npcseg.config import load_config_over

        settings = load_config_over(PresenceConfig(), config) if config is not None else PresenceConfig()
        train_ids, val_ids = comma_list(cases) or [], comma_list(val_cases) or []
        record = train_presence(cache, train_ids, out, settings, val_ids=val_ids, progress=progress)
    result = record.get("result", {})
    Console(soft_wrap=True, highlight=False).print(
        f"{out}: best epoch {result.get('best_epoch')}; validation accuracy {result.get('accuracy')}, sensitivity "
        f"{result.get('sensitivity')}, specificity {result.get('specificity')} (threshold 0.5, single slices)"
    )


CASCADE_CONFIG_HELP = (
    "YAML file with a 'cascade:' section (as a Table 6 comparison row's: crops, presence, 'detector:' and "
    "'presence:' sub-sections), a 'training:' section (the crop segmenter's TrainingConfig fields) and 'crop_seed', "
    "each over the defaults (configs/seqseg-cascade.yaml)."
)


@detect_app.command("cascade-train")
def cascade_train_command(
    cache: Path = typer.Option(..., "--cache", help="Preprocessed cache folder (output of `npcseg preprocess`)."),
    out: Path = typer.Option(
        ..., "--out", help="Cascade folder: detector/, crops/, segmenter/, presence/ (a rerun resumes each piece)."
    ),
    cases: str | None = typer.Option(
        None, "--cases", help="Comma-separated training case ids (default: every labelled case not in --val-cases)."
    ),
    val_cases: str | None = typer.Option(
        None,
        "--val-cases",
        help="Comma-separated validation case ids (detector recall logged; best epochs of the segmenter and the "
        "presence classifier).",
    ),
    config: Path | None = typer.Option(None, "--config", help=CASCADE_CONFIG_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train the detect-then-segment cascade (box detector, crop segmenter, tumour-present classifier) for
    `npcseg predict --method seqseg --cascade OUT`."""
    from rich.console import Console

    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.cascade.training import (
            CascadeTrainingConfig,
            load_cascade_training_config,
            train_cascade,
        )
        from npcseg.detection.training import DetectorRunResult

        settings = load_cascade_training_config(config) if config is not None else CascadeTrainingConfig()
        train_ids, val_ids = _train_and_val_ids(cache, cases, val_cases)
        result = train_cascade(cache, train_ids, out, settings, val_ids=val_ids, progress=progress)
    console = Console(soft_wrap=True, highlight=False)
    detector = result.detector
    if isinstance(detector, DetectorRunResult):
        last = detector.log[-1]
        console.print(
            f"detector: {detector.num_epochs} epoch(s), training recall {last['train_recall']:.3f}, validation "
            f"recall {last['val_recall_mean']:.3f}"
        )
    else:
        console.print(
            f"heat-map detector: whole-slice segmenter, best epoch {detector.best_epoch} (validation Dice "
            f"{detector.best_val_dice:.3f})"
        )
    console.print(
        f"crop segmenter: {result.num_crop_train_cases} training case(s) with tumour, best epoch "
        f"{result.segmenter.best_epoch} (validation Dice {result.segmenter.best_val_dice:.3f})"
    )
    if result.presence is None:
        console.print("no presence classifier: a slice holds tumour where the heat-map detector finds a box")
    else:
        presence = result.presence["result"]
        console.print(
            f"presence classifier: best epoch {presence['best_epoch']}, validation accuracy "
            f"{presence.get('accuracy', float('nan')):.3f}"
        )
    console.print(f"{result.seconds:.1f} s -> {out} (npcseg predict --method seqseg --cascade {out})")
