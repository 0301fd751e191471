"""Refit the search's winner on every training row: in the driver on a one-node Ray, else as a Ray task."""

from __future__ import annotations

from typing import Any

from mlops_ray.exceptions import TuneError
from mlops_ray.tune.estimators import EstimatorFactory, accepted_params
from mlops_ray.tune.trainable import TrialData


def _driver_is_the_cluster(nodes: list[dict[str, Any]]) -> bool:
    """True when the live ``nodes`` are one node and this process runs on it (a local Ray, a one-node cluster)."""
    import ray

    return len(nodes) == 1 and nodes[0].get("NodeID") == ray.get_runtime_context().get_node_id()


def _fit_all(factory: EstimatorFactory, config: dict[str, Any], data: TrialData, cpus: int, wide: bool) -> Any:
    est = factory.build(config)
    if factory.kind == "torch_mlp":
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(cpus)
        try:
            return est.fit(data.X, data.y)
        finally:
            torch.set_num_threads(threads)
    if wide:  # the searched n_jobs goes back afterwards, so the model's params are the searched ones
        import warnings

        n_jobs = est.get_params()["n_jobs"]
        est.set_params(n_jobs=cpus)
        with warnings.catch_warnings():  # scikit-learn >= 1.8 warns that LogisticRegression ignores n_jobs
            warnings.filterwarnings("ignore", message=".*'n_jobs' has no effect", category=FutureWarning)
            est.fit(data.X, data.y)
        return est.set_params(n_jobs=n_jobs)
    return est.fit(data.X, data.y)


def refit_best(factory: EstimatorFactory, config: dict[str, Any], data: TrialData, data_ref: Any, cpu: float,
           gpu: float) -> tuple[Any, str]:
    """Fit the winner on every training row; returns (estimator, where it ran: "driver" or "ray_task").

    The search is over, so the CPUs the trials held are free: an estimator with ``n_jobs`` gets up to all
    of them (on one node) for this one fit. A scikit-learn estimator on a one-node Ray without GPUs is refit
    here, in the driver, as GridSearchCV's refit is: the data is already in this process, and a fresh Ray
    worker would first spend ~2.5 s starting and importing scikit-learn. On a multi-node cluster (where the
    driver's head node should not train), with a GPU, or for torch (which would see every GPU of the
    machine from the driver) it is a Ray task with the trial's resources.
    """
    import ray

    wide = "n_jobs" in accepted_params(factory.cls) and factory.kind == "sklearn"
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    # A task wider than the largest node would wait forever: cap at that node's CPUs.
    node_cpus = max((n.get("Resources", {}).get("CPU", 0.0) for n in nodes), default=cpu)
    try:
        if factory.kind == "sklearn" and gpu == 0 and _driver_is_the_cluster(nodes):
            # Every core of this one node: Ray may still be releasing the trials' CPUs as Tuner.fit returns,
            # so its available_resources would read low for a moment.
            cpus = max(1, min(int(node_cpus), 16)) if wide else 1
            return _fit_all(factory, config, data, cpus, wide), "driver"
        free = ray.available_resources().get("CPU", cpu)
        n = max(cpu, min(float(int(free)), float(int(node_cpus)), 16.0)) if wide else cpu
        task = ray.remote(_fit_all).options(num_cpus=n, num_gpus=gpu, max_retries=1)
        return ray.get(task.remote(factory, config, data_ref, max(1, int(n)), wide)), "ray_task"
    except Exception as e:
        raise TuneError(f"refitting the best config {config} on all training rows failed: {e}") from e


__all__ = ["refit_best"]
