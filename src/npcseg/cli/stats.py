"""`npcseg stats`: statistics over per-case metric tables (``metrics.csv`` of `npcseg evaluate` or `npcseg cv`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from npcseg.cli.options import comma_list

if TYPE_CHECKING:
    from rich.table import Table

    from npcseg.evaluation.stats_tables import FileComparison
    from npcseg.evaluation.subgroups import SubgroupTable

stats_app = typer.Typer(
    help="Statistics over per-case metrics tables: paired / unpaired comparisons and clinical subgroups.",
    no_args_is_help=True,
    add_completion=False,
)

OUT_HELP = "Write the table to this file: .csv, .json or .md (repeat for several formats)."


@stats_app.command("compare")
def compare_command(
    tables: list[Path] = typer.Argument(..., help="Two or more per-case metrics.csv files (case_id column)."),
    metric: str = typer.Option("dice", "--metric", help="Metric column (or alias: hd, hd95, assd, cc, recall, dsc)."),
    reference: Path | None = typer.Option(
        None, "--reference", help="The table every other one is tested against (one of TABLES; default the first)."
    ),
    resamples: int = typer.Option(10000, "--resamples", min=1, help="Bootstrap resamples for the CI of the mean."),
    confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999, help="Confidence level of the CI."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling."),
    out: list[Path] = typer.Option([], "--out", help=OUT_HELP),
) -> None:
    """Paired Wilcoxon (shared cases) and Mann-Whitney U of each table against the reference, mean ± sd, CI."""
    from rich.console import Console

    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.evaluation.statistics import BootstrapConfig
        from npcseg.evaluation.stats_tables import compare_metric_files, write_table

        config = BootstrapConfig(n_resamples=resamples, confidence_level=confidence, seed=seed)
        comparison = compare_metric_files(tables, metric, reference=reference, bootstrap=config)
        for path in out:
            write_table(comparison, path)
    console = Console()
    console.print(_comparison_table(comparison))
    for row in comparison.rows:
        if row.paired is not None and row.paired.note:
            console.print(f"{row.label}: {row.paired.note}")
    for path in out:
        console.print(f"wrote {path}")


@stats_app.command("subgroups")
def subgroups_command(
    metrics_csv: Path = typer.Argument(..., help="Per-case metrics.csv (case_id column)."),
    clinical: Path = typer.Option(..., "--clinical", help="The cohort's clinical.csv (case_id + covariates)."),
    by: str = typer.Option(..., "--by", help="Clinical column to group by (e.g. t_category, chemotherapy, age)."),
    metric: list[str] = typer.Option(["dice"], "--metric", help="Metric column; repeat for several (Table 7 form)."),
    bins: str | None = typer.Option(
        None, "--bins", help="Bin a numeric column: 'median' (median split) or cut points such as '50,60'."
    ),
    group: list[str] = typer.Option(
        [], "--group", help="Merge categories: LABEL=VALUE,VALUE (e.g. 'T1+T2=T1,T2'); repeat per merged group."
    ),
    outcome: str | None = typer.Option(
        None, "--outcome", help="Binary outcome tested against the subgroups, e.g. 'dice>=0.7' (Fisher / chi-square)."
    ),
    out: list[Path] = typer.Option([], "--out", help=OUT_HELP),
) -> None:
    """Per subgroup n and mean ± sd; Mann-Whitney U (2 groups) or Kruskal-Wallis across groups (SeqSeg Tables 7-8)."""
    from rich.console import Console

    from npcseg.cli.errors import user_errors

    with user_errors():
        from npcseg.evaluation.stats_tables import write_table
        from npcseg.evaluation.subgroups import Outcome, subgroup_table

        table = subgroup_table(
            metrics_csv,
            clinical,
            by,
            metrics=metric,
            bins=bins,
            groups=parse_groups(group),
            outcome=None if outcome is None else Outcome.parse(outcome),
        )
        for path in out:
            write_table(table, path)
    console = Console()
    console.print(_subgroup_table(table))
    for path in out:
        console.print(f"wrote {path}")


def parse_groups(specifications: list[str]) -> dict[str, list[str]]:
    """``["T1+T2=T1,T2"]`` -> ``{"T1+T2": ["T1", "T2"]}``; ``ValueError`` on a malformed or repeated label."""
    groups: dict[str, list[str]] = {}
    for specification in specifications:
        label, separator, members = specification.partition("=")
        values = comma_list(members)
        if not separator or not label.strip() or not values:
            raise ValueError(f"--group {specification!r}: expected LABEL=VALUE[,VALUE...], e.g. 'T1+T2=T1,T2'")
        if label.strip() in groups:
            raise ValueError(f"--group: label {label.strip()!r} given twice")
        groups[label.strip()] = values
    return groups


def _p(value: float | None) -> str:
    from npcseg.evaluation.table import format_p_value

    return format_p_value(value)


def _number(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3f}"


def _comparison_table(comparison: FileComparison) -> Table:
    from rich.table import Table

    level = f"{100 * comparison.bootstrap.confidence_level:g}%"
    table = Table(title=f"{comparison.metric}: each table against {comparison.reference}")
    table.add_column("table", overflow="fold")
    for column in ("n", "mean ± sd", f"{level} CI", "matched", "p Wilcoxon", "p MWU"):
        table.add_column(column, no_wrap=True)
    for row in comparison.rows:
        summary = row.summary
        table.add_row(
            row.label,
            f"{summary.num_values}" + (f" (+{summary.num_excluded} n/a)" if summary.num_excluded else ""),
            f"{_number(summary.mean)} ± {_number(summary.sd)}",
            f"{_number(summary.ci_low)}-{_number(summary.ci_high)}",
            str(row.num_matched),
            _p(None if row.paired is None else row.paired.p_value),
            _p(None if row.unpaired is None else row.unpaired.p_value),
        )
    return table


def _subgroup_table(result: SubgroupTable) -> Table:
    from rich.table import Table

    caption = "\n".join(result.caption())
    table = Table(title=f"by {result.covariate} ({result.binning})", caption=caption)
    for column in (result.covariate, "n", *(f"{metric} mean ± sd" for metric in result.metrics)):
        table.add_column(column)
    if result.outcome is not None:
        table.add_column(str(result.outcome))
    for row in result.rows:
        cells = [row.group, str(row.num_cases)]
        cells += [f"{_number(row.mean[metric])} ± {_number(row.sd[metric])}" for metric in result.metrics]
        if result.outcome is not None:
            cells.append(f"{row.num_outcome}/{row.num_outcome_known}")
        table.add_row(*cells)
    return table
