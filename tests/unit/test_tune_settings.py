"""Search settings decided without Ray: trial counts, experiment naming, what the parent run records."""

from __future__ import annotations

from mlops_ray.config import parse_config
from mlops_ray.tune.estimators import make_factory
from mlops_ray.tune.metrics import resolve_metric
from mlops_ray.tune.search import experiment_name, num_samples, search_settings
from mlops_ray.tune.spaces import parse_space
from mlops_ray.tune.trainable import max_iterations, metric_key
from tests.tune_helpers import make_prepared, tune_config


def test_grid_runs_once_unless_num_samples_is_set() -> None:
    space = {"C": {"grid": [1, 2, 3]}}
    assert num_samples(parse_config(tune_config(search="grid", search_space=space))) == 1
    assert num_samples(parse_config(tune_config(search="grid", num_samples=2, search_space=space))) == 2
    assert num_samples(parse_config(tune_config(search="random", search_space=space))) == 10


def test_experiment_name_follows_tune_settings_seed_and_data() -> None:
    p = make_prepared(n=60, n_folds=2)
    a = parse_config(tune_config(search="random", num_samples=2))
    b = parse_config(tune_config(search="random", num_samples=3))
    assert experiment_name(a, p) == experiment_name(parse_config(tune_config(search="random", num_samples=2)), p)
    assert experiment_name(a, p) != experiment_name(b, p)
    assert experiment_name(a, p) != experiment_name(a, make_prepared(n=60, n_folds=2, seed=1))
    assert experiment_name(a, p).startswith("tunetest-")
    # Other folds or features over the same rows: another search, never resumed from this one's trials.
    folds3 = parse_config({**tune_config(search="random", num_samples=2),
                           "data": {"source": {"bundled": "iris"}, "split": {"folds": 3}}})
    raw = parse_config({**tune_config(search="random", num_samples=2),
                        "data": {"source": {"bundled": "iris"}, "features": {"numeric": "none"}}})
    moved = parse_config({**tune_config(search="random", num_samples=2), "data": {"source": {"path": "/x/*.csv"}}})
    assert len({experiment_name(c, p) for c in (a, folds3, raw)}) == 3
    assert experiment_name(moved, p) == experiment_name(a, p)  # the same rows read from elsewhere


def test_search_settings_record_what_the_search_did() -> None:
    cfg = parse_config(tune_config(model={"estimator": "sklearn.linear_model.LogisticRegression",
                                          "params": {"max_iter": 50}},
                                   search="grid", scheduler="asha", search_space={"C": {"grid": [0.1, 1.0]}}))
    domains = parse_space(cfg.tune.search_space)
    factory = make_factory("sklearn", cfg.tune.model.estimator, "classification", {"max_iter": 50}, ["C"], 0)
    s = search_settings(cfg, resolve_metric("auto", "classification"), factory, domains, 3)
    assert s["n_trials"] == 2 and s["metric"] == "accuracy" and s["mode"] == "max"
    assert s["search_space"] == {"C": "grid[0.1, 1.0]"} and s["asha"]["reduction_factor"] == 2.0
    assert s["estimator"].endswith("LogisticRegression") and s["fixed_params"] == {"max_iter": 50}


def test_iterations_per_trial_for_asha() -> None:
    assert max_iterations("sklearn", 5, {}, {}) == 5
    assert max_iterations("torch_mlp", 3, {"epochs": 4}, {}) == 12
    assert max_iterations("torch_mlp", 3, {}, {"epochs": 2}) == 6
    assert metric_key("roc_auc") == "cv_roc_auc"


def test_asha_with_zero_epochs_names_the_field() -> None:
    import pytest

    from mlops_ray.exceptions import TuneError
    from mlops_ray.tune.checks import asha_max_t

    assert asha_max_t("torch_mlp", 3, parse_space({"epochs": {"choice": [2, 5]}}), {}) == 15
    with pytest.raises(TuneError, match=r"tune\.search_space\.epochs: .*at least 1 epoch, got 0"):
        asha_max_t("torch_mlp", 3, parse_space({"epochs": {"choice": [0]}}), {})
    with pytest.raises(TuneError, match=r"tune\.model\.params\.epochs"):
        asha_max_t("torch_mlp", 3, [], {"epochs": 0})


def test_settings_that_would_fail_every_trial_are_refused_before_the_search() -> None:
    import pytest

    from mlops_ray.exceptions import TuneError
    from mlops_ray.tune.checks import check_before_trials

    def check(estimator: str, metric: str, n_folds: int = 3, **tune: object) -> None:
        cfg = parse_config(tune_config(model={"estimator": estimator}, metric=metric,
                                       search_space={"C": {"grid": [0.5, 1.0]}}, **tune))
        domains = parse_space(cfg.tune.search_space)
        factory = make_factory("sklearn", estimator, "classification", {}, [d.name for d in domains], 0)
        check_before_trials(cfg, resolve_metric(metric, "classification"), factory, domains, n_folds)

    with pytest.raises(TuneError, match=r"'roc_auc' needs class probabilities, which sklearn\.svm\.SVC does not"):
        check("sklearn.svm.SVC", "roc_auc")  # every trial would have scored nothing
    check("sklearn.svm.SVC", "accuracy")
    check("sklearn.linear_model.LogisticRegression", "roc_auc")
    with pytest.raises(TuneError, match=r"grace_period 5 is more than the 3 results .* at most 3"):
        check("sklearn.linear_model.LogisticRegression", "accuracy", scheduler="asha", asha={"grace_period": 5})


def test_checks_that_need_no_data_run_before_the_data_stage() -> None:
    """These failed only after the data stage had rewritten its outputs (or after the whole search)."""
    import pytest

    from mlops_ray.exceptions import RegistryError, TuneError
    from mlops_ray.registry.gate import check_gate_spec
    from mlops_ray.tune.checks import check_config

    def cfg(task: str = "classification", folds: int = 3, **tune: object):
        d = tune_config(**{"search": "random", "num_samples": 2, "search_space": {"C": {"choice": [1.0, 2.0]}},
                           "model": {"kind": "sklearn", "estimator": "sklearn.svm.SVC"}, **tune})
        d["data"].update(task=task, split={"folds": folds})
        return parse_config(d)

    with pytest.raises(TuneError, match="grace_period 4 is more than the 3 results"):
        check_config(cfg(scheduler="asha", asha={"grace_period": 4}))
    with pytest.raises(TuneError, match="roc_auc' needs class probabilities"):
        check_config(cfg(metric="roc_auc"))
    check_config(cfg(task="auto", metric="roc_auc"))  # the task (so the metric) is known only after the data
    with pytest.raises(RegistryError, match=r"\['r2'\] are not classification metrics"):
        check_gate_spec({"r2": 0.9}, "classification")
    check_gate_spec({"r2": 0.9}, "auto")
