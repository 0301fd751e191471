"""The reference profile: the monitor's format, the same numbers in memory and from block partials."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_ray.data.fitting import PROFILE_FORMAT, bin_counts, compute_reference_profile


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 500)
    x[:10] = np.nan
    return pd.DataFrame({"x": x, "c": rng.choice(["a", "b", "c"], 500, p=[0.6, 0.3, 0.1]),
                         "y": rng.integers(0, 2, 500)})


def test_format_and_counts() -> None:
    prof = compute_reference_profile(_frame(), ["x"], ["c"], target="y")
    assert prof["format"] == PROFILE_FORMAT and prof["n_rows"] == 500
    x = prof["columns"]["x"]
    assert x["kind"] == "numeric" and x["missing"] == 10
    assert len(x["counts"]) == len(x["edges"]) + 1 and sum(x["counts"]) == 490
    assert x["counts"][0] == 0 and x["counts"][-1] == 0  # outer bins are empty in the reference
    assert np.all(np.diff(x["edges"]) > 0)
    assert list(prof["columns"]["c"]["counts"]) == ["a", "b", "c"]  # most frequent first
    assert sum(prof["target"]["counts"].values()) == 500


def test_right_closed_bins() -> None:
    edges = np.array([0.0, 1.0, 2.0])
    assert bin_counts(np.array([-1, 0, 0.5, 1, 2, 3, np.nan]), edges).tolist() == [2, 2, 1, 1]


def test_monitor_reads_it() -> None:
    profile = pytest.importorskip("mlops_ray.monitor.profile")
    prof = profile.load_profile(compute_reference_profile(_frame(), ["x"], ["c"]))
    assert prof.columns["x"].kind == "numeric" and prof.columns["c"].categories == ["a", "b", "c"]
    # Live data identical to the reference lands in the same bins with the monitor's own counting.
    live = profile.count_frame(prof, _frame())
    assert live.counts["x"].tolist() == prof.columns["x"].counts.tolist()
