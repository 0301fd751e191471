"""Checks of the tune settings that fail fast, before a search (or Ray) starts, naming the field."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlops_ray.exceptions import SearchSpaceError, TuneError
from mlops_ray.tune.estimators import EstimatorFactory, make_factory
from mlops_ray.tune.metrics import METRIC_NAMES, MetricSpec, resolve_metric
from mlops_ray.tune.spaces import ParamDomain, check_for_searcher, parse_space
from mlops_ray.tune.trainable import max_iterations

if TYPE_CHECKING:
    from mlops_ray.config import PipelineConfig


def check_config(cfg: PipelineConfig) -> None:
    """What the tune section can get wrong without any data: search space, estimator path and params, metric.

    The task is known only after the data stage when ``data.task`` is ``auto``: then the checks that need
    it (classifier vs regressor, a metric that fits the task) wait for the search.
    """
    ts = cfg.tune
    domains = parse_space(ts.search_space)
    check_for_searcher(domains, ts.search)
    task = cfg.data.task
    factory = make_factory(ts.model.kind, ts.model.estimator, task, ts.model.params, [d.name for d in domains],
                           cfg.seed)
    metric = None
    if task != "auto":
        metric = resolve_metric(ts.metric, task)
    elif ts.metric not in ("auto", *METRIC_NAMES):
        raise TuneError(f"tune.metric {ts.metric!r} is not supported; use one of auto, {', '.join(METRIC_NAMES)}")
    # The folds are the config's: what check_before_trials would say after the data stage, said now.
    check_before_trials(cfg, metric, factory, domains, cfg.data.split.folds)


def asha_max_t(kind: str, n_folds: int, domains: list[ParamDomain], fixed: dict[str, Any]) -> int:
    cfg: dict[str, Any] = {}
    for d in domains:
        if d.name == "epochs":
            cfg["epochs"] = int(d.high) if d.kind in ("uniform", "loguniform", "randint") else max(d.values)
    max_t = max_iterations(kind, n_folds, cfg, fixed)
    if max_t < 1:  # ASHA's own check is a bare assertion
        where = "tune.search_space.epochs" if "epochs" in cfg else "tune.model.params.epochs"
        got = cfg.get("epochs", fixed.get("epochs"))
        raise TuneError(f"{where}: a torch_mlp trial needs at least 1 epoch, got {got}")
    return max_t


def check_before_trials(cfg: PipelineConfig, metric: MetricSpec | None, factory: EstimatorFactory,
                         domains: list[ParamDomain], n_folds: int) -> None:
    """What would otherwise fail every trial (or Tune's own assertion) after the search started.

    ``metric`` None: the task (so the metric) is not known yet; its check waits for the search.
    """
    ts = cfg.tune
    searched = {d.name for d in domains}
    if metric is not None and metric.needs_proba and factory.kind == "sklearn" and "probability" not in searched and \
            not hasattr(factory.build({}), "predict_proba"):
        raise TuneError(f"tune.metric {metric.name!r} needs class probabilities, which {ts.model.estimator} does not "
                        "give with these params (e.g. SVC needs probability: true); pick accuracy or f1_macro")
    if factory.kind == "torch_mlp":
        _check_torch_values(factory, domains, ts.resources.gpu)
    if ts.scheduler == "asha":
        max_t = asha_max_t(factory.kind, n_folds, domains, ts.model.params)
        if ts.asha.grace_period > max_t:
            per = "fold x epoch" if factory.kind == "torch_mlp" else "fold"
            raise TuneError(f"tune.asha.grace_period {ts.asha.grace_period} is more than the {max_t} results a trial "
                            f"reports (one per {per}); set it to at most {max_t}")


def _candidates(d: ParamDomain) -> list[Any]:
    """The values to check of a searched parameter: all listed ones, or both ends of a range."""
    if d.kind in ("grid", "choice"):
        return list(d.values)
    if d.kind == "randint":
        return [int(d.low), int(d.high)]
    return [d.low, math.nextafter(d.high, d.low)]  # uniform/loguniform draw from [low, high)


def _check_torch_values(factory: EstimatorFactory, domains: list[ParamDomain], gpu: float) -> None:
    """Every value a torch_mlp trial may get is one it accepts (else every such trial fails or truncates)."""
    for d in domains:
        for v in _candidates(d):
            try:
                factory.cls(**{**factory.fixed, d.name: v}).check_params()
            except ValueError as e:
                raise SearchSpaceError(f"tune.search_space.{d.name}: {e}") from None
    searched = next((d for d in domains if d.name == "device"), None)
    devices = list(searched.values) if searched else [factory.fixed.get("device", "auto")]
    if gpu == 0 and any(str(v).startswith("cuda") for v in devices):
        where = "tune.search_space.device" if searched else "tune.model.params.device"
        raise TuneError(f"{where}: cuda needs a GPU per trial, and tune.resources.gpu is 0; set tune.resources.gpu "
                        "(1, or 0.25 for four trials per GPU) or use device: auto (CUDA when the trial has a GPU)")


__all__ = ["asha_max_t", "check_before_trials", "check_config"]
