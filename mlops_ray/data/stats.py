"""Mergeable partial statistics: computed per Ray Data block, merged on the driver. Pure numpy.

* ``Moments``: count, mean, M2, min, max, merged exactly with Chan's parallel formula (no catastrophic
  cancellation from sums of squares).
* ``QuantileSummary``: a block keeps all its values when it has at most ``SUMMARY_POINTS`` of them
  (exact), else its values at ``SUMMARY_POINTS`` evenly spaced ranks. Merging mixes the blocks'
  piecewise-linear CDFs weighted by their counts and re-summarises, so a quantile of the merged
  summary is within about 1/(SUMMARY_POINTS-1) of the requested rank per merge level (0.05% for
  one level; merging is done in groups of ``MERGE_FANOUT`` so 2M blocks still need only 4 levels).
  When every block is exact and the total is at most ``EXACT_LIMIT`` values, quantiles are exact
  (numpy's default "linear" method, the same as ``np.median`` and scikit-learn's SimpleImputer).
* ``Counts``: exact value counts of a categorical column, merged by addition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SUMMARY_POINTS = 2049
EXACT_LIMIT = 2_000_000
MERGE_FANOUT = 32


@dataclass
class Moments:
    """Count, mean, sum of squared deviations, min and max of finite values."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float = float("inf")
    max: float = float("-inf")

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        if x.size == 0:
            return cls()
        mean = float(x.mean())
        return cls(int(x.size), mean, float(((x - mean) ** 2).sum()), float(x.min()), float(x.max()))

    def merge(self, other: Moments) -> Moments:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        m2 = self.m2 + other.m2 + delta * delta * self.n * other.n / n
        return Moments(n, mean, m2, min(self.min, other.min), max(self.max, other.max))

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0, as scikit-learn's StandardScaler)."""
        return float(np.sqrt(self.m2 / self.n)) if self.n else 0.0


@dataclass
class QuantileSummary:
    """Sorted values (``exact``) or values at evenly spaced ranks, and how many values they stand for."""

    points: np.ndarray
    n: int
    exact: bool

    @classmethod
    def of(cls, x: np.ndarray, points: int = SUMMARY_POINTS) -> QuantileSummary:
        x = np.sort(np.asarray(x, dtype=np.float64))
        if x.size <= points:
            return cls(x, int(x.size), True)
        return cls(np.quantile(x, np.linspace(0.0, 1.0, points)), int(x.size), False)

    def cdf_levels(self) -> np.ndarray:
        m = self.points.size
        return np.linspace(0.0, 1.0, m) if m > 1 else np.ones(1)


def merge_summaries(parts: Sequence[QuantileSummary], points: int = SUMMARY_POINTS) -> QuantileSummary:
    """One summary for all ``parts`` (exact while the total fits ``EXACT_LIMIT``)."""
    parts = [p for p in parts if p.n > 0]
    if not parts:
        return QuantileSummary(np.empty(0), 0, True)
    if len(parts) == 1:
        return parts[0]
    total = sum(p.n for p in parts)
    if all(p.exact for p in parts) and total <= EXACT_LIMIT:
        return QuantileSummary(np.sort(np.concatenate([p.points for p in parts])), total, True)
    while len(parts) > MERGE_FANOUT:
        parts = [_mix(parts[i:i + MERGE_FANOUT], points) for i in range(0, len(parts), MERGE_FANOUT)]
    return _mix(parts, points)


def _mix(parts: Sequence[QuantileSummary], points: int) -> QuantileSummary:
    if len(parts) == 1:
        return parts[0]
    total = sum(p.n for p in parts)
    if all(p.exact for p in parts) and total <= points:
        return QuantileSummary(np.sort(np.concatenate([p.points for p in parts])), total, True)
    xs = np.unique(np.concatenate([p.points for p in parts]))
    cdf = np.zeros(xs.size)
    for p in parts:
        cdf += p.n * _block_cdf(p, xs)
    cdf /= total
    levels = np.linspace(0.0, 1.0, points)
    return QuantileSummary(_invert(cdf, xs, levels), total, False)


def _block_cdf(p: QuantileSummary, xs: np.ndarray) -> np.ndarray:
    """A block's CDF at ``xs``; an exact block is the empirical step CDF, a summary interpolates."""
    if p.exact:
        return np.searchsorted(p.points, xs, side="right") / p.n
    return np.interp(xs, p.points, p.cdf_levels(), left=0.0, right=1.0)


def _invert(cdf: np.ndarray, xs: np.ndarray, levels: np.ndarray) -> np.ndarray:
    idx = np.clip(np.searchsorted(cdf, levels, side="left"), 0, xs.size - 1)
    prev = np.clip(idx - 1, 0, xs.size - 1)
    c0, c1 = cdf[prev], cdf[idx]
    span = np.where(c1 > c0, c1 - c0, 1.0)
    w = np.clip((levels - c0) / span, 0.0, 1.0)
    out = xs[prev] + w * (xs[idx] - xs[prev])
    out[levels <= cdf[0]] = xs[0]
    return out


def quantiles(summary: QuantileSummary, qs: Sequence[float] | np.ndarray, method: str = "linear") -> np.ndarray:
    """Quantiles at ``qs`` (NaN when there are no values)."""
    q = np.asarray(qs, dtype=np.float64)
    if summary.n == 0:
        return np.full(q.shape, np.nan)
    if summary.exact:
        return np.quantile(summary.points, q, method=method)
    return np.interp(q, summary.cdf_levels(), summary.points)


@dataclass
class Counts:
    """Exact value counts of one categorical column, and its missing values."""

    counts: dict[Any, int] = field(default_factory=dict)
    missing: int = 0

    def merge(self, other: Counts) -> Counts:
        out = dict(self.counts)
        for k, v in other.counts.items():
            out[k] = out.get(k, 0) + v
        return Counts(out, self.missing + other.missing)

    def most_frequent(self) -> Any:
        """The most frequent value; ties broken by the value's text, so the answer does not depend on order."""
        if not self.counts:
            return None
        return min(self.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[0]

    def ranked(self) -> list[tuple[Any, int]]:
        return sorted(self.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))


@dataclass
class ColumnStats:
    """What pass 1 learns about one numeric column of the training rows (missing values apart)."""

    moments: Moments = field(default_factory=Moments)
    summary: QuantileSummary = field(default_factory=lambda: QuantileSummary(np.empty(0), 0, True))
    missing: int = 0

    def quantile(self, q: float) -> float:
        return float(quantiles(self.summary, [q])[0])


def merge_column_stats(parts: Iterable[ColumnStats]) -> ColumnStats:
    parts = list(parts)
    moments = Moments()
    for p in parts:
        moments = moments.merge(p.moments)
    return ColumnStats(moments, merge_summaries([p.summary for p in parts]), sum(p.missing for p in parts))


def numeric_partial(values: np.ndarray) -> ColumnStats:
    """Pass-1 statistics of one block's column (NaN marks a missing value)."""
    finite = values[np.isfinite(values)]
    return ColumnStats(Moments.of(finite), QuantileSummary.of(finite), int(values.size - finite.size))
