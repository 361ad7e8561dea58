"""Per-case metric tables (``metrics.csv``) read by case id and compared with each other (``npcseg stats compare``).

Several tables of the same cases (e.g. two methods' ``metrics.csv``, from ``npcseg evaluate`` or a
cross-validation) are compared on one metric, each against a reference table: per table n, mean ± sd and the
bootstrap confidence interval of the mean; against the reference the paired Wilcoxon signed-rank test on the cases
both tables hold and the unpaired Mann-Whitney U test on all their cases (rules for degenerate inputs:
:mod:`npcseg.evaluation.statistics`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from npcseg.evaluation.scoring import json_safe, metrics_csv
from npcseg.evaluation.statistics import (
    MANN_WHITNEY,
    WILCOXON,
    BootstrapConfig,
    SampleSummary,
    StatisticalTest,
    mann_whitney,
    summarize_sample,
    wilcoxon_signed_rank,
)
from npcseg.evaluation.table import format_mean_sd, format_p_value
from npcseg.io.atomic import atomic_write_text

METRIC_ALIASES: dict[str, str] = {
    "dsc": "dice",
    "recall": "sensitivity",
    "cc": "conformity",
    "hd": "hausdorff_mm",
    "hausdorff": "hausdorff_mm",
    "hd95": "hd95_mm",
    "assd": "assd_mm",
    "nsd": "surface_dice",
}
"""Short metric names accepted on the command line -> the ``metrics.csv`` column."""
CASE_ID_COLUMN = "case_id"


def resolve_metric(name: str, columns: Sequence[str], source: Path | str = "the table") -> str:
    """The column of ``columns`` that ``name`` (a column or one of :data:`METRIC_ALIASES`) means.

    Raises:
        ValueError: naming ``source`` and its columns when there is no such column.
    """
    for candidate in (name, name.lower(), METRIC_ALIASES.get(name.lower(), "")):
        if candidate in columns:
            return candidate
    raise ValueError(f"{source}: no metric column {name!r}; columns: {list(columns)}")


def read_metric_values(path: Path, metric: str) -> tuple[str, dict[str, float]]:
    """Case id -> value of one metric from a per-case CSV (``npcseg evaluate``'s or a cross-validation's).

    Returns:
        The resolved column name and the values (empty cells and ``nan`` read as nan), in file order.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: no ``case_id`` column, no such metric, a duplicate case id or a cell that is not a number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metrics table not found")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        if CASE_ID_COLUMN not in columns:
            raise ValueError(f"{path}: no '{CASE_ID_COLUMN}' column; columns: {columns}")
        column = resolve_metric(metric, columns, path)
        values: dict[str, float] = {}
        for row in reader:
            case_id, cell = (row.get(CASE_ID_COLUMN) or "").strip(), (row.get(column) or "").strip()
            if case_id in values:
                raise ValueError(f"{path}, line {reader.line_num}: duplicate case_id {case_id!r}")
            try:
                values[case_id] = float(cell) if cell else math.nan
            except ValueError as error:
                raise ValueError(f"{path}, line {reader.line_num}: {column} {cell!r} is not a number") from error
    return column, values


@dataclass(frozen=True)
class FileComparisonRow:
    """One per-case table in a comparison.

    Attributes:
        label: the file as the user named it.
        summary: mean, sd and bootstrap CI of its metric values.
        num_matched: cases it shares with the reference table (the pairs of the paired test).
        paired: Wilcoxon signed-rank against the reference on the shared cases; ``None`` on the reference.
        unpaired: Mann-Whitney U against the reference on all cases; ``None`` on the reference.
    """

    label: str
    summary: SampleSummary
    num_matched: int
    paired: StatisticalTest | None
    unpaired: StatisticalTest | None


