"""The registry stage: one packaged MLflow model per winner, lineage, a promotion gate, aliases.

- ``register_model(cfg, runtime, result, prepared) -> Registration``: log into the search's run,
  register under ``cfg.model_name`` with lineage tags and a Markdown card, run the gate, move aliases.
- ``load_fitted_model(model_uri) -> FittedModel`` (no Ray), ``load_in_worker`` (the same, in a fresh Ray
  worker process), ``save_fitted_model(fitted, path)``; ``fetch_fitted_dir`` (download only) and
  ``load_features_dir`` (the features alone) for callers that deserialize the estimator elsewhere;
  ``FittedModelFiles`` (a model folder as bytes, to ship to workers that cannot see the folder).
- ``parse_model_uri(uri) -> ModelRef``: the one reading of ``models:/`` URIs (a bare name is the champion).
- ``promote(runtime, name, version, reason, actor)``, ``rollback(runtime, name, reason, actor)``,
  ``resolve_version(runtime, name, version=None, alias=None) -> VersionInfo``, ``list_versions``.
- ``check_reachable(runtime)``: a tracking server that is down fails in seconds, not MLflow's minutes of retries;
  ``check_local_store(runtime)``: a damaged local SQLite store fails before any work.
- ``find_cached_run`` / ``find_cached_registration``: step caching on tags (see ``cache.py``).
- ``gate``: the pure decision logic (thresholds + paired bootstrap), usable without MLflow.

Heavy modules (mlflow, skops, torch) load on first use of a name, not at import.
"""

from __future__ import annotations

from mlops_ray._lazy import lazy_exports

_EXPORTS = {
    "register_model": "mlops_ray.registry.register",
    "format_registration": "mlops_ray.registry.register",
    "Registration": "mlops_ray.registry.register",
    "training_config_hash": "mlops_ray.registry.register",
    "load_fitted_model": "mlops_ray.registry.packaging",
    "fetch_fitted_dir": "mlops_ray.registry.packaging",
    "load_in_worker": "mlops_ray.registry.packaging",
    "ModelRef": "mlops_ray.registry.uris",
    "parse_model_uri": "mlops_ray.registry.uris",
    "log_fitted_model": "mlops_ray.registry.packaging",
    "save_fitted_model": "mlops_ray.registry.artifacts",
    "load_fitted_model_dir": "mlops_ray.registry.artifacts",
    "load_features_dir": "mlops_ray.registry.artifacts",
    "FittedModelFiles": "mlops_ray.registry.artifacts",
    "promote": "mlops_ray.registry.store",
    "check_reachable": "mlops_ray.registry.store",
    "check_local_store": "mlops_ray.registry.store",
    "rollback": "mlops_ray.registry.store",
    "resolve_version": "mlops_ray.registry.store",
    "list_versions": "mlops_ray.registry.store",
    "list_models": "mlops_ray.registry.store",
    "alias_history": "mlops_ray.registry.store",
    "AliasMove": "mlops_ray.registry.store",
    "VersionInfo": "mlops_ray.registry.store",
    "find_cached_run": "mlops_ray.registry.cache",
    "find_cached_registration": "mlops_ray.registry.cache",
    "step_tags": "mlops_ray.registry.cache",
    "GateDecision": "mlops_ray.registry.gate",
    "decide": "mlops_ray.registry.gate",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
