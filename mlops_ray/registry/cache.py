"""Step caching: reuse an earlier successful run when the data fingerprint and the config match.

A step that finished sets these tags on its MLflow run (``mark_step_success`` in register.py):

=================================  ===========================================================
tag                                value
=================================  ===========================================================
``mlops_ray.data_fingerprint``     content hash of the prepared data (PreparedData.fingerprint)
``mlops_ray.config_hash``          ``cfg.config_hash()``: the whole spec (lineage)
``mlops_ray.train_config_hash``    hash of the sections that decide the model: name, seed,
                                   data, tune, registry (the cache key: serve/monitor edits
                                   do not invalidate a trained model)
``mlops_ray.step.<step>``          ``success`` (only written once the step completed)
``mlops_ray.registered_model``     for step ``register``: the model name ...
``mlops_ray.registered_version``   ... and the version it registered
=================================  ===========================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_ray.exceptions import RegistryError
from mlops_ray.registry.store import TAG, client, get_aliases, mlflow_errors
from mlops_ray.runtime import Runtime

if TYPE_CHECKING:
    from mlops_ray.config import PipelineConfig
    from mlops_ray.registry.register import Registration

SUCCESS = "success"


def step_tags(step: str, fingerprint: str, cfg: PipelineConfig) -> dict[str, str]:
    """The tags that mark a run as a successful ``step`` on this data with this config."""
    from mlops_ray.registry.register import training_config_hash

    return {TAG + "data_fingerprint": fingerprint, TAG + "config_hash": cfg.config_hash(),
            TAG + "train_config_hash": training_config_hash(cfg), f"{TAG}step.{step}": SUCCESS}


def _q(value: str) -> str:
    if "'" in value:
        raise RegistryError(f"cache key {value!r} contains a quote; fingerprints and hashes never do")
    return f"'{value}'"


def find_cached_run(runtime: Runtime, experiment: str, fingerprint: str, config_hash: str,
                    step: str) -> str | None:
    """The newest run of ``experiment`` tagged successful for ``step`` with this fingerprint and config.

    ``config_hash`` may be either ``cfg.config_hash()`` or the training hash; both are tags.
    Returns None when there is none (or the experiment does not exist yet).
    """
    runs = find_cached_runs(runtime, experiment, fingerprint, config_hash, step, limit=1)
    return runs[0] if runs else None


def find_cached_runs(runtime: Runtime, experiment: str, fingerprint: str, config_hash: str, step: str,
                     limit: int = 20) -> list[str]:
    """Up to ``limit`` such runs, newest first."""
    with mlflow_errors(f"looking for a cached {step} run", runtime):
        cl = client(runtime)
        exp = cl.get_experiment_by_name(experiment)
        if exp is None:
            return []
        for key in ("train_config_hash", "config_hash"):
            flt = (f"tags.`{TAG}data_fingerprint` = {_q(fingerprint)} and tags.`{TAG}{key}` = {_q(config_hash)} "
                   f"and tags.`{TAG}step.{step}` = '{SUCCESS}'")
            runs = cl.search_runs([exp.experiment_id], filter_string=flt, order_by=["attributes.start_time DESC"],
                                  max_results=limit)
            if runs:
                return [r.info.run_id for r in runs]
    return []


def find_cached_registration(runtime: Runtime, cfg: PipelineConfig, fingerprint: str) -> Registration | None:
    """The registration made by an earlier identical run (same data, same training config), if it still exists."""
    from mlflow.exceptions import MlflowException

    from mlops_ray.registry.register import Registration, training_config_hash

    run_ids = find_cached_runs(runtime, cfg.experiment_name, fingerprint, training_config_hash(cfg), "register")
    with mlflow_errors("reading the cached registration", runtime):
        cl = client(runtime)
        found: list[tuple[str, str, str, Any]] = []  # (run id, name, version, model version), newest first
        for run_id in run_ids:
            tags = cl.get_run(run_id).data.tags
            name, version = tags.get(TAG + "registered_model"), tags.get(TAG + "registered_version")
            if not name or not version:
                continue
            try:
                found.append((run_id, name, version, cl.get_model_version(name, version)))
            except MlflowException:  # the version was deleted since: not reusable
                continue
        if not found:
            return None
        # Identical runs registered several versions (--no-cache): the one serving as champion, else the newest
        # (a rejected rerun must not hide that an identical version is the champion).
        champions = {n: get_aliases(cl, n).get("champion") for n in {f[1] for f in found}}
        run_id, name, version, mv = next((f for f in found if champions[f[1]] == f[2]), found[0])
        vtags = dict(mv.tags or {})
        return Registration(
            name=name, version=version, accepted=vtags.get(TAG + "gate.decision") == "accepted", decision=None,
            aliases=get_aliases(cl, name), model_uri=f"models:/{name}/{version}", run_id=run_id,
            model_id=getattr(mv, "model_id", None), card_path=vtags.get(TAG + "card"),
            lineage={k: v for k, v in vtags.items() if k.startswith(TAG) and not k.startswith(TAG + "gate.")
                     and not k.startswith(TAG + "move.")},
            cached=True,
        )
