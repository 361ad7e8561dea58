"""Segmentation accuracy by clinical subgroup (SeqSeg, Tao et al. 2022, Tables 7-8; ``npcseg stats subgroups``).

The per-case table (``metrics.csv`` of ``npcseg evaluate`` or of a cross-validation) is joined by ``case_id``
with the cohort's ``clinical.csv`` (:mod:`npcseg.io.clinical`). Cases are grouped by one covariate:

* a string or integer column by its values (``t_category``: T1..T4; ``chemotherapy``: 0 / 1), optionally merged
  with ``groups`` (label -> values, e.g. ``{"T1+T2": ["T1", "T2"], "T3+T4": ["T3", "T4"]}`` for Table 8); values
  no merge names keep their own group;
* a numeric column by ``bins``: ``"median"`` (a median split) or cut points ``"50,60"``. Bins are closed on the
  right: ``<= c1``, ``(c1, c2]``, ..., ``> ck``, so a median split puts the median itself in the lower group.
  A float column must be binned.

Per subgroup the table gives n and mean ± sd of each metric, and per metric one test across the subgroups, as the
paper does: Mann-Whitney U for 2 groups, Kruskal-Wallis for more (:func:`~npcseg.evaluation.statistics.groups_test`).
With an ``outcome`` such as ``dice>=0.7`` it also counts the cases meeting it per subgroup and tests subgroup vs
outcome with Fisher's exact test (2 x 2 with a small expected count) or chi-square
(:func:`~npcseg.evaluation.statistics.contingency_test`). Cases without a clinical row or with the covariate
missing are left out and counted; non-finite metric values are left out of that metric (``num_excluded``).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from npcseg.evaluation.scoring import json_safe
from npcseg.evaluation.statistics import (
    StatisticalTest,
    contingency_test,
    finite_values,
    groups_test,
)
from npcseg.evaluation.stats_tables import read_metric_values
from npcseg.evaluation.table import format_mean_sd, format_p_value
from npcseg.io.clinical import ClinicalTable, Value, read_clinical

_OUTCOME = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(>=|<=|>|<)\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*$")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Outcome:
    """A binary outcome on one metric, e.g. ``dice >= 0.7``.

    Attributes:
        metric: the metric column (or an alias, resolved when read).
        comparison: one of ``>=``, ``<=``, ``>``, ``<``.
        threshold: the value compared with.
    """

    metric: str
    comparison: str
    threshold: float

    @classmethod
    def parse(cls, text: str) -> Outcome:
        """``"dice>=0.7"`` -> ``Outcome("dice", ">=", 0.7)``; ``ValueError`` on anything else."""
        match = _OUTCOME.match(text)
        if match is None:
            raise ValueError(f"outcome {text!r} is not of the form <metric><op><number>, op one of >=, <=, >, <")
        return cls(match.group(1), match.group(2), float(match.group(3)))

    def __str__(self) -> str:
        return f"{self.metric}{self.comparison}{self.threshold:g}"

    def holds(self, value: float) -> bool:
        """True when ``value`` meets the outcome."""
        return _OPERATORS[self.comparison](value, self.threshold)


@dataclass(frozen=True)
class SubgroupRow:
    """One subgroup of the table.

    Attributes:
        group: the subgroup's label.
        num_cases: cases in it.
        mean: metric -> mean of its finite values.
        sd: metric -> sample sd (ddof = 1).
        num_excluded: metric -> non-finite values left out.
        num_outcome: cases meeting the outcome (``None`` without an outcome).
        num_outcome_known: cases whose outcome metric is finite (the denominator of ``num_outcome``).
    """

    group: str
    num_cases: int
    mean: dict[str, float]
    sd: dict[str, float]
    num_excluded: dict[str, int]
    num_outcome: int | None = None
    num_outcome_known: int | None = None


@dataclass(frozen=True)
class SubgroupTable:
    """Metrics by subgroup of one covariate, with tests across subgroups (SeqSeg Tables 7-8).

    Attributes:
        covariate: the clinical column grouped by.
        metrics: the metric columns.
        rows: one row per subgroup, in order (numeric bins ascending, values sorted).
        tests: metric -> test across subgroups (Mann-Whitney U or Kruskal-Wallis).
        outcome: the binary outcome, or ``None``.
        outcome_test: subgroup x outcome test (Fisher or chi-square), or ``None``.
        num_without_clinical: cases of the metrics table without a clinical row.
        num_missing_covariate: cases whose covariate is missing.
        binning: how the groups were formed (``"values"``, ``"median split at 55"``, ``"cut points 50, 60"``).
    """

    covariate: str
    metrics: tuple[str, ...]
    rows: tuple[SubgroupRow, ...]
    tests: dict[str, StatisticalTest]
    outcome: Outcome | None = None
    outcome_test: StatisticalTest | None = None
    num_without_clinical: int = 0
    num_missing_covariate: int = 0
    binning: str = "values"

    def records(self) -> list[dict[str, Any]]:
        """Flat records, one per subgroup: group, n, ``<metric>_mean``, ``_sd``, ``_p`` (the p-value across
        subgroups, repeated on every row), and the outcome counts and test p-value when asked."""
        records = []
        for row in self.rows:
            record: dict[str, Any] = {self.covariate: row.group, "num_cases": row.num_cases}
            for metric in self.metrics:
                record[f"{metric}_mean"] = row.mean[metric]
                record[f"{metric}_sd"] = row.sd[metric]
                record[f"{metric}_p"] = self.tests[metric].p_value
            if self.outcome is not None and self.outcome_test is not None:
                record[f"num_{self.outcome}"] = row.num_outcome
                record["num_outcome_known"] = row.num_outcome_known
                record["outcome_p"] = self.outcome_test.p_value
            records.append(record)
        return records

    def to_json(self) -> dict[str, Any]:
        """JSON-able description (nan as ``null``)."""
        return json_safe(
            {
                "covariate": self.covariate,
                "binning": self.binning,
                "metrics": list(self.metrics),
                "tests": {metric: vars(test) for metric, test in self.tests.items()},
                "outcome": None if self.outcome is None else str(self.outcome),
                "outcome_test": None if self.outcome_test is None else vars(self.outcome_test),
                "num_without_clinical": self.num_without_clinical,
                "num_missing_covariate": self.num_missing_covariate,
                "rows": self.records(),
            }
        )

    def caption(self) -> list[str]:
        """Lines under the table: the p-values across subgroups (and of the outcome), the grouping, exclusions."""
        names = sorted({_short(test.test) for test in self.tests.values()})
        p_values = "; ".join(f"{metric} {format_p_value(test.p_value)}" for metric, test in self.tests.items())
        notes = [f"p across subgroups ({', '.join(names)}): {p_values}."]
        if self.outcome_test is not None:
            notes.append(
                f"{self.outcome} vs {self.covariate}: p {format_p_value(self.outcome_test.p_value)} "
                f"({_short(self.outcome_test.test)})."
            )
        notes.append(
            f"Groups: {self.binning}. Left out: {self.num_without_clinical} case(s) without a clinical row, "
            f"{self.num_missing_covariate} with {self.covariate} missing."
        )
        return notes

    def to_markdown(self) -> str:
        """A Markdown table in the form of SeqSeg's Tables 7-8, the p-values in the caption line."""
        header = [self.covariate, *self.metrics, "n"]
        if self.outcome is not None:
            header.append(str(self.outcome))
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in self.rows:
            cells = [row.group, *(format_mean_sd(row.mean[metric], row.sd[metric]) for metric in self.metrics)]
            cells.append(str(row.num_cases))
            if self.outcome is not None:
                known = row.num_outcome_known or 0
                share = f" ({100 * (row.num_outcome or 0) / known:.0f}%)" if known else ""
                cells.append(f"{row.num_outcome}/{known}{share}")
            lines.append("| " + " | ".join(cells) + " |")
        notes = self.caption()
        return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def _short(test: str) -> str:
    """``"Mann-Whitney U (two-sided, scipy...)"`` -> ``"Mann-Whitney U"``."""
    return test.split(" (", 1)[0]


