"""The demo job: the whole pipeline end to end on an embedded synthetic cohort.

``make demo`` runs :func:`run_demo`:

1. synthesise a training cohort and one unseen "new patient" with known ground truth;
2. validate the cohort;
3. register T1 onto T2 (the sequences DEU uses) and measure the target registration error against the known
   motion;
4. preprocess the cohort into the DEU cache (T2 grid at T1's in-plane spacing, 256 x 256 slices);
5. cross-validate the dual-sequence DEU briefly (few folds, few epochs, a narrow network, so it fits the CPU
   budget; the published schedule is 10 folds x 200 epochs);
6. contour the new patient fully automatically with the ensemble of the folds (raw sequences in, mask on its
   original T2 grid out) and score it against its label;
7. write the HTML report of the cross-validation and the new patient (``report.html``, :mod:`npcseg.report`).

Every stage writes under ``out/`` and is resumable, so a second run reuses what is there.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npcseg.io.atomic import atomic_write_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo run.

    Attributes:
        num_cases: synthetic patients in the cross-validation cohort.
        seed: cohort seed (the new patient uses ``seed + 1``).
        synth_size: synthetic acquisition preset, ``full`` (DEU-like 0.48 / 0.93 mm grids) or ``small``.
        num_workers: worker processes for the per-case stages.
        num_folds: cross-validation folds.
        epochs: training epochs per fold.
        max_slices_per_epoch: slices drawn per epoch (with tumour oversampling), to bound the CPU time.
        learning_rate: Adam's learning rate (the paper's 1e-4 needs far more steps than a demo has).
        batch_size: slices per optimiser step.
        widths: DEU channel widths (narrower than the default so the demo trains in minutes on a CPU).
        growth_rate: DEU dense-block growth rate.
    """

    num_cases: int = 8
    seed: int = 2020
    synth_size: str = "full"
    num_workers: int = 2
    num_folds: int = 3
    epochs: int = 7
    max_slices_per_epoch: int = 96
    learning_rate: float = 1e-3
    batch_size: int = 4
    widths: tuple[int, ...] = (8, 16, 32, 64, 128, 128)
    growth_rate: int = 8


@dataclass
class DemoResult:
    """Where the demo wrote its outputs and what it measured."""

    out: Path
    cohort: Path
    new_patient: Path
    registrations: Path
    preprocessed: Path
    crossvalidation: Path
    prediction: Path
    report: Path
    seconds: dict[str, float] = field(default_factory=dict)
    tre_rows: list[dict[str, Any]] = field(default_factory=list)
    cv_summary: dict[str, Any] = field(default_factory=dict)
    new_patient_metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``demo.json``."""
        from npcseg.evaluation.scoring import json_safe

        return json_safe(
            {
                "cohort": str(self.cohort),
                "new_patient": str(self.new_patient),
                "registrations": str(self.registrations),
                "preprocessed": str(self.preprocessed),
                "crossvalidation": str(self.crossvalidation),
                "prediction": str(self.prediction),
                "report": str(self.report),
                "seconds": self.seconds,
                "target_registration_error": self.tre_rows,
                "crossvalidation_summary": self.cv_summary,
                "new_patient_metrics": self.new_patient_metrics,
            }
        )


def run_demo(out: Path, config: DemoConfig | None = None, progress: bool = True) -> DemoResult:
    """Run the demo stages (module docstring) under ``out`` and write ``out/demo.json``."""
    import json

    from npcseg.config import save_config
    from npcseg.evaluation.scoring import score_prediction
    from npcseg.inference.cohort import predict_cohort
    from npcseg.io.validation import validate_cohort
    from npcseg.preprocessing.cache import preprocess_cohort
    from npcseg.preprocessing.config import preset as preprocessing_preset
    from npcseg.registration.cohort import evaluate_tre, register_cohort
    from npcseg.registration.config import RegistrationConfig
    from npcseg.report import load_source, scored_case, write_report
    from npcseg.synth.cohort import synthesize_cohort
    from npcseg.synth.config import preset_config
    from npcseg.training.config import TrainingConfig
    from npcseg.training.crossval import CrossValidationConfig, run_crossvalidation

    config = config or DemoConfig()
    out = Path(out)
    result = DemoResult(
        out=out,
        cohort=out / "cohort",
        new_patient=out / "new-patient",
        registrations=out / "registrations",
        preprocessed=out / "preprocessed",
        crossvalidation=out / "crossvalidation",
        prediction=out / "prediction",
        report=out / "report.html",
    )
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "demo.yaml")

    def timed(stage: str, start: float) -> None:
        result.seconds[stage] = time.perf_counter() - start
        logger.info("demo: %s done in %.1f s", stage, result.seconds[stage])

    start = time.perf_counter()
    synth_config = preset_config(config.synth_size)  # type: ignore[arg-type]
    synthesize_cohort(result.cohort, config.num_cases, config.seed, synth_config, num_workers=config.num_workers)
    synthesize_cohort(result.new_patient, 1, config.seed + 1, synth_config)
    timed("synth", start)

    start = time.perf_counter()
    report = validate_cohort(result.cohort, required=("t1", "t2", "t1c"), require_label=True)
    if not report.is_valid:
        raise ValueError(f"{result.cohort}: the synthetic cohort failed validation: {report.errors[0]}")
    timed("validate", start)

    start = time.perf_counter()
    register_cohort(
        result.cohort,
        result.registrations,
        RegistrationConfig(),
        sequences=("t1",),
        num_workers=config.num_workers,
        progress=progress,
    )
    result.tre_rows = evaluate_tre(result.cohort, result.registrations, sequences=("t1",))
    timed("register", start)

    start = time.perf_counter()
    preprocess_cohort(
        result.cohort,
        result.preprocessed,
        preprocessing_preset("deu"),
        registrations=result.registrations,
        num_workers=config.num_workers,
        progress=progress,
    )
    timed("preprocess", start)

    start = time.perf_counter()
    training = TrainingConfig(
        model="deu",
        model_options={"widths": config.widths, "growth_rate": config.growth_rate},
        sequences=("t1", "t2"),
        epochs=config.epochs,
        learning_rate=config.learning_rate,
        batch_size=config.batch_size,
        tumour_oversampling=0.5,
        max_slices_per_epoch=config.max_slices_per_epoch,
        num_threads=1,
        seed=config.seed,
    )
    cv = run_crossvalidation(
        result.cohort,
        result.preprocessed,
        result.crossvalidation,
        CrossValidationConfig(num_folds=config.num_folds, seed=config.seed, training=training),
        progress=progress,
    )
    result.cv_summary = cv.summary
    timed("cross-validation", start)

    start = time.perf_counter()
    predict_cohort([result.crossvalidation], result.new_patient, result.prediction, write_probability=True)
    new_case = sorted((result.new_patient / "cases").iterdir())[0]
    result.new_patient_metrics = score_prediction(
        result.prediction / f"{new_case.name}.nii.gz", new_case / "label.nii.gz"
    )
    timed("predict new patient", start)

    start = time.perf_counter()
    new_result = scored_case(
        new_case, result.prediction / f"{new_case.name}.nii.gz", result.new_patient_metrics, "new patient"
    )
    write_report(
        load_source(result.crossvalidation).with_cases([new_result], "new patient"), result.report, num_cases=2
    )
    logger.info("demo: report %s written in %.1f s", result.report, time.perf_counter() - start)

    atomic_write_text(out / "demo.json", json.dumps(result.to_dict(), indent=2))
    return result
