"""The Tune trial: one config scored by k-fold CV, reporting after every fold (and every torch epoch).

Runs inside a Tune worker. The training arrays arrive through ``tune.with_parameters`` (put in the
object store once by the driver, read zero-copy by every trial); nothing is re-read or copied per trial
beyond the fold's own row selection.

What a trial reports (one result per ``training_iteration``):

- scikit-learn models: one result per finished fold, so ``training_iteration`` = folds done
  (1..k). With more than one CPU per trial the folds run in parallel threads and are reported in the
  order they finish.
- torch_mlp: one result per epoch, folds run one after another, so ``training_iteration`` =
  ``fold * epochs + epoch + 1`` (1..k*epochs); the result that ends a fold carries ``fold_done``.

A grid over a forest's or gradient boosting's ``n_estimators`` shares warm-start paths (``warm_start.py``):
the first trial to reach a fold grows the ensemble through every size and scores each, its group's other
trials read their scores from the search's ``FoldStore``; ``folds_reused`` counts those folds.

``cv_<metric>`` is the running mean of the optimised metric over the folds done (for torch, the
current fold counts with its latest epoch), ``cv_<metric>_std`` its spread; ASHA compares trials on it.
An exception raised by the estimator (a bad parameter value, say) is not retried: the trial ends with
``trial_error`` and the worst score. Worker deaths (a crashed or killed process) are retried by Tune
(``tune.max_failures``).
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops_ray.tune.cv import FoldScore, iter_cv
from mlops_ray.tune.estimators import EstimatorFactory
from mlops_ray.tune.warm_start import WarmStartPath, iter_path_cv


@dataclass
class TrialData:
    """The training split, shared read-only by every trial through the object store."""

    X: np.ndarray
    y: np.ndarray
    folds: np.ndarray
    task: str
    n_classes: int

    @property
    def n_folds(self) -> int:
        return int(self.folds.max()) + 1


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of one search shares besides the data."""

    factory: EstimatorFactory
    metric: str  # the optimised metric
    mode: str
    cpus: float
    worst: float
    path: WarmStartPath | None = None  # shared warm-start paths (warm_start.py), with the search's FoldStore

    @property
    def key(self) -> str:
        return metric_key(self.metric)


def metric_key(metric: str) -> str:
    """The name Tune optimises: the running CV mean of the metric."""
    return f"cv_{metric}"


def max_iterations(kind: str, n_folds: int, config: dict[str, Any], fixed: dict[str, Any]) -> int:
    """How many results a full trial reports (ASHA's ``max_t``)."""
    if kind == "torch_mlp":
        return n_folds * int(config.get("epochs", fixed.get("epochs", 20)))
    return n_folds


def _running(done: list[dict[str, float]], metric: str) -> tuple[float, float]:
    v = np.array([d.get(metric, np.nan) for d in done], dtype=float)
    if not len(v) or np.isnan(v).all():
        return float("nan"), float("nan")
    return float(np.nanmean(v)), float(np.nanstd(v))


def _fold_scores(config: dict[str, Any], data: TrialData, spec: TrialSpec, n_jobs: int, store: Any,
                 reused: list[int]) -> Iterator[FoldScore]:
    """The sklearn folds of ``config``: grown here or read from a path another trial grew (counted in ``reused``)."""
    path = spec.path
    params = spec.factory.params_for(config)
    if path is None or store is None or params.get(path.param) not in path.sizes:
        yield from iter_cv(spec.factory, config, data.X, data.y, data.folds, data.task, data.n_classes, n_jobs)
        return
    from ray import tune

    from mlops_ray.tune.fold_store import RayFoldSource

    source = RayFoldSource(store, path.group(params), tune.get_context().get_trial_id())
    for fs, grown in iter_path_cv(spec.factory, config, path, data.X, data.y, data.folds, data.task,
                                  data.n_classes, n_jobs, source):
        reused[0] += not grown
        yield fs


def cv_trial(config: dict[str, Any], data: TrialData, spec: TrialSpec, store: Any = None) -> None:
    """The function trainable: run the folds of ``config`` and report as they finish."""
    from ray import tune

    n_jobs = max(1, int(spec.cpus))
    torch_kind = spec.factory.kind == "torch_mlp"
    device = "cpu"
    if torch_kind:
        import torch

        torch.set_num_threads(n_jobs)  # torch parallelises inside a fold; folds run in sequence
        n_jobs = 1
        # Ray exposes only the trial's GPUs (CUDA_VISIBLE_DEVICES), so this is true only with a GPU assigned.
        device = "cuda" if torch.cuda.is_available() else "cpu"
    base = {"pid": os.getpid(), "n_folds": data.n_folds, "device": device}
    done: list[dict[str, float]] = []
    by_fold: dict[int, float] = {}  # folds may finish out of order (parallel folds): scores listed by fold
    t0 = time.perf_counter()

    def report_fold(fs: FoldScore, extra: dict[str, Any] | None = None) -> None:
        done.append(fs.metrics)
        by_fold[fs.fold] = fs.metrics.get(spec.metric, float("nan"))
        mean, std = _running(done, spec.metric)
        result: dict[str, Any] = {**base, spec.key: mean, f"{spec.key}_std": std, "folds_done": len(done),
                                  "fold": fs.fold, "fold_done": True, "fit_s": fs.fit_s,
                                  "fold_scores": [by_fold[f] for f in sorted(by_fold)],
                                  "elapsed_s": time.perf_counter() - t0, "final": len(done) == data.n_folds}
        result.update({f"fold_{m}": v for m, v in fs.metrics.items()})
        for m in fs.metrics:
            result[f"mean_{m}"], result[f"std_{m}"] = _running(done, m)
        result.update(extra or {})
        tune.report(result)

    def on_epoch(fold: int, epoch: int, metrics: dict[str, float]) -> None:
        epochs = int(spec.factory.params_for(config).get("epochs", 20))
        if epoch == epochs - 1:
            report_fold(FoldScore(fold, metrics, time.perf_counter() - t0, 0, 0), {"epoch": epoch})
            return
        mean, std = _running([*done, metrics], spec.metric)
        tune.report({**base, spec.key: mean, f"{spec.key}_std": std, "folds_done": len(done), "fold": fold,
                     "fold_done": False, "epoch": epoch, "elapsed_s": time.perf_counter() - t0, "final": False,
                     **{f"epoch_{m}": v for m, v in metrics.items()}})

    reused = [0]
    try:
        if torch_kind:
            for _ in iter_cv(spec.factory, config, data.X, data.y, data.folds, data.task, data.n_classes, n_jobs,
                             on_epoch=on_epoch):
                pass  # reported per epoch by on_epoch
        else:
            for fs in _fold_scores(config, data, spec, n_jobs, store, reused):
                report_fold(fs, {"folds_reused": reused[0]} if spec.path is not None else None)
    except Exception as e:  # the estimator rejected this config: record it, do not retry a deterministic error
        tune.report({**base, spec.key: spec.worst, f"{spec.key}_std": float("nan"), "folds_done": len(done),
                     "final": True, "trial_error": f"{type(e).__name__}: {e}",
                     "trial_traceback": traceback.format_exc(limit=8)[-4000:],
                     "elapsed_s": time.perf_counter() - t0})
