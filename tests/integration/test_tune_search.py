"""The tuning stage end to end on the session's local Ray, with a real MLflow store (tiny data, few trials)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from mlflow import MlflowClient

from mlops_ray.config import parse_config
from mlops_ray.exceptions import TuneError
from mlops_ray.runtime import Runtime
from mlops_ray.tune import format_result, run_search
from tests.tune_helpers import make_prepared, tune_config

LOGREG = {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 200}}


def _children(runtime: Runtime, result: Any) -> list[Any]:
    client = MlflowClient(runtime.tracking_uri)
    return client.search_runs([result.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'")


def test_search_end_to_end_with_mlflow_parent_and_children(ray_session: str, runtime: Runtime) -> None:
    cfg = parse_config(tune_config(model=LOGREG, search="random", num_samples=3,
                                   search_space={"C": {"loguniform": [0.01, 10.0]}}))
    prepared = make_prepared(n=180, n_folds=3)
    result = run_search(cfg, runtime, prepared)

    assert len(result.trials) == 3 and result.n_completed == 3
    assert result.metric == "accuracy" and result.mode == "max"
    best = max(result.trials, key=lambda t: t.cv_mean)
    assert result.best_config == best.config and result.cv_mean == pytest.approx(best.cv_mean)
    assert all(len(t.fold_scores) == 3 and t.cv_mean == pytest.approx(np.mean(t.fold_scores)) for t in result.trials)
    # The refit model is one object with its features: it predicts raw holdout rows.
    labels = result.model.predict(prepared.holdout_frame)
    assert set(labels) <= {"c0", "c1"}
    assert result.holdout_metrics["accuracy"] == pytest.approx(
        np.mean(labels == np.array(["c0", "c1"])[prepared.y_holdout]))
    assert result.model.params["C"] == result.best_config["C"] and result.model.params["random_state"] == 0
    assert result.refit_on == "driver"  # a one-node local Ray: refit in this process, as GridSearchCV does
    assert "best (accuracy, max)" in format_result(result)

    client = MlflowClient(runtime.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlops_ray.data_fingerprint"] == prepared.fingerprint
    assert parent.data.tags["mlops_ray.config_hash"] == cfg.config_hash()
    assert parent.data.params["search.searcher"] == "random"
    assert float(parent.data.params["best.C"]) == pytest.approx(result.best_config["C"])
    assert parent.data.metrics["holdout_accuracy"] == pytest.approx(result.holdout_metrics["accuracy"])
    assert parent.data.metrics["best_cv_mean"] == pytest.approx(result.cv_mean)
    assert parent.data.tags["mlops_ray.refit_on"] == "driver" and parent.data.metrics["refit_seconds"] > 0
    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id, "plots")}
    assert artifacts == {"plots/score_per_trial.png", "plots/score_vs_C.png"}

    children = _children(runtime, result)
    assert len(children) == 3
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["mlops_ray.status"] == "completed"
        assert "C" in child.data.params
        history = client.get_metric_history(child.info.run_id, "fold_accuracy")
        assert sorted(m.step for m in history) == [0, 1, 2]
        assert {"mean_accuracy", "std_accuracy", "cv_accuracy", "fold_roc_auc"} <= set(child.data.metrics)
    by_run = {c.info.run_id: c for c in children}
    for t in result.trials:
        assert by_run[t.run_id].data.metrics["mean_accuracy"] == pytest.approx(t.cv_mean)


def test_same_seed_same_search(ray_session: str, runtime: Runtime) -> None:
    spec = tune_config(model={"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 5}},
                       search="random", num_samples=2, search_space={"max_depth": {"randint": [1, 6]},
                                                                     "max_features": {"uniform": [0.3, 1.0]}})
    prepared = make_prepared(n=120, n_folds=3)
    a = run_search(parse_config(spec), runtime, prepared)
    b = run_search(parse_config(spec), runtime, prepared)
    assert [t.config for t in a.trials] == [t.config for t in b.trials]
    assert [t.fold_scores for t in a.trials] == [t.fold_scores for t in b.trials]
    assert a.holdout_metrics == b.holdout_metrics


RF_GRID = {"n_estimators": {"grid": [4, 10, 25]}, "max_depth": {"grid": [3, None]}}


@pytest.mark.parametrize(("cpu", "scheduler"), [(1, "fifo"), (2, "fifo"), (1, "asha")])
def test_grid_over_n_estimators_grows_each_fold_once_with_the_separate_fits_scores(
        ray_session: str, runtime: Runtime, cpu: int, scheduler: str) -> None:
    from mlops_ray.tune import cross_validate
    from mlops_ray.tune.estimators import make_factory

    model = {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_jobs": 1, "max_features": 0.5}}
    cfg = parse_config(tune_config(model=model, search="grid", search_space=RF_GRID, scheduler=scheduler,
                                   resources={"cpu": cpu}, asha={"grace_period": 1, "reduction_factor": 2}))
    prepared = make_prepared(n=240, n_folds=3)
    result = run_search(cfg, runtime, prepared)

    assert result.search_settings["warm_start_path"] == "n_estimators [4, 10, 25]"
    factory = make_factory("sklearn", model["estimator"], "classification", model["params"], list(RF_GRID), 0)
    for t in result.trials:
        alone = cross_validate(factory, t.config, prepared.X_train, prepared.y_train, prepared.folds,
                               "classification", 2).values("accuracy").tolist()
        if t.status == "completed":
            assert t.fold_scores == alone, t.config  # exactly the scores of fitting each size on its own
        else:
            assert t.status == "stopped_early" and all(v in alone for v in t.fold_scores), t
    if scheduler == "fifo":
        assert result.n_completed == 6
        # 2 groups (max_depth) x 3 folds grown once each; the other 12 trial folds read a grown path
        assert sum(t.folds_reused for t in result.trials) == 6 * 3 - 2 * 3
    client = MlflowClient(runtime.tracking_uri)
    assert client.get_run(result.parent_run_id).data.params["search.warm_start_path"] == "n_estimators [4, 10, 25]"
    assert "folds_reused" in client.get_run(result.trials[0].run_id).data.metrics


def test_a_path_whose_fit_raises_fails_every_trial_of_its_group_without_waiting(ray_session: str,
                                                                               runtime: Runtime) -> None:
    model = {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"max_depth": -1}}
    cfg = parse_config(tune_config(model=model, search="grid", search_space={"n_estimators": {"grid": [3, 6]}}))
    t0 = time.monotonic()
    with pytest.raises(TuneError, match=r"no trial of 2 scored all 3 folds; errors: .*max_depth"):
        run_search(cfg, runtime, make_prepared(n=120, n_folds=3))
    assert time.monotonic() - t0 < 120  # the failed grower gave its claim back: nobody waited for it


def test_asha_stops_bad_configs_after_their_first_folds(ray_session: str, runtime: Runtime) -> None:
    # One trial at a time so the rungs fill in a known order: the good config first (a grid runs the last
    # listed value first), then hopeless ones.
    cfg = parse_config(tune_config(model=LOGREG, search="grid", scheduler="asha", max_concurrent=1,
                                   asha={"grace_period": 1, "reduction_factor": 2},
                                   search_space={"C": {"grid": [3e-6, 2e-6, 1e-6, 1.0]}}))
    result = run_search(cfg, runtime, make_prepared(n=180, n_folds=3))
    stopped = [t for t in result.trials if t.status == "stopped_early"]
    assert len(stopped) >= 2 and all(t.folds_done < 3 and t.config["C"] < 1e-5 for t in stopped)
    assert result.best_config["C"] == 1.0 and result.trials[0].status == "completed"
    tags = {c.data.tags["mlops_ray.trial_id"]: c.data.tags["mlops_ray.status"] for c in _children(runtime, result)}
    assert all(tags[t.trial_id] == "stopped_early" for t in stopped)


def test_time_budget_cuts_are_not_called_stopped_early(ray_session: str, runtime: Runtime) -> None:
    """Tune ends a trial the budget cuts as it ends one ASHA stops; only ASHA's are "stopped_early"."""
    cfg = parse_config(tune_config(model={"estimator": "tests.tune_helpers.SlowClassifier",
                                          "params": {"sleep_s": 1.5}},
                                   search="grid", max_concurrent=1, time_budget_s=8,
                                   search_space={"C": {"grid": [0.5, 1.0, 2.0, 4.0]}}))
    result = run_search(cfg, runtime, make_prepared(n=120, n_folds=3))
    statuses = [t.status for t in result.trials]
    assert "time_budget" in statuses and "stopped_early" not in statuses, statuses
    cut = [t for t in result.trials if t.status == "time_budget"]
    assert all(t.folds_done < 3 for t in cut)  # some may not have finished a fold (a slow start under load)
    tags = {c.data.tags["mlops_ray.trial_id"]: c.data.tags["mlops_ray.status"] for c in _children(runtime, result)}
    assert all(tags[t.trial_id] == "time_budget" for t in cut if t.trial_id in tags)
    assert any(t.trial_id in tags for t in cut)


