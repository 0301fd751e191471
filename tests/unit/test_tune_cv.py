"""Cross-validation of one config on tiny arrays, without Ray."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score

from mlops_ray.exceptions import TuneError
from mlops_ray.tune.cv import cross_validate, fold_indices, iter_cv
from mlops_ray.tune.estimators import make_factory
from mlops_ray.tune.fitted import expand_proba
from tests.tune_helpers import make_prepared


def _factory(**fixed: object):
    return make_factory("sklearn", "sklearn.linear_model.LogisticRegression", "classification", dict(fixed), ["C"],
                        0)


def test_cross_validate_matches_scikit_learn_on_the_same_folds() -> None:
    p = make_prepared(n=90, n_folds=3)
    res = cross_validate(_factory(), {"C": 0.5}, p.X_train, p.y_train, p.folds, "classification", 2)
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import PredefinedSplit

    ref = cross_val_score(LogisticRegression(C=0.5, random_state=0), p.X_train, p.y_train,
                          cv=PredefinedSplit(p.folds), scoring="accuracy")
    assert res.values("accuracy") == pytest.approx(ref)
    assert res.mean("accuracy") == pytest.approx(ref.mean())
    assert res.std("accuracy") == pytest.approx(ref.std())
    assert {"mean_roc_auc", "std_log_loss", "mean_f1_macro"} <= set(res.summary())
    assert [f.fold for f in res.folds] == [0, 1, 2]


def test_parallel_folds_give_the_same_scores() -> None:
    p = make_prepared(n=90, n_folds=3)
    serial = cross_validate(_factory(), {"C": 1.0}, p.X_train, p.y_train, p.folds, "classification", 2, n_jobs=1)
    threads = cross_validate(_factory(), {"C": 1.0}, p.X_train, p.y_train, p.folds, "classification", 2, n_jobs=3)
    assert threads.values("log_loss") == pytest.approx(serial.values("log_loss"))


def test_iter_cv_yields_fold_by_fold_and_can_stop_early() -> None:
    p = make_prepared(n=90, n_folds=3)
    it = iter_cv(_factory(), {"C": 1.0}, p.X_train, p.y_train, p.folds, "classification", 2)
    first = next(it)
    assert first.fold == 0 and first.n_val + first.n_train == len(p.y_train)
    it.close()  # what a stopped trial does


def test_regression_cv_reports_regression_metrics() -> None:
    p = make_prepared(n=90, task="regression", n_folds=3)
    f = make_factory("sklearn", "sklearn.linear_model.Ridge", "regression", {}, ["alpha"], 0)
    res = cross_validate(f, {"alpha": 1.0}, p.X_train, p.y_train, p.folds, "regression")
    assert set(res.folds[0].metrics) == {"r2", "rmse", "mae"}
    assert res.mean("r2") > 0.8


def test_bad_folds_are_explained() -> None:
    with pytest.raises(TuneError, match="at least 2 folds"):
        fold_indices(np.zeros(5, dtype=int))
    with pytest.raises(TuneError, match="fold 1 of 3 is empty"):
        fold_indices(np.array([0, 0, 2, 2]))


def test_probabilities_cover_classes_missing_from_a_fold() -> None:
    class Est:
        classes_ = np.array([0, 2])

    full = expand_proba(np.array([[0.3, 0.7]]), Est(), 3)
    assert full.tolist() == [[0.3, 0.0, 0.7]]


def test_estimator_error_propagates_from_cv() -> None:
    p = make_prepared(n=60, n_folds=2)
    with pytest.raises(ValueError, match="C"):
        cross_validate(_factory(), {"C": -1.0}, p.X_train, p.y_train, p.folds, "classification", 2)


def test_a_model_missing_classes_predicts_the_labels_it_learned() -> None:
    """Classes 1 and 3 of 4 have no training row: predict_proba has 2 columns, for class indices 0 and 2.
    Read as columns 0 and 1 of the label list, every prediction was a wrong label (accuracy 0)."""
    from sklearn.linear_model import LogisticRegression

    from mlops_ray.data.features import FeaturePipeline, NumericFeature
    from mlops_ray.tune.fitted import FittedModel

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 1))
    y = np.where(X[:, 0] > 0, 2, 0)  # indices 0 and 2 only
    features = FeaturePipeline(numeric=[NumericFeature("x", fill=None, transform="none")], categorical=[],
                               target="y", task="classification", classes=["a", "b", "c", "d"])
    model = FittedModel(features, LogisticRegression().fit(X, y))
    frame = __import__("pandas").DataFrame({"x": [-2.0, 2.0]})
    assert list(model.predict(frame)) == ["a", "c"]
    proba = model.predict_proba(frame)
    assert proba.shape == (2, 4) and proba[:, [1, 3]].sum() == 0
