"""``npcseg compare``: cross-validate several network / loss configurations on the same folds and tabulate them.

The structure of SeqSeg's Tables 3 (attention ablation), 4 (losses) and 5 (networks): each row is a complete
cross-validation (:mod:`npcseg.training.crossval`) of one configuration, every row on the same patient-level folds
(one shared ``splits.json``), every other setting equal unless the row changes it. The table gives mean ± sd over
patients of Dice, precision, recall (sensitivity), conformity coefficient and HD95, and the two-sided Wilcoxon
signed-rank p-value of each row against a reference row on the same patients (:mod:`npcseg.evaluation.table`).

A comparison file (YAML)::

    title: SeqSeg Table 4 (losses)
    reference: RANet + DBW          # a row name (default: the last row)
    test: wilcoxon                  # or mann-whitney
    metrics: [dice, precision, sensitivity, conformity, hd95_mm]
    base:                           # CrossValidationConfig fields shared by every row
      num_folds: 5
      training: {model: ranet, epochs: 20}
    rows:
      - name: RANet + BCE
        training: {loss: bce}       # merged key by key over base
      - name: RANet + DBW
        training: {loss: dbw, loss_options: {k: 10, border_weight: 20}}

Several files may be given; their rows are concatenated (each row over its own file's base). Layout of ``OUT``::

    splits.json                   the shared folds
    comparison.yaml               the resolved rows by folder (a rerun must match them)
    <row-folder>/                 one cross-validation folder per row (``folder:``, default the row name slugified)
    table.csv  table.json  table.md   (``--name NAME``: NAME.csv ...; tables sharing OUT share equal rows)

A row may carry a ``cascade:`` section (SeqSeg Table 6: the detect-then-segment cascade,
:class:`npcseg.cascade.crossval.CascadeExperimentConfig`: crop and presence settings, ``detector:`` and
``presence:`` sub-sections); such a row is cross-validated by
:func:`npcseg.cascade.crossval.run_cascade_crossvalidation` on the same folds, its ``training`` settings
training the crop segmenter.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, get_args

import yaml

from npcseg.config import config_differences, config_to_dict, merge_over, read_yaml
from npcseg.evaluation.table import METRIC_TITLES, MetricTable, TestName, build_table, write_table
from npcseg.io.atomic import atomic_write_text

if TYPE_CHECKING:
    from npcseg.cascade.crossval import CascadeExperimentConfig
    from npcseg.training.crossval import CrossValidationConfig, CrossValidationResult

logger = logging.getLogger(__name__)

COMPARISON_METRICS: tuple[str, ...] = ("dice", "precision", "sensitivity", "conformity", "hd95_mm")
"""SeqSeg's table columns: Dice, precision, recall, conformity coefficient, HD95 (metrics.csv column names)."""
COMPARISON_FILENAME = "comparison.yaml"
_FILE_KEYS = {"title", "reference", "test", "metrics", "base", "rows"}


@dataclass(frozen=True)
class ComparisonRow:
    """One configuration: its table label, its folder under ``OUT`` and its resolved cross-validation settings
    (plus the cascade's settings for a detect-then-segment row)."""

    name: str
    folder: str
    config: CrossValidationConfig
    cascade: CascadeExperimentConfig | None = None


@dataclass(frozen=True)
class Comparison:
    """A resolved comparison: the rows, the reference row, the metrics and the test."""

    title: str
    rows: tuple[ComparisonRow, ...]
    reference: str
    metrics: tuple[str, ...] = COMPARISON_METRICS
    test: TestName = "wilcoxon"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what ``comparison.yaml`` holds)."""
        return {
            "title": self.title,
            "reference": self.reference,
            "test": self.test,
            "metrics": list(self.metrics),
            "rows": [
                {
                    "name": row.name,
                    "folder": row.folder,
                    "config": config_to_dict(row.config),
                    **({"cascade": config_to_dict(row.cascade)} if row.cascade is not None else {}),
                }
                for row in self.rows
            ],
        }


@dataclass(frozen=True)
class ComparisonResult:
    """What :func:`run_comparison` produced: the table and each row's cross-validation result."""

    out: Path
    table: MetricTable
    rows: dict[str, CrossValidationResult]


def slug(name: str) -> str:
    """A folder name for a row name: lower case, runs of other characters -> ``-`` (``U-Net + SE`` -> ``u-net-se``)."""
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not text:
        raise ValueError(f"row name {name!r} has no letters or digits to name its folder")
    return text


