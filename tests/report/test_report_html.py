"""The report file without a browser: self-contained, one image per figure, worst cases first, every kind."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from report_cases import NUM_CASES, build_crossvalidation, case_id, write_log
from typer.testing import CliRunner

from npcseg.cli.main import app
from npcseg.report import (
    ReportResult,
    build_report,
    detect_kind,
    figures_folder,
    load_source,
    scored_case,
    select_cases,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NUM_SHOWN = 1  # conftest.NUM_SHOWN


def _images(text: str) -> list[str]:
    return re.findall(r"<img\b[^>]*>", text)


def test_report_is_self_contained_with_one_png_data_uri_per_figure(crossvalidation_report: ReportResult) -> None:
    result = crossvalidation_report
    out = result.html
    text = out.read_text()
    assert not re.search(r"https?://", text, flags=re.IGNORECASE)
    assert not re.search(r"<link\b|<script\s+src|@import|url\(", text, flags=re.IGNORECASE)
    images = _images(text)
    # box plots + one learning-curve figure + NUM_SHOWN worst + NUM_SHOWN best overlays
    assert len(images) == len(result.figures) == 2 + 2 * NUM_SHOWN
    sources = [re.search(r'src="([^"]+)"', image).group(1) for image in images]
    for source, path in zip(sources, result.figures, strict=True):
        assert source.startswith("data:image/png;base64,")
        png = base64.b64decode(source.removeprefix("data:image/png;base64,"), validate=True)
        assert png.startswith(PNG_SIGNATURE)
        assert path.parent == figures_folder(out) == out.parent / "cv_files"
        assert path.read_bytes() == png  # the same figure is written beside the HTML
    assert [path.name for path in out.parent.iterdir() if path.name.startswith(".")] == []  # no temp files


def test_worst_cases_come_first_in_increasing_dice_then_the_best(
    folders: dict[str, Path], crossvalidation_report: ReportResult
) -> None:
    # case i's prediction is the label shifted by i voxels: the Dice falls with i
    worst, best = select_cases(load_source(folders["crossvalidation"]), 2)
    assert [case.case_id for case in worst] == [case_id(NUM_CASES - 1), case_id(NUM_CASES - 2)]
    assert [case.case_id for case in best] == [case_id(0), case_id(1)]
    worst, best = select_cases(load_source(folders["crossvalidation"]), 4)  # 6 cases: no case in both lists
    assert len(worst) == 4 and len(best) == 2 and not {case.case_id for case in worst} & {c.case_id for c in best}
    result = crossvalidation_report
    out = result.html
    assert result.worst == [case_id(NUM_CASES - 1)] and result.best == [case_id(0)]
    text = out.read_text()
    assert text.index("<h2>Worst cases</h2>") < text.index("<h2>Best cases</h2>")
    assert text.index(f"worst 1 of {NUM_SHOWN}: {case_id(NUM_CASES - 1)}") < text.index(f"best 1 of {NUM_SHOWN}")
    assert "T1 resampled onto the T2 grid with the identity transform" in text


def test_case_table_is_sortable_and_lists_every_case_worst_first(crossvalidation_report: ReportResult) -> None:
    out = crossvalidation_report.html
    text = out.read_text()
    table = text[text.index('<table class="sortable" id="cases">') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr><td data-sort=\"([^\"]+)\">", table)
    assert rows == [case_id(index) for index in reversed(range(NUM_CASES))]
    assert "<th>dice</th>" in table and "<th>fold</th>" in table
    assert 'data-sort="1.0"' in table  # case-00's Dice, sorted on its full value
    assert "addEventListener" in text


def test_summary_table_has_a_row_per_fold_and_the_pooled_row(crossvalidation_report: ReportResult) -> None:
    out = crossvalidation_report.html
    text = out.read_text()
    summary = text[text.index("<h2>Summary</h2>") : text.index("<h2>Cases</h2>")]
    for label in ("fold 0", "fold 1", "all folds (out-of-fold)"):
        assert f'data-sort="{label}">{label}</td>' in summary
    assert "Every metric, all folds (out-of-fold)" in summary


def test_kinds_are_detected_and_each_gives_a_report(folders: dict[str, Path], tmp_path: Path) -> None:
    assert detect_kind(folders["crossvalidation"]) == "crossvalidation"
    assert detect_kind(folders["experiment"]) == "experiment"
    assert detect_kind(folders["evaluation"]) == "evaluation"
    run = tmp_path / "run"
    write_log(run / "log.csv", 4, 0.0)
    assert detect_kind(run) == "training_run"

    experiment = build_report(folders["experiment"], tmp_path / "experiment.html", num_cases=0)
    text = (tmp_path / "experiment.html").read_text()
    assert len(_images(text)) == len(experiment.figures) == 1 + 2  # box plots, learning curves of 2 arms
    assert "arm T1 (t1/): unfinished" in text and "| T1+T2 | 6 |" in text
    data = load_source(folders["experiment"])
    assert data.groups == ("T1+T2",) and data.overlay_groups == ("T1+T2",) and data.group_label == "model"
    assert [log.figure for log in data.logs] == ["T1", "T1+T2", "T1+T2"]

    evaluation = load_source(folders["evaluation"])  # predictions and cohort from its summary.json
    assert evaluation.groups == ("evaluation",) and evaluation.logs == ()
    assert len(evaluation.cases) == NUM_CASES and all(case.can_overlay for case in evaluation.cases)

    single = build_report(run, None, num_cases=3)
    assert single.html == run / "report.html" and len(single.figures) == 1
    assert len(_images(single.html.read_text())) == 1


def test_without_a_cohort_the_overlays_are_left_out_with_a_note(folders: dict[str, Path], tmp_path: Path) -> None:
    crossvalidation = build_crossvalidation(tmp_path, folders["cohort"], record_cohort=False)
    result = build_report(crossvalidation, tmp_path / "report.html", num_cases=2)
    assert result.worst == [] and len(result.figures) == 2
    assert any("pass --cohort" in note for note in result.notes)
    with_cohort = load_source(crossvalidation, cohort=folders["cohort"])
    assert all(case.can_overlay for case in with_cohort.cases)


def test_extra_cases_join_as_their_own_group(folders: dict[str, Path], tmp_path: Path) -> None:
    data = load_source(folders["crossvalidation"])
    prediction = next(folders["crossvalidation"].glob(f"fold_*/predictions/{case_id(0)}.nii.gz"))
    extra = scored_case(folders["cohort"] / "cases" / case_id(0), prediction, {"dice": 0.42}, "ignored")
    combined = data.with_cases([extra], "new patient")
    assert combined.groups[-1] == "new patient" and "new patient" not in combined.pooled_groups
    assert combined.cases[-1].group == "new patient" and combined.cases[-1].can_overlay
    worst, _ = select_cases(combined, 1)
    assert (worst[0].case_id, worst[0].group) == (case_id(0), "new patient")  # Dice 0.42 is the lowest
    write_report(combined, tmp_path / "report.html", num_cases=0)
    assert 'data-sort="new patient">new patient</td>' in (tmp_path / "report.html").read_text()
    with pytest.raises(ValueError, match="already exists"):
        combined.with_cases([extra], "new patient")


def test_cli_writes_the_report_and_rejects_an_unknown_folder(folders: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli" / "r.html"
    result = runner.invoke(app, ["report", str(folders["evaluation"]), "--out", str(out), "--cases", "0"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "report:" in result.output
    assert len(_images(out.read_text())) == 1  # --cases 0: box plots only

    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("hello")
    result = runner.invoke(app, ["report", str(stranger)])
    assert result.exit_code == 2
    assert "not a results folder" in result.output and "stranger" in result.output

    result = runner.invoke(app, ["report", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "not found" in result.output

    result = runner.invoke(app, ["report", str(folders["crossvalidation"]), "--cohort", str(stranger)])
    assert result.exit_code == 2 and "not a cohort" in result.output


def test_metrics_with_text_are_refused_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "evaluation"
    folder.mkdir()
    (folder / "metrics.csv").write_text("case_id,dice\ncase-00,high\n")
    (folder / "summary.json").write_text(json.dumps({}))
    with pytest.raises(ValueError, match=r"metrics\.csv: line 2, column 'dice'"):
        load_source(folder)
