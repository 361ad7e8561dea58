"""``npcseg`` entry point. Each command lives in its own module and imports its heavy dependencies inside the
function, so ``npcseg --help`` stays fast."""

from __future__ import annotations

import logging

import typer

from npcseg.cli import (
    compare,
    cv,
    demo,
    detect,
    evaluate,
    experiment,
    export,
    import_data,
    predict,
    preprocess,
    register,
    report,
    stats,
    synth,
    train,
    validate,
)

app = typer.Typer(
    name="npcseg",
    help="Automatic nasopharyngeal carcinoma segmentation on multi-sequence MRI (DEU, SeqSeg).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages.")) -> None:
    """Automatic nasopharyngeal carcinoma segmentation on multi-sequence MRI (DEU, SeqSeg)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s")


app.command("synth")(synth.synth_command)
app.command("validate")(validate.validate_command)
app.command("register")(register.register_command)
app.command("preprocess")(preprocess.preprocess_command)
app.command("demo")(demo.demo_command)
app.command("train")(train.train_command)
app.command("predict")(predict.predict_command)
app.command("cv")(cv.cv_command)
app.add_typer(experiment.experiment_app, name="experiment")
app.command("compare")(compare.compare_command)
app.command("evaluate")(evaluate.evaluate_command)
app.add_typer(stats.stats_app, name="stats")
app.command("report")(report.report_command)
app.add_typer(import_data.import_app, name="import")
app.add_typer(export.export_app, name="export")
app.add_typer(detect.detect_app, name="detect")


if __name__ == "__main__":
    app()