def _bin_edges(bins: str, values: Sequence[float], column: str) -> tuple[list[float], str]:
    if bins.strip().lower() == "median":
        median = float(np.median(values))
        return [median], f"median split at {median:g}"
    try:
        edges = [float(part) for part in bins.split(",") if part.strip()]
    except ValueError as error:
        raise ValueError(f"bins {bins!r}: give 'median' or comma-separated cut points such as '50,60'") from error
    if not edges or any(not math.isfinite(edge) for edge in edges) or edges != sorted(set(edges)):
        raise ValueError(f"bins {bins!r} for {column}: cut points must be finite, distinct and ascending")
    return edges, "cut points " + ", ".join(f"{edge:g}" for edge in edges)


def _bin_label(value: float, edges: Sequence[float]) -> tuple[int, str]:
    for index, edge in enumerate(edges):
        if value <= edge:
            return index, f"<= {edge:g}" if index == 0 else f"({edges[index - 1]:g}, {edge:g}]"
    return len(edges), f"> {edges[-1]:g}"


def assign_groups(
    values: Mapping[str, Value],
    column: str,
    column_type: type,
    *,
    bins: str | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
) -> tuple[dict[str, str], list[str], str]:
    """Case id -> subgroup label, the labels in table order, and a description of the grouping.

    ``values`` holds no ``None`` (missing values are removed by the caller). Rules: module docstring.

    Raises:
        ValueError: bins on a string column, a float column without bins, bins and groups together, or a value
            named by two merged groups.
    """
    if bins is not None and groups:
        raise ValueError("give either bins (numeric covariates) or groups (merging categories), not both")
    if bins is not None:
        if column_type is str:
            raise ValueError(f"column {column!r} is not numeric; bins need numbers")
        edges, description = _bin_edges(bins, [float(value) for value in values.values()], column)  # type: ignore[arg-type]
        labelled = {case_id: _bin_label(float(value), edges) for case_id, value in values.items()}  # type: ignore[arg-type]
        order = [label for _, label in sorted(set(labelled.values()))]
        return {case_id: label for case_id, (_, label) in labelled.items()}, order, description
    if column_type is float:
        raise ValueError(f"column {column!r} holds non-integer numbers; group it with bins ('median' or cut points)")
    merge: dict[str, str] = {}
    for label, members in (groups or {}).items():
        for member in members:
            if member in merge:
                raise ValueError(f"value {member!r} is in two groups, {merge[member]!r} and {label!r}")
            merge[member] = label
    sort_key: dict[str, Any] = {}
    assigned = {}
    for case_id, value in values.items():
        label = merge.get(str(value), str(value))
        assigned[case_id] = label
        key = (0, value, "") if column_type is int else (0, 0, str(value))
        sort_key[label] = min(sort_key.get(label, key), key)
    description = (
        "values"
        if not groups
        else "values, merged: " + "; ".join(f"{label} = {', '.join(members)}" for label, members in groups.items())
    )
    return assigned, sorted(sort_key, key=lambda label: sort_key[label]), description