def load_comparison(
    paths: Sequence[Path],
    *,
    reference: str | None = None,
    num_folds: int | None = None,
    epochs: int | None = None,
) -> Comparison:
    """Read comparison files (see the module docstring) into one :class:`Comparison`.

    Args:
        paths: one or more YAML files; rows are concatenated in order.
        reference: the reference row's name (default: the first file's ``reference``, else the last row).
        num_folds: overrides every row's number of folds.
        epochs: overrides every row's training epochs (the same budget for every row).

    Raises:
        ValueError: unknown keys, duplicate row names, rows with different folds / seeds, an unknown reference,
            metric or test (naming the file).
        FileNotFoundError: a missing file.
    """
    from npcseg.training.crossval import CrossValidationConfig, with_epochs

    if not paths:
        raise ValueError("give at least one comparison file")
    rows: list[ComparisonRow] = []
    title, first_reference, test, metrics = "", None, "wilcoxon", COMPARISON_METRICS
    for index, path in enumerate(paths):
        data = read_yaml(Path(path)) or {}
        if not isinstance(data, Mapping) or not isinstance(data.get("rows"), list) or not data["rows"]:
            raise ValueError(f"{path}: a comparison file needs a non-empty 'rows' list")
        unknown = sorted(set(data) - _FILE_KEYS)
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(_FILE_KEYS)}")
        base = merge_over(CrossValidationConfig(), data.get("base") or {}, where=f"{path}: base")
        if index == 0:
            title = str(data.get("title", Path(path).stem))
            first_reference = data.get("reference")
            test = data.get("test", test)
            metrics = tuple(data.get("metrics", metrics))
        for position, row in enumerate(data["rows"]):
            if not isinstance(row, Mapping) or not isinstance(row.get("name"), str):
                raise ValueError(f"{path}: rows[{position}] needs a 'name'")
            overrides = {key: value for key, value in row.items() if key not in ("name", "folder", "cascade")}
            config = merge_over(base, overrides, where=f"{path}: row {row['name']!r}")
            cascade = _cascade_of(row, where=f"{path}: row {row['name']!r} cascade")
            if num_folds is not None:
                config = merge_over(config, {"num_folds": num_folds})
            if epochs is not None:
                config = with_epochs(config, epochs)
            rows.append(ComparisonRow(row["name"], str(row.get("folder") or slug(row["name"])), config, cascade))
    if test not in get_args(TestName):
        raise ValueError(f"{paths[0]}: unknown test {test!r}; use one of {list(get_args(TestName))}")
    unknown_metrics = [metric for metric in metrics if metric not in METRIC_TITLES]
    if unknown_metrics:
        raise ValueError(f"{paths[0]}: unknown metric(s) {unknown_metrics}; use {sorted(METRIC_TITLES)}")
    _check_rows(rows)
    chosen = reference or first_reference or rows[-1].name
    if chosen not in {row.name for row in rows}:
        raise ValueError(f"reference {chosen!r} is not a row; rows: {[row.name for row in rows]}")
    return Comparison(title=title, rows=tuple(rows), reference=chosen, metrics=metrics, test=cast(TestName, test))


def _cascade_of(row: Mapping[str, Any], *, where: str) -> CascadeExperimentConfig | None:
    """The row's ``cascade:`` section over the defaults, or ``None`` for a whole-slice row."""
    if "cascade" not in row:
        return None
    from npcseg.cascade.crossval import CascadeExperimentConfig

    return merge_over(CascadeExperimentConfig(), row["cascade"] or {}, where=where)


def _check_rows(rows: Sequence[ComparisonRow]) -> None:
    names = [row.name for row in rows]
    folders = [row.folder for row in rows]
    if len(set(names)) != len(names) or len(set(folders)) != len(folders):
        raise ValueError(f"row names (and their folders) must be unique: {names}")
    folds = {(row.config.num_folds, row.config.seed) for row in rows}
    if len(folds) != 1:
        raise ValueError(f"every row must use the same folds (num_folds, seed); got {sorted(folds)}")


