"""Warm-start paths: growing one ensemble gives every size's separate-fit scores; who grows which fold."""

from __future__ import annotations

import warnings

import pytest

from mlops_ray.config import parse_config
from mlops_ray.tune.cv import fit_and_score, fold_indices
from mlops_ray.tune.estimators import make_factory
from mlops_ray.tune.fold_claims import FoldClaims
from mlops_ray.tune.spaces import parse_space
from mlops_ray.tune.warm_start import GROWING, WarmStartPath, plan_warm_start, score_path
from tests.tune_helpers import make_prepared, tune_config

RF = "sklearn.ensemble.RandomForestClassifier"
SIZES = {"n_estimators": {"grid": [3, 8, 20]}}


def _domains(space: dict) -> list:
    return parse_space(parse_config(tune_config(search_space=space)).tune.search_space)


def _factory(path: str, fixed: dict | None = None, space: dict | None = None, task: str = "classification",
             seed: int | None = 0):
    return make_factory("sklearn", path, task, fixed or {}, list(space or SIZES), seed)


@pytest.mark.parametrize("path", sorted(GROWING))
def test_growing_scores_every_size_exactly_as_separate_fits(path: str) -> None:
    task = "classification" if path.endswith("Classifier") else "regression"
    prepared = make_prepared(n=240, task=task, n_classes=3 if task == "classification" else 2, n_folds=3)
    fixed = {"subsample": 0.7} if "Gradient" in path else {"max_features": 0.5}
    factory = _factory(path, fixed, task=task)
    plan = plan_warm_start(factory, _domains(SIZES), "grid")
    assert plan == WarmStartPath("n_estimators", (3, 8, 20))
    n_classes = 3 if task == "classification" else 0
    for fold, (tr, va) in enumerate(fold_indices(prepared.folds)):
        grown = score_path(factory, {"n_estimators": 20}, plan, prepared.X_train, prepared.y_train, tr, va, task,
                           n_classes, fold)
        assert sorted(grown) == [3, 8, 20]
        for n, fs in grown.items():
            alone = fit_and_score(factory, {"n_estimators": n}, prepared.X_train, prepared.y_train, tr, va, task,
                                  n_classes, fold)
            assert fs.metrics == alone.metrics, (path, n, fold)  # bit for bit, every metric
            assert (fs.fold, fs.n_train, fs.n_val) == (fold, len(tr), len(va))
        assert grown[3].fit_s <= grown[8].fit_s <= grown[20].fit_s  # time spent growing up to that size


def test_balanced_subsample_grows_without_the_warm_start_warning() -> None:
    prepared = make_prepared(n=150, n_folds=3)
    factory = _factory(RF, {"class_weight": "balanced_subsample"})
    plan = plan_warm_start(factory, _domains(SIZES), "grid")
    assert plan is not None
    tr, va = fold_indices(prepared.folds)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grown = score_path(factory, {"n_estimators": 8}, plan, prepared.X_train, prepared.y_train, tr, va,
                           "classification", 2, 0)
    alone = fit_and_score(factory, {"n_estimators": 8}, prepared.X_train, prepared.y_train, tr, va,
                          "classification", 2, 0)
    assert grown[8].metrics == alone.metrics


@pytest.mark.parametrize(("why", "path", "fixed", "space", "search", "seed", "enabled"), [
    ("random search", RF, {}, SIZES, "random", 0, True),
    ("switched off", RF, {}, SIZES, "grid", 0, False),
    ("size not searched", RF, {"n_estimators": 10}, {"max_depth": {"grid": [2, 4]}}, "grid", 0, True),
    ("one size", RF, {}, {"n_estimators": {"grid": [5]}}, "grid", 0, True),
    ("not a growing class", "sklearn.ensemble.BaggingClassifier", {}, SIZES, "grid", 0, True),
    ("user grows the model", RF, {"warm_start": True}, SIZES, "grid", 0, True),
    ("user may grow it", RF, {}, {**SIZES, "warm_start": {"grid": [False, True]}}, "grid", 0, True),
    ("early stopping", "sklearn.ensemble.GradientBoostingClassifier", {"n_iter_no_change": 3}, SIZES, "grid", 0,
     True),
    ("no seed", RF, {}, SIZES, "grid", None, True),
    ("a searched seed may be None, no pipeline seed", RF, {}, {**SIZES, "random_state": {"grid": [0, None]}},
     "grid", None, True),
])
def test_no_path_where_it_would_not_equal_separate_fits_or_save_work(why: str, path: str, fixed: dict,
                                                                     space: dict, search: str, seed: int | None,
                                                                     enabled: bool) -> None:
    factory = _factory(path, fixed, space, seed=seed)
    assert plan_warm_start(factory, _domains(space), search, enabled) is None, why


