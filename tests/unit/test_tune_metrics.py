"""Metric names, directions, and fold scoring."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlops_ray.exceptions import TuneError
from mlops_ray.tune.metrics import resolve_metric, score, score_all


@pytest.mark.parametrize(("name", "task", "expected", "mode"), [
    ("auto", "classification", "accuracy", "max"),
    ("auto", "regression", "r2", "max"),
    ("f1_macro", "classification", "f1_macro", "max"),
    ("roc_auc", "classification", "roc_auc", "max"),
    ("log_loss", "classification", "log_loss", "min"),
    ("rmse", "regression", "rmse", "min"),
    ("mae", "regression", "mae", "min"),
])
def test_resolve_metric_and_mode(name: str, task: str, expected: str, mode: str) -> None:
    m = resolve_metric(name, task)
    assert (m.name, m.mode) == (expected, mode)
    assert m.better(1.0, 0.0) == (mode == "max")


def test_metric_that_does_not_fit_the_task_lists_the_allowed_ones() -> None:
    with pytest.raises(TuneError, match="'rmse' does not apply to classification; use one of accuracy"):
        resolve_metric("rmse", "classification")
    with pytest.raises(TuneError, match=r"tune\.metric 'auc' is not supported"):
        resolve_metric("auc", "classification")


def test_scores_match_scikit_learn() -> None:
    y = np.array([0, 1, 2, 2, 1, 0])
    pred = np.array([0, 2, 2, 2, 1, 0])
    proba = np.array([[.8, .1, .1], [.1, .3, .6], [.1, .1, .8], [.2, .2, .6], [.1, .7, .2], [.6, .3, .1]])
    assert score("accuracy", y, pred) == pytest.approx(skm.accuracy_score(y, pred))
    assert score("f1_macro", y, pred) == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert score("log_loss", y, pred, proba) == pytest.approx(skm.log_loss(y, proba))
    assert score("roc_auc", y, pred, proba) == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", average="weighted"))
    yr, pr = np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.0, 2.0])
    assert score("rmse", yr, pr) == pytest.approx(np.sqrt(skm.mean_squared_error(yr, pr)))
    assert score("mae", yr, pr) == pytest.approx(skm.mean_absolute_error(yr, pr))
    assert score("r2", yr, pr) == pytest.approx(skm.r2_score(yr, pr))


def test_probability_metrics_need_proba() -> None:
    assert set(score_all("classification", np.array([0, 1]), np.array([0, 1]), None)) == {"accuracy", "f1_macro"}
    with pytest.raises(TuneError, match="needs predict_proba"):
        score("roc_auc", np.array([0, 1]), np.array([0, 1]), None)


def test_multiclass_fold_holding_two_of_three_classes() -> None:
    # A rare third class can be absent from a fold: every metric still scores it (was a ValueError).
    y = np.array([0, 0, 1, 1, 0, 1])
    proba = np.array([[.7, .2, .1], [.5, .3, .2], [.2, .7, .1], [.3, .4, .3], [.6, .3, .1], [.1, .8, .1]])
    out = score_all("classification", y, proba.argmax(axis=1), proba, n_classes=3)
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1] / proba[:, :2].sum(axis=1)))
    assert out["roc_auc"] == 1.0 and out["accuracy"] == 1.0 and np.isfinite(out["log_loss"])
