"""mlops_ray: the whole tabular ML lifecycle on Ray.

The map of the public API (each stage is usable alone, or together through ``run_pipeline``):

- ``load_config`` / ``PipelineConfig``: the typed pipeline spec, from YAML.
- ``resolve_runtime`` / ``Runtime``: Ray address, MLflow store and working directories.
- ``mlops_ray.data``: Ray Data read -> validate -> clean -> split -> features -> fingerprint.
- ``mlops_ray.tune``: Ray Tune search, each trial scored by k-fold cross-validation.
- ``mlops_ray.registry``: MLflow packaging, registration, promotion gate, aliases, lineage.
- ``mlops_ray.serve``: Ray Serve endpoints, canary rollout, rollback.
- ``mlops_ray.monitor``: prediction logs, feedback, drift, retraining triggers.

Importing this package starts nothing: no Ray, no MLflow, no directories.
"""

from mlops_ray.config import PipelineConfig, load_config, parse_config
from mlops_ray.exceptions import MlopsRayError
from mlops_ray.runtime import Runtime, resolve_runtime

__all__ = [
    "MlopsRayError",
    "PipelineConfig",
    "Runtime",
    "load_config",
    "parse_config",
    "resolve_runtime",
]
