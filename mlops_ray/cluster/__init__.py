"""Running on a Ray cluster: the Jobs API wrapper, job entrypoints and batch inference.

=====================================  ====================================================
object                                 what it does
=====================================  ====================================================
``submit_job`` / ``JobClient``         submit a ``jobs/*.py`` entrypoint through the Ray Jobs API
                                       (working_dir + runtime_env, token auth), follow logs, stop
``resolve_auth_token``                 the cluster token: argument, ``RAY_AUTH_TOKEN``,
                                       ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``
``batch_predict``                      score a Parquet folder with a Ray Data actor pool (each actor
                                       reads, scores and writes its parts), Parquet with lineage columns
``BatchScorer``                        scores one batch (Arrow or pandas); ``PartScorer``, the actor
                                       class, reads/scores/writes one part of the input
``torch_device``                       ``cuda:N`` from the GPUs Ray assigned, else ``cpu``
=====================================  ====================================================

Heavy modules (ray, mlflow) are imported lazily on first attribute access.
"""

from __future__ import annotations

from mlops_ray._lazy import lazy_exports

_EXPORTS = {
    "AUTH_TOKEN_ENV": "mlops_ray.cluster.auth",
    "auth_headers": "mlops_ray.cluster.auth",
    "resolve_auth_token": "mlops_ray.cluster.auth",
    "JOBS": "mlops_ray.cluster.spec",
    "JobSpec": "mlops_ray.cluster.spec",
    "build_submission": "mlops_ray.cluster.spec",
    "JobClient": "mlops_ray.cluster.jobs",
    "submit_job": "mlops_ray.cluster.jobs",
    "BatchScorer": "mlops_ray.cluster.scoring",
    "PartScorer": "mlops_ray.cluster.scoring",
    "parse_model_uri": "mlops_ray.registry.uris",
    "BatchPredictResult": "mlops_ray.cluster.batch",
    "batch_predict": "mlops_ray.cluster.batch",
    "torch_device": "mlops_ray.cluster.devices",
    "assigned_gpu_ids": "mlops_ray.cluster.devices",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
