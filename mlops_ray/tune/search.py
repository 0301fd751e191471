"""The tuning stage's Ray edge: build the Tuner, run or resume it, refit the winner, score the holdout.

Everything decided here comes from ``cfg.tune``; the maths lives in the pure modules (spaces, metrics,
estimators, cv) and MLflow writing in ``tracking``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_ray.exceptions import SearchInterrupted, TuneError
from mlops_ray.runtime import Runtime, connect_ray, ensure_experiment, env
from mlops_ray.tune.checks import asha_max_t, check_before_trials
from mlops_ray.tune.cv import predict_for_scoring
from mlops_ray.tune.estimators import EstimatorFactory, make_factory
from mlops_ray.tune.fitted import FittedModel, expand_proba
from mlops_ray.tune.interrupt import DISABLE_TUNE_SIGINT, interrupt_guard
from mlops_ray.tune.metrics import MetricSpec, resolve_metric, score_all
from mlops_ray.tune.refit import refit_best
from mlops_ray.tune.result import SearchResult, TrialSummary, pick_best
from mlops_ray.tune.spaces import ParamDomain, check_for_searcher, count_trials, describe, parse_space
from mlops_ray.tune.trainable import TrialData, TrialSpec, metric_key
from mlops_ray.tune.warm_start import WarmStartPath, plan_warm_start

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pathlib import Path

    from mlops_ray.config import PipelineConfig
    from mlops_ray.data.prepared import PreparedData

# Tune's per-trial overhead is mostly actor start-up, per-result logger files and placement-group churn.
# These settings (applied only while the search runs, and only where the user did not set them) bring it
# from ~1 s to a few tens of ms per trial: see benchmarks/BENCHMARKS.md.
TUNE_ENV_DEFAULTS = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no CSV/JSON/TensorBoard files per trial: MLflow has it all
    "TUNE_GLOBAL_CHECKPOINT_S": "2",  # experiment state saved at most every 2 s (what --resume restores)
    "TUNE_RESULT_BUFFER_LENGTH": "1",  # ASHA needs every fold's result at once
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "30",
}


@contextmanager
def _tune_env(max_pending: int) -> Iterator[None]:
    import os

    # Without the per-trial logger files, building the ResultGrid warns once per trial that it found no
    # result.json; the results themselves come from the trials' state, so that warning is noise here.
    quiet = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    wanted = {**TUNE_ENV_DEFAULTS, **DISABLE_TUNE_SIGINT, "TUNE_MAX_PENDING_TRIALS_PG": str(max_pending)}
    added = [k for k in wanted if env(k) is None]
    for k in added:
        os.environ[k] = wanted[k]
    try:
        yield
    finally:
        quiet.setLevel(level)
        for k in added:
            os.environ.pop(k, None)


def experiment_name(cfg: PipelineConfig, prepared: PreparedData) -> str:
    """One Tune experiment folder per (pipeline, tune settings + seed, data and how it was prepared): what
    --resume looks for. The fingerprint covers the rows; the folds and features come from data.split and
    data.features, so a change there is another search (its finished trials scored other folds)."""
    import hashlib
    import json

    data = cfg.data.model_dump(mode="json", exclude={"source"})
    key = json.dumps([cfg.config_hash("tune", "seed"), data], sort_keys=True)
    return f"{cfg.name}-{hashlib.sha256(key.encode()).hexdigest()[:10]}-{prepared.fingerprint[:10]}"


def num_samples(cfg: PipelineConfig) -> int:
    """Tune's ``num_samples``: for a grid, repeats of the whole grid, 1 unless the config sets it."""
    ts = cfg.tune
    if ts.search == "grid" and "num_samples" not in ts.model_fields_set:
        return 1
    return ts.num_samples


def _trial_dirname(trial: Any) -> str:
    return trial.trial_id


def _check_prepared(prepared: PreparedData) -> None:
    n = len(prepared.y_train)
    if prepared.X_train.shape[0] != n or len(prepared.folds) != n:
        raise TuneError(f"prepared data is inconsistent: X_train has {prepared.X_train.shape[0]} rows, y_train {n}, "
                        f"folds {len(prepared.folds)}; rerun the data stage")
    if n == 0:
        raise TuneError("the training split is empty; check the data stage's report")


def _check_resources(cpu: float, gpu: float, can_grow: bool) -> None:
    """Refuse a trial bigger than the whole cluster; on a cluster that may autoscale, only warn."""
    import ray

    total = ray.cluster_resources()
    if cpu <= total.get("CPU", 0) and gpu <= total.get("GPU", 0):
        return
    msg = (f"tune.resources asks {cpu} CPU / {gpu} GPU per trial but the Ray cluster has {total.get('CPU', 0):g} CPU / "
           f"{total.get('GPU', 0):g} GPU in all")
    if can_grow:  # an autoscaler (KubeRay, the cluster launcher) may add a node: Tune waits for it
        logger.warning("%s now; trials wait until the autoscaler adds a node that fits them (a cluster without "
                       "an autoscaler never will: then stop the search and lower tune.resources)", msg)
        return
    raise TuneError(f"{msg}; lower tune.resources or connect to a bigger cluster (--address)")


