"""Statistical tests for drift and live accuracy, on counts: no Ray, no MLflow, numpy and scipy only.

Everything works on binned counts (the reference profile's bins and the live counts in the same bins),
because that is what merges exactly across Ray Data blocks and what a reference profile can store.

* ``ks_binned``: two-sample Kolmogorov-Smirnov on binned data. The statistic is the largest ECDF gap at
  the bin edges, which is never larger than the gap on the raw data, so the p-value from the two-sample
  Kolmogorov distribution is conservative (false alarms at most alpha), ties included.
* ``chi2_homogeneity``: chi-square test of a 2 x K table (reference counts, live counts), with sparse
  categories pooled so that every expected count is at least 5 (the usual validity condition).
* ``psi``: population stability index, a size of shift rather than a test (0.1 moderate, 0.2 large).
* ``adjust_pvalues``: Bonferroni, Holm (family-wise error) or Benjamini-Hochberg (false discovery rate).
* ``wilson_interval`` for accuracy, ``bootstrap_interval`` for any other metric.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

from mlops_ray.exceptions import MonitorError

Correction = Literal["bonferroni", "holm", "bh"]
CORRECTIONS: tuple[str, ...] = ("bonferroni", "holm", "bh")


@dataclass(frozen=True)
class TestResult:
    """One test: its statistic and p-value (``n_ref``/``n_live`` the counts it saw)."""

    test: str
    statistic: float
    p_value: float
    n_ref: int
    n_live: int


def _as_counts(counts: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(counts, dtype=np.float64).reshape(-1)
    if arr.size == 0 or np.any(arr < 0) or not np.all(np.isfinite(arr)):
        raise MonitorError(f"{what}: counts must be a non-empty list of non-negative numbers, got {arr.tolist()!r}")
    return arr


def ks_binned(ref_counts: Sequence[float] | np.ndarray, live_counts: Sequence[float] | np.ndarray) -> TestResult:
    """Two-sample KS test on counts in the same ordered bins (conservative under binning and ties)."""
    ref = _as_counts(ref_counts, "ks_binned reference")
    live = _as_counts(live_counts, "ks_binned live")
    if ref.shape != live.shape:
        raise MonitorError(f"ks_binned: {ref.size} reference bins but {live.size} live bins; bin both the same way")
    n, m = ref.sum(), live.sum()
    if n == 0 or m == 0:
        return TestResult("ks", 0.0, 1.0, int(n), int(m))
    d = float(np.max(np.abs(np.cumsum(ref) / n - np.cumsum(live) / m)))
    # The same approximation scipy's ks_2samp uses for large samples ("asymp"): the one-sample
    # distribution of D at the effective sample size n*m/(n+m).
    en = n * m / (n + m)
    p = float(sps.kstwo.sf(d, max(1, round(en)))) if d > 0 else 1.0
    return TestResult("ks", d, min(1.0, max(0.0, p)), int(n), int(m))


def chi2_homogeneity(
    ref_counts: Sequence[float] | np.ndarray, live_counts: Sequence[float] | np.ndarray, *, min_expected: float = 5.0
) -> TestResult:
    """Chi-square test that reference and live counts over the same categories come from one distribution."""
    ref = _as_counts(ref_counts, "chi2 reference")
    live = _as_counts(live_counts, "chi2 live")
    if ref.shape != live.shape:
        raise MonitorError(f"chi2: {ref.size} reference categories but {live.size} live categories")
    n, m = ref.sum(), live.sum()
    if n == 0 or m == 0:
        return TestResult("chi2", 0.0, 1.0, int(n), int(m))
    ref, live = _pool_sparse(ref, live, min_expected)
    if ref.size < 2:
        return TestResult("chi2", 0.0, 1.0, int(n), int(m))
    table = np.vstack([ref, live])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    p = float(sps.chi2.sf(stat, df=ref.size - 1))
    return TestResult("chi2", stat, p, int(n), int(m))


def _pool_sparse(ref: np.ndarray, live: np.ndarray, min_expected: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge the sparsest categories (smallest column total first) until every expected count is large enough."""
    total = ref + live
    keep = total > 0
    ref, live, total = ref[keep], live[keep], total[keep]
    smaller_row = min(ref.sum(), live.sum()) / (ref.sum() + live.sum())
    order = np.argsort(total, kind="stable")
    ref, live, total = ref[order], live[order], total[order]
    # Column j's smallest expected count is total_j * smaller_row; pool from the sparse end.
    while ref.size >= 2 and total[0] * smaller_row < min_expected:
        ref = np.concatenate([[ref[0] + ref[1]], ref[2:]])
        live = np.concatenate([[live[0] + live[1]], live[2:]])
        total = ref + live
        order = np.argsort(total, kind="stable")
        ref, live, total = ref[order], live[order], total[order]
    return ref, live