def test_trial_that_raises_is_recorded_and_the_rest_still_win(ray_session: str, runtime: Runtime) -> None:
    cfg = parse_config(tune_config(model=LOGREG, search="grid", search_space={"C": {"grid": [-1.0, 1.0]}}))
    result = run_search(cfg, runtime, make_prepared(n=120, n_folds=3))
    failed = [t for t in result.trials if t.status == "error"]
    assert len(failed) == 1 and failed[0].config["C"] == -1.0 and "C" in failed[0].error
    assert failed[0].num_failures == 0  # an estimator error is deterministic: not retried
    assert result.best_config == {"C": 1.0}
    child = MlflowClient(runtime.tracking_uri).get_run(failed[0].run_id)
    assert child.info.status == "FAILED" and "C" in child.data.tags["mlops_ray.error"]


def test_all_trials_failing_is_a_clear_error(ray_session: str, runtime: Runtime) -> None:
    cfg = parse_config(tune_config(model=LOGREG, search="grid", search_space={"C": {"grid": [-1.0, -2.0]}}))
    with pytest.raises(TuneError, match=r"no trial of 2 scored all 3 folds; errors: .*InvalidParameterError"):
        run_search(cfg, runtime, make_prepared(n=120, n_folds=3))
    parent = MlflowClient(runtime.tracking_uri).search_runs(
        [MlflowClient(runtime.tracking_uri).get_experiment_by_name("tunetest").experiment_id],
        filter_string="tags.`mlops_ray.stage` = 'tune'")[0]
    assert parent.info.status == "FAILED" and "no trial" in parent.data.tags["mlops_ray.error"]


