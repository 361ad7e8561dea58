"""`npcseg validate`: exit codes (0 valid, 1 errors, 2 bad input), case table, problems with their files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from io_cohort_builders import CohortBuilder, label_array, label_image
from typer.testing import CliRunner

from npcseg.cli.main import app

runner = CliRunner(env={"COLUMNS": "200"})


def run(*arguments: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, ["validate", *(str(argument) for argument in arguments)])
    return result.exit_code, result.output


def test_valid_cohort_exits_0_and_shows_the_cases(good_cohort: CohortBuilder) -> None:
    code, output = run(good_cohort.root)

    assert code == 0, output
    assert "NPC001" in output and "NPC002" in output
    assert "8x10x3 @ 0.5x0.5x4 mm" in output  # T2 size and spacing
    assert "4x5x3 @ 1x1x4 mm" in output  # T1
    assert "12 (0.012 ml)" in output  # tumour voxels of the label
    assert "valid: 2 case(s), 0 error(s), 0 warning(s)" in output


def test_warnings_alone_exit_0(good_cohort: CohortBuilder) -> None:
    (good_cohort.cases / "NPC001" / "notes.txt").write_text("")

    code, output = run(good_cohort.root)

    assert code == 0, output
    assert "case NPC001" in output
    assert "warning cases/NPC001/notes.txt: file not recognised" in output
    assert "0 error(s), 1 warning(s)" in output


def test_errors_exit_1_and_each_problem_names_its_file(
    good_cohort: CohortBuilder, truncate: Callable[[Path, float], Path]
) -> None:
    truncate(good_cohort.cases / "NPC001" / "t1.nii.gz", 0.5)
    bad = label_array()
    bad[0, 0, 0] = 2
    good_cohort.write("NPC002", "label.nrrd", label_image(bad))
    (good_cohort.cases / "NPC002" / "t1.nrrd").unlink()
    good_cohort.clinical("case_id,sex\nNPC001,M\nNPC002,F\nNPC003,M\n")

    code, output = run(good_cohort.root)

    assert code == 1, output
    lines = output.splitlines()
    case_1, case_2, cohort = lines.index("case NPC001"), lines.index("case NPC002"), lines.index("cohort")
    assert lines[case_1 + 1].startswith("  error cases/NPC001/t1.nii.gz: unreadable or truncated image")
    label_line = "  error cases/NPC002/label.nrrd: 1 voxels have values other than 0 and 1 (2)"
    assert any(line.startswith(label_line) for line in lines[case_2 + 1 :])
    assert any(line.startswith("  error cases/NPC002: missing required sequence 't1'") for line in lines)
    assert lines[cohort + 1] == "  error clinical.csv: line 4: row 'NPC003' has no case folder"
    assert "not valid: 2 case(s), 4 error(s), 0 warning(s)" in output


def test_options_required_reference_and_require_label(cohort_builder: CohortBuilder) -> None:
    cohort_builder.case("NPC001", t1=False, label=False)

    assert run(cohort_builder.root)[0] == 1  # t1 is required by default
    assert run(cohort_builder.root, "--required", "t2")[0] == 0
    code, output = run(cohort_builder.root, "--required", "t2", "--require-label")
    assert code == 1 and "missing label" in output
    cohort_builder.write("NPC001", "label.nii.gz", label_image(np.ones((3, 10, 8), np.uint8)))
    code, output = run(cohort_builder.root, "--required", "t2", "--reference", "t1")
    assert code == 1 and "reference 't1' is missing" in output


def test_json_report(good_cohort: CohortBuilder, tmp_path: Path) -> None:
    (good_cohort.cases / "NPC002" / "t2.nrrd").unlink()
    report_path = tmp_path / "reports" / "validation.json"

    code, output = run(good_cohort.root, "--json", report_path)

    assert code == 1, output
    assert f"report written to {report_path}" in output
    report = json.loads(report_path.read_text())
    assert report["is_valid"] is False and report["num_cases"] == 2 and report["num_errors"] == 1
    assert [case["case_id"] for case in report["cases"]] == ["NPC001", "NPC002"]
    assert report["cases"][0]["images"]["t2"]["size_xyz"] == [8, 10, 3]
    assert report["cases"][0]["num_tumour_voxels"] == 12
    (problem,) = report["problems"]
    assert problem["case_id"] == "NPC002" and problem["path"] == str(good_cohort.cases / "NPC002")
    assert "missing required sequence 't2'" in problem["message"]


def test_missing_cohort_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    code, output = run(tmp_path / "nowhere")
    assert code == 2
    assert f"error: {tmp_path / 'nowhere'}: cohort folder not found" in output

    code, output = run(tmp_path)
    assert code == 2
    assert "not a cohort (no 'cases/' folder inside)" in output


def test_unknown_sequence_exits_2(good_cohort: CohortBuilder) -> None:
    code, output = run(good_cohort.root, "--required", "t1,flair")
    assert code == 2
    assert "error: unknown sequence 'flair'" in output


def test_messages_with_brackets_are_printed_verbatim(good_cohort: CohortBuilder) -> None:
    good_cohort.clinical("case_id;[red]sex\nNPC001;M\nNPC002;F\n")  # no case_id column, odd characters
    good_cohort.clinical("patient,[bold]sex[/bold]\nNPC001,M\n")
    code, output = run(good_cohort.root)
    assert code == 1
    assert "columns: ['patient', '[bold]sex[/bold]']" in output