def check_resources(cfg: PipelineConfig, runtime: Runtime) -> None:
    """``tune.resources`` fits the connected Ray (a local Ray started here never grows; a cluster we connected
    to may have an autoscaler: then only a warning)."""
    _check_resources(cfg.tune.resources.cpu, cfg.tune.resources.gpu, can_grow=bool(runtime.ray_address))


def search_settings(cfg: PipelineConfig, metric: MetricSpec, factory: EstimatorFactory, domains: list[ParamDomain],
                    n_folds: int, path: WarmStartPath | None = None) -> dict[str, Any]:
    ts = cfg.tune
    return {
        "searcher": ts.search, "scheduler": ts.scheduler, "num_samples": num_samples(cfg),
        "n_trials": count_trials(domains, ts.search, num_samples(cfg)), "metric": metric.name, "mode": metric.mode,
        "estimator": factory.path, "kind": factory.kind, "fixed_params": dict(ts.model.params),
        "search_space": describe(domains), "n_folds": n_folds, "cpu_per_trial": ts.resources.cpu,
        "gpu_per_trial": ts.resources.gpu, "max_concurrent": ts.max_concurrent, "max_failures": ts.max_failures,
        "seed": cfg.seed, "time_budget_s": ts.time_budget_s,
        "asha": ts.asha.model_dump() if ts.scheduler == "asha" else None,
        "warm_start_path": path.describe() if path else "off",
    }