def test_path_needs_no_pipeline_seed_when_random_state_is_fixed_and_groups_ignore_the_size() -> None:
    space = {"n_estimators": {"grid": [50, 10, 10, 25]}, "max_depth": {"grid": [3, None]}}
    factory = _factory(RF, {"random_state": 7}, space, seed=None)
    plan = plan_warm_start(factory, _domains(space), "grid")
    assert plan == WarmStartPath("n_estimators", (10, 25, 50))
    assert plan.describe() == "n_estimators [10, 25, 50]"
    a = plan.group(factory.params_for({"n_estimators": 10, "max_depth": 3}))
    assert a == plan.group(factory.params_for({"n_estimators": 50, "max_depth": 3}))
    assert a != plan.group(factory.params_for({"n_estimators": 10, "max_depth": None}))


@pytest.mark.parametrize(("fixed", "space"), [
    ({"warm_start": False}, SIZES),  # the default, written out
    ({"n_iter_no_change": None}, SIZES),
    ({}, {**SIZES, "random_state": {"grid": [3, None]}}),  # None is the pipeline seed
    ({"random_state": 5}, SIZES),
])
def test_settings_that_keep_separate_fits_equal_keep_the_path(fixed: dict, space: dict) -> None:
    path = "sklearn.ensemble.GradientBoostingClassifier" if "n_iter_no_change" in fixed else RF
    assert plan_warm_start(_factory(path, fixed, space), _domains(space), "grid") is not None


def test_a_torch_search_has_no_path() -> None:
    factory = make_factory("torch_mlp", None, "classification", {}, ["epochs"], 0)
    assert plan_warm_start(factory, _domains({"epochs": {"grid": [1, 2]}}), "grid") is None


# ---------------------------------------------------------------------------------------- claims


def test_claims_hand_each_fold_to_one_grower_and_its_scores_to_everyone_else() -> None:
    c = FoldClaims()
    assert c.take("g", [0, 1, 2], "t1", 0, now=0.0) == ("grow", 0, None)
    assert c.take("g", [0, 1, 2], "t2", 0, now=0.1) == ("grow", 1, None)  # the next fold no one grows
    assert c.take("g", [0, 1], "t2", 1, now=0.2) == ("wait", None, None)  # both being grown
    assert c.take("other", [0], "t3", 0, now=0.2) == ("grow", 0, None)  # groups are independent
    c.put("g", 0, {"s": 1}, now=2.0)
    assert c.take("g", [0, 1], "t2", 1, now=2.1) == ("done", 0, {"s": 1})  # a finished fold comes first
    assert c.slowest_s == 2.0


def test_claims_of_a_dead_trial_are_given_back_and_an_untouched_one_is_granted_again() -> None:
    c = FoldClaims(stale_after_s=60.0)
    c.take("g", [0], "t1", 0, now=0.0)
    c.take("g", [1], "t1", 1, now=0.0)
    assert c.take("g", [0, 1], "t2", 0, now=50.0)[0] == "wait"
    assert c.release_trial("t1") == 2
    assert c.take("g", [0, 1], "t2", 0, now=50.0) == ("grow", 0, None)
    # a live grower touches its claim: however slow its fold, nobody grows it a second time
    for t in (100.0, 150.0, 200.0):
        c.touch("g", [0], "t2", 0, now=t)
        assert c.take("g", [0], "t3", 0, now=t + 55.0)[0] == "wait"
    c.touch("g", [0], "t3", 0, now=250.0)  # another worker's touch keeps nothing alive
    # its process died (or the claim went to a waiter that had died): untouched for 60 s, granted again
    assert c.take("g", [0], "t3", 0, now=261.0) == ("grow", 0, None)
    c.put("g", 0, {}, now=300.0)
    assert c.slowest_s == 39.0 and c.take("g", [0], "t2", 0, now=301.0) == ("done", 0, {})


def test_only_the_claiming_worker_drops_its_claim() -> None:
    c = FoldClaims()
    c.take("g", [0], "t1", 0, now=0.0)
    assert not c.drop("g", 0, "t1", 1) and not c.drop("g", 0, "t2", 0)
    assert c.take("g", [0], "t2", 0, now=1.0)[0] == "wait"
    assert c.drop("g", 0, "t1", 0)
    assert c.take("g", [0], "t2", 0, now=1.0) == ("grow", 0, None)
