"""mlops_ray: the whole tabular ML lifecycle on Ray.

The map of the public API (each stage is usable alone, or together through ``run_pipeline``):

- ``load_config`` / ``PipelineConfig``: the typed pipeline spec, from YAML.
- ``resolve_runtime`` / ``Runtime``: Ray address, MLflow store and working directories.
- ``run_pipeline`` / ``PipelineResult``: the steps data -> tune -> register -> deploy, with step caching.
- ``mlops_ray.data``: Ray Data read -> validate -> clean -> split -> features -> fingerprint (``prepare``).
- ``mlops_ray.tune``: Ray Tune search, each trial scored by k-fold cross-validation (``run_search``).
- ``mlops_ray.registry``: MLflow packaging, registration, promotion gate, aliases, lineage
  (``register_model``, ``load_fitted_model``, ``promote``, ``rollback``).
- ``mlops_ray.serve``: Ray Serve endpoints, canary rollout, rollback (``deploy``, ``status``, ``shutdown``).
- ``mlops_ray.monitor``: prediction logs, feedback, drift, retraining (``run_monitor``, ``retrain``).
- ``mlops_ray.cluster``: Ray Jobs submission and batch inference (``submit_job``, ``batch_predict``).

Importing this package starts nothing: no Ray, no MLflow, no directories.
"""

from mlops_ray._lazy import lazy_exports
from mlops_ray.config import PipelineConfig, load_config, parse_config
from mlops_ray.exceptions import MlopsRayError
from mlops_ray.runtime import Runtime, resolve_runtime

_LAZY = {
    "run_pipeline": "mlops_ray.pipeline",
    "PipelineResult": "mlops_ray.pipeline",
    "prepare": "mlops_ray.data.stage",
    "run_search": "mlops_ray.tune.search",
    "register_model": "mlops_ray.registry.register",
    "load_fitted_model": "mlops_ray.registry.packaging",
    "deploy": "mlops_ray.serve.controller",
    "run_monitor": "mlops_ray.monitor.run",
    "retrain": "mlops_ray.monitor.retrain",
    "batch_predict": "mlops_ray.cluster.batch",
}

__all__ = [
    "MlopsRayError",
    "PipelineConfig",
    "Runtime",
    "load_config",
    "parse_config",
    "resolve_runtime",
    *sorted(_LAZY),
]
__getattr__ = lazy_exports(__name__, _LAZY)[0]


def __dir__() -> list[str]:  # the eager names too, not only the lazy ones
    return sorted(__all__)