def _build_tune_config(cfg: PipelineConfig, metric: MetricSpec, domains: list[ParamDomain], kind: str,
                       n_folds: int, slots: int, exp_path: Path) -> Any:
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    from mlops_ray.tune.schedulers import STOPPED_FILE, RecordingASHA

    ts = cfg.tune
    key = metric_key(metric.name)
    if ts.search == "optuna":
        from optuna.samplers import TPESampler
        from ray.tune.search.optuna import OptunaSearch

        sampler = TPESampler(seed=cfg.seed, n_startup_trials=max(2, min(10, ts.num_samples // 3)))
        search_alg: Any = ConcurrencyLimiter(OptunaSearch(sampler=sampler, seed=cfg.seed),
                                             max_concurrent=ts.max_concurrent or max(1, slots))
    else:
        search_alg = BasicVariantGenerator(random_state=cfg.seed, max_concurrent=ts.max_concurrent)
    if ts.scheduler == "asha":
        scheduler: Any = RecordingASHA(record_to=str(exp_path / STOPPED_FILE), time_attr="training_iteration",
                                       max_t=asha_max_t(kind, n_folds, domains, ts.model.params),
                                       grace_period=ts.asha.grace_period, reduction_factor=ts.asha.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    return tune.TuneConfig(metric=key, mode=metric.mode, search_alg=search_alg, scheduler=scheduler,
                           num_samples=num_samples(cfg), reuse_actors=True,
                           time_budget_s=ts.time_budget_s, trial_dirname_creator=_trial_dirname)


def _cut_by_budget(grid: Any, budget_s: float | None, fit_s: float, exp_path: Path) -> set[str]:
    """Trials short of their last fold that ASHA did not stop, when the search ran into its time budget."""
    if budget_s is None or fit_s < budget_s:
        return set()
    from mlops_ray.tune.schedulers import asha_stopped

    by_asha = asha_stopped(exp_path)
    return {t.trial_id for t in grid._experiment_analysis.trials if t.trial_id not in by_asha}


def _summaries(grid: Any, state_runs: dict[str, str], metric: MetricSpec,
               cut_by_budget: set[str] | None = None) -> list[TrialSummary]:
    """``cut_by_budget``: the trials the time budget ended (else a trial short of its folds was stopped early)."""
    from mlops_ray.tune.tracking import trial_index, trial_status

    key = metric_key(metric.name)
    out = []
    for trial in grid._experiment_analysis.trials:  # Trial objects carry failures and the last result
        last = dict(trial.last_result or {})
        status = trial_status(last)
        if status == "stopped_early" and trial.trial_id in (cut_by_budget or ()):
            status = "time_budget"
        error = last.get("trial_error")
        if trial.status == "ERROR":
            status = "error"
            err = trial.get_error()
            error = error or (str(err).strip().splitlines()[-1] if err else "the trial's worker failed")
        mean = last.get(key) if status != "error" else None
        std = last.get(f"{key}_std") if status != "error" else None
        out.append(TrialSummary(
            trial_id=trial.trial_id, index=trial_index(trial.trial_id, trial.experiment_tag), config=dict(trial.config),
            status=status,
            folds_done=int(last.get("folds_done", 0)), fold_scores=list(last.get("fold_scores", [])),
            cv_mean=float(mean) if mean is not None else None, cv_std=float(std) if std is not None else None,
            metrics={k: float(v) for k, v in last.items() if k.startswith(("mean_", "std_"))
                     and isinstance(v, int | float) and math.isfinite(v)},
            error=error, num_failures=int(trial.num_failures), run_id=state_runs.get(trial.trial_id),
            seconds=last.get("elapsed_s"), device=str(last.get("device", "cpu")),
            folds_reused=int(last.get("folds_reused", 0))))
    return sorted(out, key=lambda t: t.index)


def run_search(cfg: PipelineConfig, runtime: Runtime, prepared: PreparedData, *, resume: bool = False) -> SearchResult:
    """Search ``cfg.tune``'s space by k-fold CV on Ray Tune, refit the best config, score it on the holdout.

    Logs a parent MLflow run (settings, best config, holdout metrics, plots) and one child run per trial.
    ``resume=True`` continues the interrupted search for the same config and data (finished trials are
    not rerun); it raises TuneError when there is none to resume.
    """
    import ray
    from mlflow import MlflowClient
    from ray import tune

    from mlops_ray.tune.fold_store import FoldStoreCallback, start_fold_store, stop_fold_store
    from mlops_ray.tune.tracking import (
        MlflowTrialCallback,
        TrackingState,
        finish_parent_run,
        log_search_artifacts,
        reconcile_children,
        start_parent_run,
    )

    t0 = time.perf_counter()
    ts = cfg.tune
    task = prepared.task
    metric = resolve_metric(ts.metric, task)
    domains = parse_space(ts.search_space)
    check_for_searcher(domains, ts.search)
    factory = make_factory(ts.model.kind, ts.model.estimator, task, ts.model.params, [d.name for d in domains],
                           cfg.seed)
    _check_prepared(prepared)
    n_folds = prepared.n_folds
    check_before_trials(cfg, metric, factory, domains, n_folds)
    path = plan_warm_start(factory, domains, ts.search, ts.warm_start_path)
    connect_ray(runtime)
    check_resources(cfg, runtime)

    name = experiment_name(cfg, prepared)
    runtime.tune_dir.mkdir(parents=True, exist_ok=True)
    exp_path = runtime.tune_dir / name
    state_path = runtime.tune_dir / f"{name}.mlflow.json"
    if resume:
        if not tune.Tuner.can_restore(str(exp_path)):
            raise TuneError(f"no interrupted search to resume at {exp_path} (same pipeline name, tune settings, seed "
                            "and data); run without --resume to start one")
    elif exp_path.exists() or state_path.exists():
        # An earlier search of the same config: keep it aside (its results are in MLflow), start afresh.
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for p in (exp_path, state_path):
            if p.exists():
                p.rename(p.with_name(f"{p.name}.prev-{stamp}"))

    settings = search_settings(cfg, metric, factory, domains, n_folds, path)
    experiment_id = ensure_experiment(runtime, cfg.experiment_name)
    client = MlflowClient(runtime.tracking_uri)
    state = TrackingState(state_path)
    parent_run_id = start_parent_run(client, experiment_id, state, cfg, prepared, settings, resume)

    try:
        n_classes = _n_classes(prepared)
        data = TrialData(X=np.ascontiguousarray(prepared.X_train, dtype=np.float64), y=np.asarray(prepared.y_train),
                         folds=np.asarray(prepared.folds), task=task, n_classes=n_classes)
        data_ref = ray.put(data)  # once: every trial and fold reads this same object
        spec = TrialSpec(factory=factory, metric=metric.name, mode=metric.mode, cpus=ts.resources.cpu,
                         worst=float(metric.worst), path=path)
        resources = {"cpu": ts.resources.cpu, "gpu": ts.resources.gpu}
        store = start_fold_store(name) if path else None
        trainable = tune.with_resources(tune.with_parameters(_cv_trial(), data=data_ref, spec=spec, store=store),
                                        resources)
        from mlops_ray.tune.spaces import to_tune

        param_space = to_tune(domains, ts.search, slowest=path.param if path else None)
        slots = max(1, int(ray.cluster_resources().get("CPU", 1) // ts.resources.cpu))
        with _tune_env(max_pending=slots + 1), interrupt_guard() as interrupted:
            if resume:
                tuner = tune.Tuner.restore(str(exp_path), trainable=trainable, resume_unfinished=True,
                                           restart_errored=True, param_space=param_space)
            else:
                callback = MlflowTrialCallback(runtime.tracking_uri, experiment_id, state, metric_key(metric.name),
                                               run_name_prefix=cfg.name)
                run_config = tune.RunConfig(
                    name=name, storage_path=str(runtime.tune_dir), verbose=0,
                    callbacks=[callback, FoldStoreCallback(name)] if path else [callback],
                    failure_config=tune.FailureConfig(max_failures=ts.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1, checkpoint_frequency=0),
                    log_to_file=False)
                tuner = tune.Tuner(trainable, param_space=param_space, run_config=run_config,
                                   tune_config=_build_tune_config(cfg, metric, domains, factory.kind, n_folds, slots,
                                                                  exp_path))
            t_fit = time.perf_counter()
            try:
                grid = tuner.fit()
            finally:
                if store is not None:
                    stop_fold_store(store)
            fit_s = time.perf_counter() - t_fit
        if interrupted.is_set():
            raise SearchInterrupted(
                f"the search was interrupted (Ctrl-C); Tune saved its state under {exp_path}. Nothing was "
                "registered: rerun the same command with --resume to continue (finished trials are not rerun)")
        state = TrackingState(state_path)
        cut = _cut_by_budget(grid, ts.time_budget_s, fit_s, exp_path)
        trials = _summaries(grid, state.runs, metric, cut)
        if resume:  # writes queued by the killed driver are lost: close or create those child runs now
            reconcile_children(client, experiment_id, state, trials, cfg.name, metric.name)
            trials = _summaries(grid, state.runs, metric, cut)
        for t in trials:  # the callback wrote "stopped_early" when each ended: say what ended them
            if t.status == "time_budget" and t.run_id:
                client.set_tag(t.run_id, "mlops_ray.status", t.status)
        best = pick_best(trials, metric.mode)
        if best is None:
            errors = sorted({t.error for t in trials if t.error})
            raise TuneError(f"no trial of {len(trials)} scored all {n_folds} folds; errors: "
                            f"{'; '.join(errors[:3]) or 'none (time budget too short?)'}. Check the search space "
                            "and the estimator, or raise tune.time_budget_s")
        # Plots and the trial table go to MLflow while the winner is refit (they need only the trials).
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tune-artifacts")
        artifacts = pool.submit(log_search_artifacts, client, parent_run_id, trials, settings, metric.name,
                                best.config)
        pool.shutdown(wait=False)
        t_refit = time.perf_counter()
        estimator, refit_on = refit_best(factory, best.config, data, data_ref, ts.resources.cpu, ts.resources.gpu)
        refit_s = time.perf_counter() - t_refit
        artifacts.result()
        fitted = FittedModel(features=prepared.features, estimator=estimator, kind=ts.model.kind,  # type: ignore[arg-type]
                             params=factory.params_for(best.config))
        holdout = evaluate_holdout(fitted, prepared)
        result = SearchResult(
            model=fitted, best_config=dict(best.config), best_trial_id=best.trial_id, cv_mean=float(best.cv_mean),  # type: ignore[arg-type]
            cv_std=float(best.cv_std or 0.0), metric=metric.name, mode=metric.mode, holdout_metrics=holdout,
            parent_run_id=parent_run_id, experiment_id=experiment_id, trials=trials, search_settings=settings,
            experiment_path=str(exp_path), seconds=time.perf_counter() - t0, resumed=resume,
            refit_on=refit_on, refit_s=refit_s)
        finish_parent_run(client, result, best)
        return result
    except BaseException as e:
        status = "KILLED" if isinstance(e, KeyboardInterrupt | SearchInterrupted) else "FAILED"
        client.set_tag(parent_run_id, "mlops_ray.error", f"{type(e).__name__}: {e}"[:5000])
        client.set_terminated(parent_run_id, status)
        raise


def _cv_trial() -> Any:
    from mlops_ray.tune.trainable import cv_trial

    return cv_trial


def _n_classes(prepared: PreparedData) -> int:
    if prepared.task != "classification":
        return 0
    seen = int(max(np.max(prepared.y_train, initial=0), np.max(prepared.y_holdout, initial=0))) + 1
    return max(len(prepared.features.classes or []), seen)


def evaluate_holdout(fitted: FittedModel, prepared: PreparedData) -> dict[str, float]:
    """Every metric of the task, once, on the holdout rows (never seen by the search)."""
    if len(prepared.y_holdout) == 0:
        return {}
    pred, proba = predict_for_scoring(fitted.estimator, prepared.X_holdout, prepared.task)
    n_classes = _n_classes(prepared)
    if prepared.task == "classification":
        proba = expand_proba(proba, fitted.estimator, n_classes)
    return score_all(prepared.task, np.asarray(prepared.y_holdout), pred, proba, n_classes)


__all__ = ["check_resources", "evaluate_holdout", "experiment_name", "run_search", "search_settings"]
