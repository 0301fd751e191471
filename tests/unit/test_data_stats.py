"""Mergeable statistics: merged partials equal the statistics of the whole column."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_ray.data.stats import Counts, Moments, QuantileSummary, merge_summaries, quantiles


def test_moments_merge_matches_numpy() -> None:
    x = np.random.default_rng(0).normal(5, 2, 1001)
    m = Moments()
    for part in np.array_split(x, 7):
        m = m.merge(Moments.of(part))
    assert m.n == 1001 and m.mean == pytest.approx(x.mean()) and m.std == pytest.approx(x.std())
    assert (m.min, m.max) == (x.min(), x.max())


def test_small_summaries_stay_exact() -> None:
    x = np.array([3.0, 1.0, 2.0, 10.0, 7.0])
    merged = merge_summaries([QuantileSummary.of(x[:2]), QuantileSummary.of(x[2:])])
    assert merged.exact
    assert quantiles(merged, [0.5, 0.9]).tolist() == pytest.approx(np.quantile(x, [0.5, 0.9]).tolist())


def test_large_summaries_are_close_in_rank() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, 30_000), rng.exponential(5, 30_000)])
    rng.shuffle(x)
    parts = [QuantileSummary.of(p, points=257) for p in np.array_split(x, 40)]
    merged = merge_summaries(parts, points=257)
    assert not merged.exact and merged.n == x.size
    for q in (0.01, 0.25, 0.5, 0.75, 0.99):
        rank = (x <= quantiles(merged, [q])[0]).mean()
        assert abs(rank - q) < 0.01, (q, rank)


def test_counts_merge_and_ties() -> None:
    c = Counts({"a": 2, "b": 1}, 1).merge(Counts({"b": 1, "c": 5}, 2))
    assert c.counts == {"a": 2, "b": 2, "c": 5} and c.missing == 3
    assert c.most_frequent() == "c"
    assert Counts({"b": 2, "a": 2}).most_frequent() == "a"  # ties broken by text, not by order of arrival