def test_torch_mlp_tiny_search_on_cpu_reports_per_epoch(ray_session: str, runtime: Runtime) -> None:
    cfg = parse_config(tune_config(model={"kind": "torch_mlp", "estimator": None, "params": {"batch_size": 32}},
                                   search="random", num_samples=2,
                                   search_space={"epochs": {"grid": [3]}, "width": {"choice": [8, 16]},
                                                 "lr": {"loguniform": [1e-3, 3e-2]}}))
    prepared = make_prepared(n=150, n_folds=3)
    result = run_search(cfg, runtime, prepared)
    assert result.model.kind == "torch_mlp" and type(result.model.estimator).__name__ == "TorchMLPClassifier"
    assert result.model.estimator.device_ == "cpu" and {t.device for t in result.trials} == {"cpu"}
    assert result.refit_on == "ray_task"  # torch is refit in a worker, where Ray hides the GPUs it did not assign
    assert result.n_completed == 2 and all(t.folds_done == 3 for t in result.trials)
    client = MlflowClient(runtime.tracking_uri)
    child = client.get_run(result.trials[0].run_id)
    epochs = client.get_metric_history(child.info.run_id, "epoch_accuracy")
    assert len(epochs) == 3 * 2  # epochs 0 and 1 of each fold; the last epoch is the fold's own report
    assert sorted(m.step for m in client.get_metric_history(child.info.run_id, "fold_accuracy")) == [0, 1, 2]
    assert set(result.model.predict(prepared.holdout_frame)) <= {"c0", "c1"}


def test_regression_search_optuna(ray_session: str, runtime: Runtime) -> None:
    cfg = parse_config(tune_config(model={"estimator": "sklearn.linear_model.Ridge"}, search="optuna",
                                   num_samples=3, metric="rmse", max_concurrent=2,
                                   search_space={"alpha": {"loguniform": [1e-3, 100.0]},
                                                 "fit_intercept": {"choice": [True, False]}}))
    result = run_search(cfg, runtime, make_prepared(n=150, task="regression", n_folds=3))
    assert (result.metric, result.mode) == ("rmse", "min")
    assert result.cv_mean == min(t.cv_mean for t in result.trials)
    assert set(result.holdout_metrics) == {"r2", "rmse", "mae"}
    assert len(result.trials) == 3


def test_trial_larger_than_the_cluster(ray_session: str, runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import ray

    from mlops_ray.tune.search import _check_resources

    cpus = ray.cluster_resources()["CPU"]
    cfg = parse_config(tune_config(model=LOGREG, search="random", num_samples=1, resources={"cpu": cpus + 1},
                                   search_space={"C": {"loguniform": [0.01, 10.0]}}))
    # A local Ray never grows: refused before any trial starts, naming the setting.
    with pytest.raises(TuneError, match=r"tune.resources asks .* lower tune.resources"):
        run_search(cfg, runtime, make_prepared(n=60, n_folds=3))
    # The pipeline says so before its data stage rewrites the outputs of the last run.
    from mlops_ray.pipeline import run_pipeline

    with pytest.raises(TuneError, match=r"tune.resources asks"):
        run_pipeline(cfg, runtime, steps=["data", "tune"], log=lambda _: None)
    assert not (runtime.data_dir / cfg.name).exists()
    # A cluster we connected to may autoscale: a warning, and Tune waits for the node.
    with caplog.at_level(logging.WARNING, logger="mlops_ray.tune.search"):
        _check_resources(cpus + 1, 0, can_grow=True)
    assert "wait until the autoscaler adds a node" in caplog.text
    _check_resources(1, 0, can_grow=False)  # fits: nothing to say


@pytest.mark.gpu
def test_torch_trial_trains_on_cuda_when_given_a_fraction_of_a_gpu(ray_session: str, runtime: Runtime) -> None:
    import ray
    import torch

    if ray.cluster_resources().get("GPU", 0) < 1 or not torch.cuda.is_available():
        pytest.skip("needs a GPU visible to Ray and a CUDA build of torch")
    cfg = parse_config(tune_config(model={"kind": "torch_mlp", "estimator": None, "params": {"epochs": 2}},
                                   search="grid", resources={"cpu": 1, "gpu": 0.5},
                                   search_space={"width": {"grid": [8, 16]}}))
    result = run_search(cfg, runtime, make_prepared(n=150, n_folds=3))
    assert {t.device for t in result.trials} == {"cuda"}