def _claim(out: Path, comparison: Comparison) -> None:
    """Write ``comparison.yaml``, or check that every row folder already in ``out`` keeps its settings.

    Rows are keyed by folder, so several comparison files may share one ``OUT``: a row of one table whose folder and
    settings equal a row of another (SeqSeg's plain U-Net is in Tables 3, 4 and 5) is trained once and reused.
    """
    path = out / COMPARISON_FILENAME
    wanted = comparison.to_dict()
    if path.is_file():
        saved = {row["folder"]: row for row in (read_yaml(path) or {}).get("rows", [])}
        for row in wanted["rows"]:
            previous = saved.get(row["folder"])
            if previous is not None:
                previous = _resolved(previous, where=f"{path}: row {previous.get('name')!r}")
            if previous is not None and (previous["config"], previous.get("cascade")) != (
                row["config"],
                row.get("cascade"),
            ):
                changes = config_differences(
                    {**previous["config"], "cascade": previous.get("cascade")},
                    {**row["config"], "cascade": row.get("cascade")},
                )
                raise ValueError(
                    f"{out}: row {row['name']!r} (folder {row['folder']!r}) was run with other settings "
                    f"({'; '.join(changes)}); use another output folder or another row folder"
                )
        folders = {row.folder for row in comparison.rows}
        wanted["rows"] = [*[row for folder, row in saved.items() if folder not in folders], *wanted["rows"]]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(wanted, sort_keys=False))


def _resolved(row: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """A saved row with its settings read through their dataclasses, so fields added to them since it was written
    take their defaults instead of counting as changes."""
    from npcseg.config import config_from_dict
    from npcseg.training.crossval import CrossValidationConfig

    resolved = {**row, "config": config_to_dict(config_from_dict(CrossValidationConfig, row["config"], where=where))}
    if row.get("cascade") is not None:
        from npcseg.cascade.crossval import CascadeExperimentConfig

        resolved["cascade"] = config_to_dict(config_from_dict(CascadeExperimentConfig, row["cascade"], where=where))
    return resolved


def comparison_names(comparison: Comparison) -> set[str]:
    """The row names of a comparison."""
    return {row.name for row in comparison.rows}


def run_comparison(
    cohort: Path,
    cache: Path,
    out: Path,
    comparison: Comparison,
    *,
    name: str = "table",
    parallel_folds: int = 1,
    progress: bool = True,
) -> ComparisonResult:
    """Cross-validate every row on the same folds and build the table (resumable: rerun to continue).

    Args:
        cohort: the labelled cohort (labels read from its original files).
        cache: its preprocessed cache holding every sequence any row needs.
        out: the comparison folder (created).
        comparison: the rows (:func:`load_comparison`).
        name: file name of the table (``NAME.csv`` / ``.json`` / ``.md``), so several tables can share ``out``.
        parallel_folds: folds trained at once per row (see :func:`~npcseg.training.crossval.run_crossvalidation`).
        progress: show progress bars.

    Returns:
        The table (also written as ``NAME.csv`` / ``.json`` / ``.md`` into ``out``) and every row's result.
    """
    from npcseg.data.splits import SPLITS_FILENAME, splits_for
    from npcseg.training.crossval import run_crossvalidation, tumour_volumes_ml
    from npcseg.training.crossval_checks import cohort_cases

    out = Path(out)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"table name {name!r} must be a plain file name (letters, digits, '.', '_', '-')")
    cases = cohort_cases(cohort)
    case_ids = [case.case_id for case in cases]
    first = comparison.rows[0].config
    folds = splits_for(out / SPLITS_FILENAME, case_ids, tumour_volumes_ml(cache, case_ids), first.num_folds, first.seed)
    _claim(out, comparison)
    results: dict[str, CrossValidationResult] = {}
    for number, row in enumerate(comparison.rows, start=1):
        logger.info("comparison row %d/%d: %s", number, len(comparison.rows), row.name)
        if row.cascade is not None:
            from npcseg.cascade.crossval import run_cascade_crossvalidation

            results[row.name] = run_cascade_crossvalidation(
                cohort, cache, out / row.folder, row.config, row.cascade, splits=folds, progress=progress
            )
            continue
        results[row.name] = run_crossvalidation(
            cohort, cache, out / row.folder, row.config, splits=folds, parallel_folds=parallel_folds, progress=progress
        )
    values = {name: _by_case(result.metrics, case_ids, comparison.metrics) for name, result in results.items()}
    table = build_table(values, comparison.reference, comparison.metrics, test=comparison.test, label="Method")
    write_table(table, out, name)
    return ComparisonResult(out=out, table=table, rows=results)


def _by_case(
    records: Sequence[Mapping[str, Any]], case_ids: Sequence[str], metrics: Sequence[str]
) -> dict[str, list[float]]:
    """metric -> values in ``case_ids`` order (so rows pair patient by patient)."""
    by_id = {record["case_id"]: record for record in records}
    missing = [case_id for case_id in case_ids if case_id not in by_id]
    if missing:
        raise ValueError(f"cases without a score: {missing}")
    return {metric: [float(by_id[case_id][metric]) for case_id in case_ids] for metric in metrics}
