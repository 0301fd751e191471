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
    # The torch family is named (with data.task auto the regressor was named for a classification set).
    for task in ("classification", "auto"):
        with pytest.raises(SearchSpaceError, match=r"tune\.search_space\.hidden: the torch_mlp model has no "
                                                   r"parameter 'hidden'; it accepts .*width"):
            make_factory("torch_mlp", None, task, {}, ["hidden"], 0)
    # A fixed value out of range fails every trial: refused at once, with the range.
    with pytest.raises(SearchSpaceError, match=r"tune\.model\.params: TorchMLP parameter epochs=-3 is out of range "
                                               r"\(must be >= 1\)"):
        make_factory("torch_mlp", None, "auto", {"epochs": -3}, [], 0)
    # An estimator named beside kind torch_mlp would be ignored: refused when the config loads.
    from mlops_ray.config import parse_config
    from mlops_ray.exceptions import ConfigError

    base = {"name": "t", "data": {"source": {"bundled": "iris"}}}
    with pytest.raises(ConfigError, match=r"estimator 'sklearn\.svm\.SVC' is set but kind is torch_mlp"):
        parse_config({**base, "tune": {"model": {"kind": "torch_mlp", "estimator": "sklearn.svm.SVC"}}})
    assert parse_config({**base, "tune": {"model": {"kind": "torch_mlp"}}}).tune.model.estimator is None


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