def subgroup_table(
    metrics_path: Path,
    clinical_path: Path,
    by: str,
    *,
    metrics: Sequence[str] = ("dice",),
    bins: str | None = None,
    groups: Mapping[str, Sequence[str]] | None = None,
    outcome: Outcome | None = None,
) -> SubgroupTable:
    """Build the subgroup table of a per-case metrics CSV against a clinical table (module docstring).

    Raises:
        FileNotFoundError: when a file does not exist.
        ValueError: no such column, no case shared by both tables, no case with the covariate, or a grouping
            problem (:func:`assign_groups`).
    """
    if not metrics:
        raise ValueError("give at least one metric")
    clinical: ClinicalTable = read_clinical(clinical_path)
    if by not in clinical.column_types:
        raise ValueError(f"{clinical.path}: no column {by!r}; columns: {list(clinical.columns)}")
    columns_read = [read_metric_values(metrics_path, metric) for metric in metrics]
    if outcome is not None:
        outcome_column, outcome_values = read_metric_values(metrics_path, outcome.metric)
        outcome = Outcome(outcome_column, outcome.comparison, outcome.threshold)
    by_metric = dict(columns_read)
    case_ids = list(columns_read[0][1])
    in_clinical = [case_id for case_id in case_ids if case_id in clinical]
    if not in_clinical:
        raise ValueError(f"{metrics_path}: no case_id in common with {clinical.path}")
    covariate = {case_id: clinical.rows[case_id][by] for case_id in in_clinical}
    present = {case_id: value for case_id, value in covariate.items() if value is not None}
    if not present:
        raise ValueError(f"{clinical.path}: column {by!r} is missing for every case of {metrics_path}")
    assigned, order, description = assign_groups(present, by, clinical.column_types[by], bins=bins, groups=groups)

    rows: list[SubgroupRow] = []
    samples: dict[str, list[np.ndarray]] = {metric: [] for metric in by_metric}
    contingency: list[list[int]] = []
    for label in order:
        members = [case_id for case_id in present if assigned[case_id] == label]
        mean, sd, excluded = {}, {}, {}
        for metric, values in by_metric.items():
            finite, num_excluded = finite_values([values[case_id] for case_id in members])
            samples[metric].append(finite)
            mean[metric] = float(finite.mean()) if finite.size else math.nan
            sd[metric] = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
            excluded[metric] = num_excluded
        num_outcome = num_known = None
        if outcome is not None:
            known = [outcome_values[case_id] for case_id in members if math.isfinite(outcome_values[case_id])]
            num_known, num_outcome = len(known), sum(outcome.holds(value) for value in known)
            contingency.append([num_outcome, num_known - num_outcome])
        rows.append(SubgroupRow(label, len(members), mean, sd, excluded, num_outcome, num_known))
    return SubgroupTable(
        covariate=by,
        metrics=tuple(by_metric),
        rows=tuple(rows),
        tests={metric: groups_test(groups_of) for metric, groups_of in samples.items()},
        outcome=outcome,
        outcome_test=None if outcome is None else contingency_test(contingency),
        num_without_clinical=len(case_ids) - len(in_clinical),
        num_missing_covariate=len(in_clinical) - len(present),
        binning=description,
    )