def psi(ref_counts: Sequence[float] | np.ndarray, live_counts: Sequence[float] | np.ndarray,
        *, smoothing: float = 0.5) -> float:
    """Population stability index sum((q - p) * ln(q / p)); empty bins smoothed by ``smoothing`` counts."""
    ref = _as_counts(ref_counts, "psi reference")
    live = _as_counts(live_counts, "psi live")
    if ref.shape != live.shape:
        raise MonitorError(f"psi: {ref.size} reference bins but {live.size} live bins")
    if ref.sum() == 0 or live.sum() == 0:
        return 0.0
    keep = (ref + live) > 0  # bins empty on both sides carry no information
    ref, live = ref[keep], live[keep]
    p = (ref + smoothing) / (ref.sum() + smoothing * ref.size)
    q = (live + smoothing) / (live.sum() + smoothing * live.size)
    return float(np.sum((q - p) * np.log(q / p)))


def adjust_pvalues(p_values: Sequence[float] | np.ndarray, method: Correction) -> np.ndarray:
    """Multiple-testing adjusted p-values: reject hypothesis i at level alpha when adjusted[i] <= alpha."""
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    if method not in CORRECTIONS:
        raise MonitorError(f"unknown multiple-testing correction {method!r}; use one of {', '.join(CORRECTIONS)}")
    if np.any((p < 0) | (p > 1)) or not np.all(np.isfinite(p)):
        raise MonitorError(f"p-values must lie in [0, 1], got {p.tolist()!r}")
    k = p.size
    if k == 0:
        return p
    if method == "bonferroni":
        return np.minimum(1.0, p * k)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate(ranked * (k - np.arange(k)))
    else:  # Benjamini-Hochberg step-up
        adj = np.minimum.accumulate((ranked * k / np.arange(1, k + 1))[::-1])[::-1]
    out = np.empty(k)
    out[order] = np.minimum(1.0, adj)
    return out


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    method: str


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a proportion (good coverage even for small n or p near 0/1)."""
    if n < 0 or successes < 0 or successes > n:
        raise MonitorError(f"wilson_interval: need 0 <= successes <= n, got successes={successes}, n={n}")
    if not 0 < confidence < 1:
        raise MonitorError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return Interval(float("nan"), 0.0, 1.0, confidence, 0, "wilson")
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    phat = successes / n
    denom = 1 + z * z / n
    center = (phat + z * z / (2 * n)) / denom
    half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes == 0 else float(max(0.0, center - half))
    high = 1.0 if successes == n else float(min(1.0, center + half))
    return Interval(phat, low, high, confidence, n, "wilson")


def bootstrap_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], float],
    *,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``metric(y_true, y_pred)`` over resampled rows."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n = len(y_true)
    if n != len(y_pred):
        raise MonitorError(f"bootstrap_interval: {n} labels but {len(y_pred)} predictions")
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), confidence, 0, "bootstrap")
    est = float(metric(y_true, y_pred))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = np.array([metric(y_true[i], y_pred[i]) for i in idx], dtype=np.float64)
    boots = boots[np.isfinite(boots)]
    if boots.size == 0:
        return Interval(est, float("nan"), float("nan"), confidence, n, "bootstrap")
    lo, hi = np.quantile(boots, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(est, float(lo), float(hi), confidence, n, "bootstrap")
