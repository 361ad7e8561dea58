"""Assembling the report: one self-contained HTML file plus the same figures as PNG files beside it.

``write_report(data, out)`` writes ``out`` (e.g. ``report.html``) and ``<out stem>_files/*.png`` (e.g.
``report_files/``). The page holds, in order: an overview (what was read, notes), the summary table (per group
and pooled), the per-case table (sortable by clicking a header; worst Dice first), box plots of the metrics per
fold or model, the learning curves of every ``log.csv``, and axial overlays of the worst cases (worst first, so
failures are seen first) then of the best cases. PNG files are written first, the HTML last, each atomically.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from npcseg.evaluation.metrics import aggregate
from npcseg.io.atomic import atomic_write_bytes, atomic_write_text
from npcseg.report import html as markup
from npcseg.report.model import CaseResult, ReportData
from npcseg.report.sources import load_source

logger = logging.getLogger(__name__)

REPORT_FILENAME = "report.html"
SUMMARY_METRICS: tuple[tuple[str, str, int], ...] = (
    ("dice", "Dice", 3),
    ("sensitivity", "Sensitivity", 3),
    ("precision", "Precision", 3),
    ("surface_dice", "Surface Dice", 3),
    ("hd95_mm", "HD95 (mm)", 2),
    ("assd_mm", "ASSD (mm)", 2),
)
"""``(metrics.csv column, title, decimals)`` of the per-group summary table."""
CASE_COLUMN_DIGITS = {"dice": 3, "sensitivity": 3, "precision": 3, "conformity": 3, "surface_dice": 3}
"""Decimals of per-case columns; others (mm, ml) get 2."""
HIDDEN_CASE_COLUMNS = ("tolerance_mm",)
KIND_TITLES = {
    "crossvalidation": "cross-validation",
    "experiment": "input experiment",
    "evaluation": "evaluation",
    "training_run": "training run",
}


@dataclass
class ReportResult:
    """What :func:`write_report` wrote.

    Attributes:
        html: the HTML file.
        figures: the PNG files (same images as embedded), in page order.
        worst: case ids shown as worst cases (worst first).
        best: case ids shown as best cases (best first).
        notes: the report's notes (also on the page).
        seconds: time taken.
    """

    html: Path
    figures: list[Path] = field(default_factory=list)
    worst: list[str] = field(default_factory=list)
    best: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def figures_folder(out: Path) -> Path:
    """``<out stem>_files/`` beside the HTML file (``report.html`` -> ``report_files/``)."""
    out = Path(out)
    return out.parent / f"{out.stem}_files"


def build_report(
    folder: Path,
    out: Path | None = None,
    *,
    cohort: Path | None = None,
    predictions: Path | None = None,
    num_cases: int = 5,
) -> ReportResult:
    """Read a results folder (:func:`npcseg.report.sources.load_source`) and write its report.

    Args:
        folder: a cross-validation, input-experiment, evaluation or training-run folder.
        out: the HTML file; ``folder/report.html`` by default.
        cohort: the cohort whose images the overlays show (default: the one the folder records).
        predictions: an evaluation's predictions folder, when not recorded.
        num_cases: worst and best cases to draw (each).
    """
    data = load_source(Path(folder), cohort=cohort, predictions=predictions)
    return write_report(data, Path(out) if out is not None else Path(folder) / REPORT_FILENAME, num_cases=num_cases)


def select_cases(data: ReportData, num_cases: int) -> tuple[list[CaseResult], list[CaseResult]]:
    """The ``num_cases`` worst (lowest Dice first) and best (highest first) cases of ``data.overlay_groups``
    that can be drawn, without a case in both lists (ties broken by case id)."""
    if num_cases < 0:
        raise ValueError(f"the number of cases to show must not be negative, got {num_cases}")
    candidates = [
        case
        for case in data.cases
        if case.group in data.overlay_groups and math.isfinite(case.dice) and case.can_overlay
    ]
    ranked = sorted(candidates, key=lambda case: (case.dice, case.case_id, case.group))
    worst = ranked[:num_cases]
    best = [case for case in reversed(ranked) if case not in worst][:num_cases]
    return worst, best


def write_report(data: ReportData, out: Path, *, num_cases: int = 5) -> ReportResult:
    """Write the report of ``data`` to ``out`` (HTML) and its figures to :func:`figures_folder` (module
    docstring). Cases whose files cannot be drawn are listed in the notes instead."""
    from npcseg.report.figures import figure_png, learning_curves, metric_boxplots

    start = time.perf_counter()
    out = Path(out)
    folder = figures_folder(out)
    result = ReportResult(html=out, notes=list(data.notes))
    sections: list[tuple[str, str]] = []
    figures: list[tuple[str, bytes]] = []

    def add_figure(name: str, png: bytes, caption: str, css_class: str = "") -> str:
        figures.append((name, png))
        return markup.figure_html(png, caption, alt=caption, css_class=css_class)

    cases = [case for case in data.cases if case.group in data.groups]
    if cases:
        sections.append(("Summary", _summary_tables(data)))
        sections.append(("Cases", _case_table(data, cases)))
        png = figure_png(metric_boxplots(cases, data.groups, data.group_label))
        caption = f"Per-case metrics per {data.group_label} (box: median and quartiles; dots: cases)."
        sections.append(("Box plots", add_figure("boxplots.png", png, caption)))
    figure_names = list(dict.fromkeys(log.figure for log in data.logs))
    if figure_names:
        parts = []
        for name in figure_names:
            logs = [log for log in data.logs if log.figure == name]
            png = figure_png(learning_curves(logs, f"Learning curves: {name}"))
            caption = f"{name}: " + ", ".join(f"{log.name} ({len(log.rows)} epochs, {log.path})" for log in logs)
            parts.append(add_figure(f"learning_curves_{_slug(name)}.png", png, caption))
        sections.append(("Learning curves", "\n".join(parts)))
    worst, best = select_cases(data, num_cases)
    result.worst = [case.case_id for case in worst]
    result.best = [case.case_id for case in best]
    for title, chosen, prefix in (("Worst cases", worst, "worst"), ("Best cases", best, "best")):
        parts = []
        for rank, case in enumerate(chosen, start=1):
            figure_part = _overlay(case, f"{prefix} {rank} of {len(chosen)}", result.notes)
            if figure_part is not None:
                name = f"{prefix}_{rank:02d}_{_slug(case.case_id)}_{_slug(case.group)}.png"
                parts.append(add_figure(name, figure_part[0], figure_part[1], css_class="case"))
        if parts:
            intro = markup.paragraph(
                "Reference contour in red, prediction in green, overlap in yellow; slices with the largest "
                "reference area and the largest error (reference XOR prediction), cropped around the masks."
            )
            sections.append((title, intro + "\n" + "\n".join(parts)))
    if not data.cases and not data.logs:
        result.notes.append("nothing to show: no scored case and no training log")
    sections.insert(0, ("Overview", _overview(data, result.notes, num_cases)))

    for name, png in figures:
        path = folder / name
        atomic_write_bytes(path, png)
        result.figures.append(path)
    subtitle = f"Report of the {KIND_TITLES[data.kind]} {data.folder.resolve()}"
    atomic_write_text(out, markup.document(data.title, sections, subtitle=subtitle))
    result.seconds = time.perf_counter() - start
    logger.info("report: %s (%d figures) in %.1f s", out, len(result.figures), result.seconds)
    return result


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"


def _overlay(case: CaseResult, heading: str, notes: list[str]) -> tuple[bytes, str] | None:
    from npcseg.report.figures import figure_png
    from npcseg.report.overlays import case_overlay_figure, load_case_volumes

    try:
        volumes = load_case_volumes(case)
    except (FileNotFoundError, ValueError) as error:
        notes.append(f"no overlay of {case.case_id} ({case.group}): {error}")
        return None
    png = figure_png(case_overlay_figure(case, volumes, heading))
    caption = f"{heading}: {case.case_id} ({case.group}), Dice {markup.format_number(case.dice)}. {volumes.t1_note}."
    return png, caption


def _overview(data: ReportData, notes: Sequence[str], num_cases: int) -> str:
    facts = [*data.facts, ("worst / best cases drawn", f"up to {num_cases} each")]
    parts = [markup.table_html(None, [[name, value] for name, value in facts], css_class="facts")]
    parts += [markup.paragraph(note, css_class="note") for note in notes]
    if data.preformatted:
        parts.append(markup.heading("Experiment table (table.md)", 3) + markup.preformatted(data.preformatted))
    return "\n".join(parts)


def _mean_sd(values: list[float], digits: int) -> str:
    stats = aggregate(values)
    return f"{markup.format_number(stats['mean'], digits)} ± {markup.format_number(stats['sd'], digits)}"


def _summary_tables(data: ReportData) -> str:
    present = [item for item in SUMMARY_METRICS if any(item[0] in case.metrics for case in data.cases)]
    headers = [data.group_label, "n", *(title + " mean ± sd" for _, title, _ in present), "Dice median [min, max]"]
    rows: list[list[markup.Cell | str]] = []
    row_groups: list[tuple[str, list[CaseResult]]] = [
        (group, [case for case in data.cases if case.group == group]) for group in data.groups
    ]
    if data.pooled_groups:
        row_groups.append((data.pooled_label, [case for case in data.cases if case.group in data.pooled_groups]))
    for label, members in row_groups:
        row: list[markup.Cell | str] = [label, str(len(members))]
        for name, _, digits in present:
            row.append(_mean_sd([case.metrics.get(name, math.nan) for case in members], digits))
        dice = aggregate(case.dice for case in members)
        row.append(
            f"{markup.format_number(dice['median'])} [{markup.format_number(dice['min'])}, "
            f"{markup.format_number(dice['max'])}]"
        )
        rows.append(row)
    text = markup.table_html(headers, rows)
    pooled = [case for case in data.cases if case.group in (data.pooled_groups or data.groups)]
    if data.pooled_groups or len(data.groups) == 1:
        names = [name for name in pooled[0].metrics if name not in HIDDEN_CASE_COLUMNS] if pooled else []
        detail = []
        for name in names:
            stats = aggregate(case.metrics.get(name, math.nan) for case in pooled)
            digits = CASE_COLUMN_DIGITS.get(name, 2)
            detail.append(
                [
                    name,
                    f"{markup.format_number(stats['mean'], digits)} ± {markup.format_number(stats['sd'], digits)}",
                    f"{markup.format_number(stats['median'], digits)} ({markup.format_number(stats['min'], digits)}"
                    f"-{markup.format_number(stats['max'], digits)})",
                    f"{stats['num_values']} / {stats['num_excluded']}",
                ]
            )
        title = data.pooled_label if data.pooled_groups else data.groups[0]
        text += (
            "\n"
            + markup.heading(f"Every metric, {title}", 3)
            + "\n"
            + markup.table_html(["metric", "mean ± sd", "median (min-max)", "values / excluded"], detail)
        )
    return text


def _case_table(data: ReportData, cases: list[CaseResult]) -> str:
    names = list(dict.fromkeys(name for case in cases for name in case.metrics if name not in HIDDEN_CASE_COLUMNS))
    ordered = sorted(cases, key=lambda case: (not math.isfinite(case.dice), case.dice, case.case_id))
    rows: list[list[markup.Cell | str]] = []
    for case in ordered:
        row: list[markup.Cell | str] = [case.case_id, markup.Cell(case.group, _group_sort(case.group))]
        row += [markup.number_cell(case.metrics.get(name, math.nan), CASE_COLUMN_DIGITS.get(name, 2)) for name in names]
        rows.append(row)
    intro = markup.paragraph(
        f"{len(cases)} case(s), worst Dice first; click a column header to sort by it (again to reverse)."
    )
    return intro + "\n" + markup.table_html(["case", data.group_label, *names], rows, sortable=True, table_id="cases")


def _group_sort(group: str) -> str | float:
    number = group.removeprefix("fold ")
    return float(number) if number.isdigit() else group
