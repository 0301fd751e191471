"""The promotion gate as pure logic: synthetic per-row correctness, no MLflow, no Ray."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_ray.exceptions import RegistryError
from mlops_ray.registry.gate import (
    Predictions,
    all_metrics,
    check_thresholds,
    decide,
    metric_value,
    paired_bootstrap,
    paired_bootstrap_rows,
)


def _clf(correct: np.ndarray) -> Predictions:
    """Binary predictions whose per-row correctness is ``correct`` (true label always 1)."""
    y = np.ones(len(correct), dtype=np.int64)
    pred = np.where(correct.astype(bool), 1, 0)
    proba = np.column_stack([1.0 - 0.8 * pred - 0.1, 0.8 * pred + 0.1])
    return Predictions("classification", y, pred, proba)


def _correct(n: int, rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(n)
    out[rng.choice(n, round(rate * n), replace=False)] = 1
    return out


def test_better_challenger_is_accepted() -> None:
    champ, chal = _correct(400, 0.70, 1), _correct(400, 0.90, 2)
    d = decide("accuracy", _clf(chal), _clf(champ), champion_version="3", seed=0)
    assert d.accepted, d.reason
    assert d.bootstrap is not None and d.bootstrap.ci_low > 0
    assert d.bootstrap.delta == pytest.approx(0.20)
    assert "beats the champion" in d.reason and "v3" in d.reason


def test_worse_challenger_is_rejected() -> None:
    champ, chal = _correct(400, 0.90, 1), _correct(400, 0.70, 2)
    d = decide("accuracy", _clf(chal), _clf(champ), champion_version="1")
    assert not d.accepted
    assert d.bootstrap is not None and d.bootstrap.ci_high < 0
    assert d.reason.startswith("worse than the champion")


def test_tie_within_noise_is_rejected() -> None:
    # Same accuracy, different rows right: the difference is pure noise.
    a = np.r_[np.ones(20), np.zeros(20), np.ones(160)]
    b = np.r_[np.zeros(20), np.ones(20), np.ones(160)]
    d = decide("accuracy", _clf(a), _clf(b), champion_version="1")
    assert not d.accepted
    assert d.bootstrap is not None and d.bootstrap.ci_low < 0 < d.bootstrap.ci_high
    assert "tie within noise" in d.reason


def test_identical_models_are_a_tie() -> None:
    a = _correct(100, 0.8, 0)
    d = decide("accuracy", _clf(a), _clf(a.copy()), champion_version="1")
    assert not d.accepted and d.bootstrap is not None
    assert d.bootstrap.ci_low == d.bootstrap.ci_high == 0.0


def test_better_point_estimate_within_noise_is_rejected() -> None:
    base = _correct(200, 0.8, 3)
    better = base.copy()
    better[np.flatnonzero(better == 0)[:2]] = 1  # two more rows right out of 200
    d = decide("accuracy", _clf(better), _clf(base), champion_version="1")
    assert d.bootstrap is not None and d.bootstrap.delta > 0
    assert not d.accepted
    assert "point estimate only" in d.reason


def test_margin_must_be_cleared() -> None:
    champ, chal = _correct(400, 0.70, 1), _correct(400, 0.90, 2)
    assert decide("accuracy", _clf(chal), _clf(champ), margin=0.05).accepted
    d = decide("accuracy", _clf(chal), _clf(champ), margin=0.3)
    assert not d.accepted and "margin 0.3" in d.reason


def test_error_metrics_are_minimised() -> None:
    y = np.linspace(0, 10, 300)
    rng = np.random.default_rng(0)
    good = Predictions("regression", y, y + rng.normal(0, 0.5, 300))
    bad = Predictions("regression", y, y + rng.normal(0, 2.0, 300))
    for metric in ("rmse", "mae", "r2"):
        assert decide(metric, good, bad, champion_version="1").accepted, metric
        assert not decide(metric, bad, good, champion_version="1").accepted, metric
    bs = paired_bootstrap("rmse", good, bad, n_bootstrap=200)
    assert bs.delta == pytest.approx(metric_value("rmse", bad) - metric_value("rmse", good))


def test_bootstrap_is_seeded_and_uses_the_same_rows() -> None:
    a, b = _correct(150, 0.8, 5), _correct(150, 0.7, 6)
    r1 = paired_bootstrap_rows(a, b, n_bootstrap=300, seed=7)
    r2 = paired_bootstrap_rows(a, b, n_bootstrap=300, seed=7)
    assert r1 == r2
    assert r1.n_rows == 150 and r1.n_bootstrap == 300
    with pytest.raises(RegistryError, match="same rows"):
        paired_bootstrap("accuracy", _clf(a), Predictions("classification", np.zeros(150, np.int64),
                                                          np.zeros(150, np.int64)))
    with pytest.raises(RegistryError, match="equal, non-empty"):
        paired_bootstrap_rows(a, b[:10])


def test_first_model_passes_on_thresholds_alone() -> None:
    p = _clf(_correct(100, 0.9, 0))
    d = decide("accuracy", p, None, thresholds={"accuracy": 0.85, "log_loss": 0.5})
    assert d.accepted and d.bootstrap is None and "first model" in d.reason
    d = decide("accuracy", p, None, thresholds={"accuracy": 0.95})
    assert not d.accepted and "accuracy 0.9 < min 0.95" in d.reason


def test_thresholds_fail_before_the_champion_comparison() -> None:
    champ, chal = _correct(400, 0.50, 1), _correct(400, 0.80, 2)
    d = decide("accuracy", _clf(chal), _clf(champ), thresholds={"log_loss": 0.01}, champion_version="2")
    assert not d.accepted and d.bootstrap is None
    assert "log_loss" in d.reason and "> max 0.01" in d.reason


def test_threshold_directions_and_errors() -> None:
    checks = check_thresholds({"accuracy": 0.8, "rmse": 1.0}, {"accuracy": 0.75, "rmse": 0.5})
    assert [(c.metric, c.kind, c.passed) for c in checks] == [("accuracy", "min", True), ("rmse", "max", False)]
    with pytest.raises(RegistryError, match="unknown metric 'acc'"):
        check_thresholds({"accuracy": 0.8}, {"acc": 0.5})
    with pytest.raises(RegistryError, match="no such metric"):
        check_thresholds({"accuracy": 0.8}, {"rmse": 0.5})


def test_metrics_match_scikit_learn() -> None:
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    proba = rng.dirichlet(np.ones(3), 200)
    pred = proba.argmax(axis=1)
    p = Predictions("classification", y, pred, proba)
    got = all_metrics(p)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="weighted"))
    yr = rng.normal(size=100)
    pr = yr + rng.normal(0, 0.3, 100)
    r = all_metrics(Predictions("regression", yr, pr))
    assert r["r2"] == pytest.approx(skm.r2_score(yr, pr))
    assert r["mae"] == pytest.approx(skm.mean_absolute_error(yr, pr))
    assert r["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(yr, pr)))


def test_decision_tags_are_flat_strings() -> None:
    d = decide("accuracy", _clf(_correct(200, 0.9, 1)), _clf(_correct(200, 0.6, 2)), champion_version="4",
               thresholds={"accuracy": 0.5})
    tags = d.to_tags()
    assert tags["mlops_ray.gate.decision"] == "accepted"
    assert tags["mlops_ray.gate.champion_version"] == "4"
    assert float(tags["mlops_ray.gate.ci_low"]) > 0
    assert tags["mlops_ray.gate.threshold.accuracy"].endswith("pass")
    assert all(isinstance(v, str) for v in tags.values())


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(RegistryError, match="empty"):
        Predictions("classification", np.array([], np.int64), np.array([], np.int64))
    with pytest.raises(RegistryError, match=r"log_loss.* cannot be computed"):
        decide("log_loss", Predictions("classification", np.ones(5, np.int64), np.ones(5, np.int64)))


def test_vectorised_binary_auc_matches_the_loop() -> None:
    from mlops_ray.registry import gate

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 120)
    pa = np.clip(y * 0.3 + rng.uniform(0, 0.7, 120), 0, 1)
    pb = np.round(rng.uniform(0, 1, 120), 1)  # ties in the scores
    a = Predictions("classification", y, (pa > 0.5).astype(np.int64), np.column_stack([1 - pa, pa]))
    b = Predictions("classification", y, (pb > 0.5).astype(np.int64), np.column_stack([1 - pb, pb]))
    idx = rng.integers(0, 120, size=(50, 120))
    fast = gate._auc_rows(y[idx], pa[idx])
    slow = [metric_value("roc_auc", a, i) for i in idx]
    np.testing.assert_allclose(fast, slow)
    bs = paired_bootstrap("roc_auc", a, b, n_bootstrap=300, seed=0)
    assert bs.delta == pytest.approx(metric_value("roc_auc", a) - metric_value("roc_auc", b))
    assert bs.ci_low > 0 and bs.n_bootstrap == 300


def test_rows_new_to_the_champion_follow_its_split() -> None:
    from mlops_ray.config import parse_config
    from mlops_ray.data.hashing import SPLIT_SCHEME, holdout_mask
    from mlops_ray.registry.register import unseen_by_champion
    from tests._registry_support import fit_features, make_frame, make_prepared

    df = make_frame(300, seed=2)
    prepared = make_prepared(df.iloc[:200], df.iloc[200:], fit_features(df.iloc[:200]))
    prepared.holdout_hashes = np.arange(1, 101, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    cfg = parse_config({"name": "g", "seed": 3, "data": {"source": {"bundled": "iris"}, "target": "label"}})
    tags = {"mlops_ray.split_seed": "3", "mlops_ray.holdout_fraction": "0.2", "mlops_ray.split_scheme": SPLIT_SCHEME}
    assert unseen_by_champion(cfg, prepared, tags) is None  # same split: every holdout row is new to it
    # The same seed under another row hash split other rows: which ones the champion saw cannot be told.
    with pytest.raises(RegistryError, match=rf"split by an older version of the row hash \(now scheme {SPLIT_SCHEME}"):
        unseen_by_champion(cfg, prepared, {k: v for k, v in tags.items() if "scheme" not in k})
    with pytest.raises(RegistryError, match="split by scheme 1 of the row hash"):
        unseen_by_champion(cfg, prepared, {**tags, "mlops_ray.split_scheme": "1"})
    with pytest.raises(RegistryError, match="older version"):
        unseen_by_champion(cfg, prepared, {})
    other = unseen_by_champion(cfg, prepared, {**tags, "mlops_ray.split_seed": "4"})
    np.testing.assert_array_equal(other, holdout_mask(prepared.holdout_hashes, 4, 0.2))
    assert 0 < other.sum() < len(other)
    prepared.holdout_hashes = None
    with pytest.raises(RegistryError, match="no row hashes"):
        unseen_by_champion(cfg, prepared, {**tags, "mlops_ray.holdout_fraction": "0.3"})
