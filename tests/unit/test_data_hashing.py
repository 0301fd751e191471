"""Split, folds and fingerprint depend on row content only: stable across row order and file splits."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mlops_ray.data.hashing import FingerprintPartial, assign_folds, holdout_mask, row_hashes

COLS = ["x", "c", "y"]


def _table(n: int = 3, offset: int = 0) -> pa.Table:
    i = np.arange(offset, offset + n)
    return pa.table({"x": i * 0.5, "c": [f"k{v % 3}" for v in i], "y": i % 2})


def test_hash_ignores_order_and_blocks() -> None:
    t = _table(3)
    h, _ = row_hashes(t, COLS)
    hr, _ = row_hashes(t.take([2, 0, 1]), COLS)
    assert sorted(h.tolist()) == sorted(hr.tolist())
    h_first, _ = row_hashes(t.slice(0, 1), COLS)
    assert h_first[0] == h[0]


def test_hash_sees_every_value_and_missing() -> None:
    a = pa.table({"x": [1.0, None, 0.0], "c": ["a", None, "a"], "y": [0, 0, 0]})
    b = pa.table({"x": [1.0, 0.0, -0.0], "c": ["b", "", "a"], "y": [0, 0, 0]})
    ha, _ = row_hashes(a, COLS)
    hb, _ = row_hashes(b, COLS)
    assert ha[0] != hb[0] and ha[1] != hb[1]  # a changed value; missing is not 0.0 nor ""
    assert ha[2] == hb[2]  # -0.0 and 0.0 are one value


def test_split_is_seeded_and_deterministic() -> None:
    h, _ = row_hashes(_table(2000), COLS)
    m1 = holdout_mask(h, seed=1, fraction=0.2)
    assert np.array_equal(m1, holdout_mask(h, seed=1, fraction=0.2))
    assert not np.array_equal(m1, holdout_mask(h, seed=2, fraction=0.2))
    assert 0.15 < m1.mean() < 0.25


def test_fingerprint_stable_across_splits_and_order() -> None:
    t = _table(10)
    whole = FingerprintPartial.of(*row_hashes(t, COLS))
    parts = [t.slice(0, 3), t.slice(3, 3), t.slice(6)]
    merged = FingerprintPartial()
    for p in reversed(parts):
        merged = merged.merge(FingerprintPartial.of(*row_hashes(p, COLS)))
    assert merged.hexdigest("ctx") == whole.hexdigest("ctx")
    changed = t.set_column(0, "x", pa.array([0.5 * i + (i == 4) for i in range(10)]))
    assert FingerprintPartial.of(*row_hashes(changed, COLS)).hexdigest("ctx") != whole.hexdigest("ctx")
    assert whole.hexdigest("ctx") != whole.hexdigest("other context")


def test_folds_stratified_and_order_free() -> None:
    h, _ = row_hashes(_table(300), COLS)
    y = np.arange(300) % 3 == 0
    folds = assign_folds(h, 5, seed=0, strata=y.astype(int))
    for k in range(5):
        in_fold = folds == k
        assert abs(y[in_fold].mean() - y.mean()) < 0.03
        assert 55 <= in_fold.sum() <= 65
    perm = np.random.default_rng(0).permutation(300)
    assert np.array_equal(assign_folds(h[perm], 5, 0, y[perm].astype(int)), folds[perm])


def test_identical_rows_share_a_fold() -> None:
    """A duplicate in another fold is scored by a model that trained on it: CV would flatter the config."""
    h, _ = row_hashes(_table(100), COLS)
    rng = np.random.default_rng(1)
    dup = np.concatenate([h, h[rng.integers(0, 100, 400)]])  # 400 repeats of 100 distinct rows
    y = (dup % np.uint64(2)).astype(int)
    folds = assign_folds(dup, 5, seed=0, strata=y)
    for value in np.unique(dup):
        assert len(set(folds[dup == value])) == 1
    distinct = folds[:100]  # the distinct rows are still dealt evenly across folds
    assert all(18 <= (distinct == k).sum() <= 22 for k in range(5))
    assert np.array_equal(assign_folds(h, 5, 0), assign_folds(h, 5, 0))
