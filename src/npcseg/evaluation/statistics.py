"""Statistical tests on per-case metric values (the numbers behind ``npcseg stats``).

Every p-value comes from ``scipy.stats`` with its defaults (two-sided); what this module adds is the handling of
the degenerate inputs scipy answers with nan or an error, each with a written rule:

* Non-finite values (nan distances of empty masks, ``-inf`` conformity) are left out of every statistic and
  counted (``num_excluded``); a paired test drops a pair when either value is non-finite.
* Wilcoxon signed-rank (``scipy.stats.wilcoxon``; ``zero_method='wilcox'`` drops zero differences): when *every*
  paired difference is zero the samples are identical, the sign-flip distribution is a single point and the
  exact permutation p-value is 1; we return statistic 0 and p = 1.0 (scipy would warn and divide by zero).
* Kruskal-Wallis: when all values of all groups are identical the permutation p-value is likewise 1; we return
  statistic 0 and p = 1.0 (scipy returns nan).
* A test with an empty sample (or, for Kruskal-Wallis, fewer than 2 non-empty groups) has p = nan.
* Contingency tables (subgroup x binary outcome): all-zero rows and columns are dropped; with fewer than 2 rows or
  2 columns left nothing varies and p = nan. A 2 x 2 table with an expected count below 5 gets Fisher's exact
  test (``scipy.stats.fisher_exact``), any other table Pearson's chi-square (``scipy.stats.chi2_contingency``;
  Yates' continuity correction on 2 x 2 tables, scipy's default). Larger tables with small expected counts say
  so in the result's ``note``.

Bootstrap confidence interval of the mean: the percentile bootstrap of ``scipy.stats.bootstrap``
(``method='percentile'``) with ``n_resamples`` resamples drawn by ``numpy.random.default_rng(seed)``. A constant
sample gives the point ``(value, value)``; fewer than 2 values give ``(nan, nan)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

WILCOXON = "Wilcoxon signed-rank (paired, two-sided, scipy.stats.wilcoxon)"
MANN_WHITNEY = "Mann-Whitney U (two-sided, scipy.stats.mannwhitneyu)"
KRUSKAL = "Kruskal-Wallis H (scipy.stats.kruskal)"
FISHER = "Fisher's exact (two-sided, scipy.stats.fisher_exact)"
CHI_SQUARE = "Pearson chi-square (scipy.stats.chi2_contingency)"


@dataclass(frozen=True)
class BootstrapConfig:
    """Settings of the percentile bootstrap of a mean.

    Attributes:
        n_resamples: number of bootstrap resamples.
        confidence_level: coverage of the interval (0.95: the 2.5th to 97.5th percentile of resampled means).
        seed: seed of the resampling generator (same seed, same interval).
    """

    n_resamples: int = 10000
    confidence_level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_resamples < 1:
            raise ValueError(f"n_resamples must be >= 1, got {self.n_resamples}")
        if not 0.0 < self.confidence_level < 1.0:
            raise ValueError(f"confidence_level must lie in (0, 1), got {self.confidence_level}")


@dataclass(frozen=True)
class SampleSummary:
    """Descriptive statistics of one sample's finite values.

    Attributes:
        num_values: finite values used.
        num_excluded: non-finite values left out.
        mean: mean (nan with no value).
        sd: sample standard deviation, ddof = 1 (nan with fewer than 2 values).
        ci_low: lower end of the bootstrap confidence interval of the mean.
        ci_high: upper end of that interval.
    """

    num_values: int
    num_excluded: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class StatisticalTest:
    """The outcome of one hypothesis test.

    Attributes:
        test: the test's name (and the scipy function computing it).
        statistic: the test statistic as scipy returns it (W, U, H, odds ratio or chi-square).
        p_value: the p-value (nan when the test is undefined on the input; see the module docstring).
        num_values: values (or pairs, or table entries) the test used.
        note: how a degenerate input was handled, or ``""``.
    """

    test: str
    statistic: float
    p_value: float
    num_values: int
    note: str = ""


def finite_values(values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, int]:
    """The finite values as a float array, and how many were left out."""
    array = np.asarray(values, dtype=float).ravel()
    finite = array[np.isfinite(array)]
    return finite, int(array.size - finite.size)


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray, config: BootstrapConfig | None = None
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of the finite values (rules: module docstring)."""
    config = config or BootstrapConfig()
    finite, _ = finite_values(values)
    if finite.size < 2:
        return math.nan, math.nan
    if np.all(finite == finite[0]):
        return float(finite[0]), float(finite[0])
    result = stats.bootstrap(
        (finite,),
        np.mean,
        n_resamples=config.n_resamples,
        confidence_level=config.confidence_level,
        method="percentile",
        rng=np.random.default_rng(config.seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarize_sample(values: Sequence[float] | np.ndarray, config: BootstrapConfig | None = None) -> SampleSummary:
    """Mean, sample sd and bootstrap CI of the mean of the finite values."""
    finite, num_excluded = finite_values(values)
    low, high = bootstrap_mean_ci(finite, config)
    return SampleSummary(
        num_values=int(finite.size),
        num_excluded=num_excluded,
        mean=float(finite.mean()) if finite.size else math.nan,
        sd=float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
        ci_low=low,
        ci_high=high,
    )


def wilcoxon_signed_rank(
    sample: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray
) -> StatisticalTest:
    """Paired two-sided Wilcoxon signed-rank test of ``sample[i]`` against ``reference[i]``.

    Raises:
        ValueError: when the two samples differ in length.
    """
    first, second = np.asarray(sample, dtype=float).ravel(), np.asarray(reference, dtype=float).ravel()
    if first.shape != second.shape:
        raise ValueError(f"paired samples differ in length: {first.size} vs {second.size}")
    keep = np.isfinite(first) & np.isfinite(second)
    first, second = first[keep], second[keep]
    if first.size == 0:
        return StatisticalTest(WILCOXON, math.nan, math.nan, 0, "no finite pair")
    if np.all(first == second):
        return StatisticalTest(WILCOXON, 0.0, 1.0, int(first.size), "all paired differences are zero: p = 1")
    result = stats.wilcoxon(first, second)
    return StatisticalTest(WILCOXON, float(result.statistic), float(result.pvalue), int(first.size))


def mann_whitney(sample: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray) -> StatisticalTest:
    """Unpaired two-sided Mann-Whitney U test (U of ``sample``); p = nan if either has no finite value."""
    first, _ = finite_values(sample)
    second, _ = finite_values(reference)
    if first.size == 0 or second.size == 0:
        return StatisticalTest(MANN_WHITNEY, math.nan, math.nan, int(first.size + second.size), "an empty sample")
    result = stats.mannwhitneyu(first, second, alternative="two-sided")
    return StatisticalTest(MANN_WHITNEY, float(result.statistic), float(result.pvalue), int(first.size + second.size))


def kruskal_wallis(groups: Sequence[Sequence[float] | np.ndarray]) -> StatisticalTest:
    """Kruskal-Wallis H test across groups (empty groups dropped); p = nan with fewer than 2 non-empty groups."""
    samples = [sample for sample in (finite_values(group)[0] for group in groups) if sample.size]
    total = int(sum(sample.size for sample in samples))
    if len(samples) < 2:
        return StatisticalTest(KRUSKAL, math.nan, math.nan, total, "fewer than 2 non-empty groups")
    pooled = np.concatenate(samples)
    if np.all(pooled == pooled[0]):
        return StatisticalTest(KRUSKAL, 0.0, 1.0, total, "all values identical: p = 1")
    result = stats.kruskal(*samples)
    return StatisticalTest(KRUSKAL, float(result.statistic), float(result.pvalue), total)


def groups_test(groups: Sequence[Sequence[float] | np.ndarray]) -> StatisticalTest:
    """Mann-Whitney U for exactly 2 groups, Kruskal-Wallis for more (the rule of SeqSeg's subgroup analysis)."""
    if len(groups) == 2:
        return mann_whitney(groups[0], groups[1])
    return kruskal_wallis(groups)


def contingency_test(table: Sequence[Sequence[int]] | np.ndarray) -> StatisticalTest:
    """Fisher's exact test or Pearson's chi-square on a table of counts (choice rule: module docstring).

    Raises:
        ValueError: when the table is not 2D or holds negative or non-integer counts.
    """
    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2 or np.any(counts < 0) or np.any(counts != np.round(counts)):
        raise ValueError(f"a contingency table needs non-negative integer counts in 2D, got {counts.tolist()}")
    counts = counts[counts.sum(axis=1) > 0][:, counts.sum(axis=0) > 0].astype(np.int64)
    total = int(counts.sum())
    if counts.shape[0] < 2 or counts.shape[1] < 2:
        return StatisticalTest(CHI_SQUARE, math.nan, math.nan, total, "a single row or column has all counts")
    expected = stats.contingency.expected_freq(counts)
    if counts.shape == (2, 2) and np.any(expected < 5):
        result = stats.fisher_exact(counts)
        return StatisticalTest(FISHER, float(result.statistic), float(result.pvalue), total, "expected count < 5")
    chi_square = stats.chi2_contingency(counts)
    small = int(np.count_nonzero(expected < 5))
    note = f"{small} cell(s) with expected count < 5: the chi-square approximation may be poor" if small else ""
    return StatisticalTest(CHI_SQUARE, float(chi_square.statistic), float(chi_square.pvalue), total, note)
