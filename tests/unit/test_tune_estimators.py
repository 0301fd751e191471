"""Estimators by import path: resolution, parameter checks before any trial, seeding."""

from __future__ import annotations

import pytest

from mlops_ray.exceptions import SearchSpaceError, TuneError
from mlops_ray.tune.estimators import import_estimator, make_factory


def test_path_that_does_not_import_names_the_field() -> None:
    with pytest.raises(TuneError, match=r"tune\.model\.estimator 'sklearn\.ensembel\.RandomForestClassifier': "
                                        r"module 'sklearn\.ensembel' does not import"):
        import_estimator("sklearn.ensembel.RandomForestClassifier")
    with pytest.raises(TuneError, match="has no attribute 'RandomForest'"):
        import_estimator("sklearn.ensemble.RandomForest")
    with pytest.raises(TuneError, match="is not an import path"):
        import_estimator("RandomForestClassifier")
    with pytest.raises(TuneError, match="not a scikit-learn style estimator"):
        import_estimator("os.path.join")


def test_unknown_parameter_is_rejected_before_trials_naming_the_field() -> None:
    with pytest.raises(SearchSpaceError, match=r"tune\.search_space\.n_estimator: .*RandomForestClassifier has no "
                                               r"parameter 'n_estimator'; it accepts .*n_estimators"):
        make_factory("sklearn", "sklearn.ensemble.RandomForestClassifier", "classification", {}, ["n_estimator"], 0)
    with pytest.raises(SearchSpaceError, match=r"tune\.model\.params\.alpha"):
        make_factory("sklearn", "sklearn.linear_model.LogisticRegression", "classification", {"alpha": 1}, [], 0)
    with pytest.raises(SearchSpaceError, match=r"tune\.search_space\.C is also fixed"):
        make_factory("sklearn", "sklearn.linear_model.LogisticRegression", "classification", {"C": 1}, ["C"], 0)
    with pytest.raises(SearchSpaceError, match=r"tune\.search_space\.hidden: .*TorchMLPClassifier"):
        make_factory("torch_mlp", None, "classification", {}, ["hidden"], 0)


def test_task_mismatch_is_explained() -> None:
    with pytest.raises(TuneError, match="is a classifier but the task is regression"):
        make_factory("sklearn", "sklearn.ensemble.RandomForestClassifier", "regression", {}, [], 0)


def test_factory_applies_fixed_params_then_config_then_seed() -> None:
    f = make_factory("sklearn", "sklearn.ensemble.RandomForestClassifier", "classification",
                     {"n_estimators": 7}, ["max_depth"], 42)
    est = f.build({"max_depth": 3})
    assert (est.n_estimators, est.max_depth, est.random_state) == (7, 3, 42)
    assert f.build({"max_depth": 3, "random_state": 5}).random_state == 5
    t = make_factory("torch_mlp", None, "regression", {}, ["lr", "epochs"], 3)
    assert type(t.build({})).__name__ == "TorchMLPRegressor" and t.build({}).random_state == 3