@dataclass(frozen=True)
class FileComparison:
    """Several per-case tables compared on one metric, each against a reference table.

    Attributes:
        metric: the metric column.
        reference: label of the reference table.
        rows: one row per table, in the order given.
        bootstrap: the confidence-interval settings.
    """

    metric: str
    reference: str
    rows: tuple[FileComparisonRow, ...]
    bootstrap: BootstrapConfig

    def records(self) -> list[dict[str, Any]]:
        """Flat records, one per table (p-values ``None`` on the reference)."""
        return [
            {
                "file": row.label,
                "num_values": row.summary.num_values,
                "num_excluded": row.summary.num_excluded,
                "mean": row.summary.mean,
                "sd": row.summary.sd,
                "ci_low": row.summary.ci_low,
                "ci_high": row.summary.ci_high,
                "num_matched": row.num_matched,
                "wilcoxon_statistic": None if row.paired is None else row.paired.statistic,
                "wilcoxon_p": None if row.paired is None else row.paired.p_value,
                "mann_whitney_statistic": None if row.unpaired is None else row.unpaired.statistic,
                "mann_whitney_p": None if row.unpaired is None else row.unpaired.p_value,
            }
            for row in self.rows
        ]

    def to_json(self) -> dict[str, Any]:
        """JSON-able description (nan as ``null``)."""
        notes = {row.label: row.paired.note for row in self.rows if row.paired is not None and row.paired.note}
        return json_safe(
            {
                "metric": self.metric,
                "reference": self.reference,
                "tests": {"paired": WILCOXON, "unpaired": MANN_WHITNEY},
                "bootstrap": {"method": "percentile (scipy.stats.bootstrap)", **vars(self.bootstrap)},
                "notes": notes,
                "rows": self.records(),
            }
        )

    def to_markdown(self) -> str:
        """A Markdown table: mean ± sd, CI, matched cases and both p-values per file."""
        level = f"{100 * self.bootstrap.confidence_level:g}%"
        header = ["File", "n", f"{self.metric} mean ± sd", f"{level} CI of mean", "matched", "p (Wilcoxon)", "p (MWU)"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            summary = row.summary
            cells = [
                row.label,
                str(summary.num_values),
                format_mean_sd(summary.mean, summary.sd),
                f"{_number(summary.ci_low)}-{_number(summary.ci_high)}",
                str(row.num_matched),
                format_p_value(None if row.paired is None else row.paired.p_value),
                format_p_value(None if row.unpaired is None else row.unpaired.p_value),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        note = (
            f"\nReference: {self.reference}. Paired: {WILCOXON} on the cases both files hold; unpaired: "
            f"{MANN_WHITNEY}. CI: percentile bootstrap, {self.bootstrap.n_resamples} resamples, "
            f"seed {self.bootstrap.seed}.\n"
        )
        return "\n".join(lines) + "\n" + note


def _number(value: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def compare_metric_files(
    paths: Sequence[Path],
    metric: str = "dice",
    *,
    reference: Path | None = None,
    bootstrap: BootstrapConfig | None = None,
) -> FileComparison:
    """Compare per-case tables on ``metric``, each against the reference table (default: the first).

    Raises:
        ValueError: fewer than 2 files, a reference that is not among them, a file that shares no case with the
            reference, or any problem :func:`read_metric_values` reports.
    """
    bootstrap = bootstrap or BootstrapConfig()
    paths = [Path(path) for path in paths]
    if len(paths) < 2:
        raise ValueError(f"compare needs at least 2 metrics tables, got {len(paths)}")
    reference_path = paths[0] if reference is None else Path(reference)
    positions = [index for index, path in enumerate(paths) if path.resolve() == reference_path.resolve()]
    if not positions:
        raise ValueError(f"the reference {reference_path} is not among the tables {[str(path) for path in paths]}")
    read = [read_metric_values(path, metric) for path in paths]
    column = read[0][0]
    reference_values = read[positions[0]][1]
    rows = []
    for index, (path, (_, values)) in enumerate(zip(paths, read, strict=True)):
        common = [case_id for case_id in values if case_id in reference_values]
        if index == positions[0]:
            rows.append(
                FileComparisonRow(
                    str(path), summarize_sample(list(values.values()), bootstrap), len(common), None, None
                )
            )
            continue
        if not common:
            raise ValueError(f"{path}: shares no case_id with the reference {reference_path}; cannot pair them")
        paired = wilcoxon_signed_rank([values[case] for case in common], [reference_values[case] for case in common])
        unpaired = mann_whitney(list(values.values()), list(reference_values.values()))
        summary = summarize_sample(list(values.values()), bootstrap)
        rows.append(FileComparisonRow(str(path), summary, len(common), paired, unpaired))
    return FileComparison(metric=column, reference=str(reference_path), rows=tuple(rows), bootstrap=bootstrap)


def write_table(table: Any, path: Path) -> Path:
    """Write a table object (with ``records``, ``to_json``, ``to_markdown``) as ``.csv``, ``.json`` or ``.md``.

    Raises:
        ValueError: on another file ending.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        records: list[Mapping[str, Any]] = table.records()
        text = metrics_csv(
            [{key: "" if value is None else value for key, value in record.items()} for record in records]
        )
    elif suffix == ".json":
        text = json.dumps(table.to_json(), indent=1) + "\n"
    elif suffix in (".md", ".markdown"):
        text = table.to_markdown()
    else:
        raise ValueError(f"{path}: unsupported table format {suffix or '(none)'}; use .csv, .json or .md")
    atomic_write_text(path, text)
    return path
